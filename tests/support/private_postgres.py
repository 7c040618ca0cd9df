"""A PostgreSQL cluster of a test's own, to stop and start at will without touching the
machine's shared server: initdb into a temporary directory, served on a free port of
127.0.0.1 with trust authentication, removed at the end.

initdb refuses to run as root, so when the tests run as root the server's commands run as the
``postgres`` user, who owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port

BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
TIMEOUT = 60


class PrivatePostgres:
    def __init__(self, root: Path, port: int, networks: tuple[str, ...] = ()) -> None:
        """``networks``: CIDRs of test networks whose gateway address (their ``.1``) the
        server also listens on, trusting their clients as it trusts 127.0.0.1."""
        self.root = root
        self.port = port
        self.networks = networks
        self.data = root / "data"
        self.log = root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/notifications"

    def _run(self, *args: str) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        if self.networks:
            hba = self.data / "pg_hba.conf"
            lines = "".join(f"host all all {cidr} trust\n" for cidr in self.networks)
            hba.write_text(hba.read_text() + lines)

    @property
    def listen_addresses(self) -> str:
        gateways = [cidr.rsplit(".", 1)[0] + ".1" for cidr in self.networks]
        return ",".join(["127.0.0.1", *gateways])

    def start(self) -> None:
        # fsync=off only spares the disk: an immediate stop kills the server, not the
        # machine, so what was written survives in the page cache. Commits stay synchronous,
        # or an acknowledged commit could vanish in the "crash" and look like a lost event.
        options = (
            f"-p {self.port} -c listen_addresses={self.listen_addresses} -k {self.root} "
            "-c fsync=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash as far as clients can tell: connections drop at once."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def private_postgres(networks: tuple[str, ...] = ()) -> Iterator[PrivatePostgres]:
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"no PostgreSQL server binaries in {BIN}: set PG_BIN to their folder")
    root = Path(tempfile.mkdtemp(prefix="notify-pg-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
    server = PrivatePostgres(root, free_port(), networks)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if server.running():
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
