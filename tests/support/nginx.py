"""compose/nginx.conf rendered for a test and run as a foreground child (``daemon off``),
stopped by its PID: listening on a given address and port, in front of edges at given
addresses, its pid file, logs and temp paths in a directory of the test's."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "compose" / "nginx.conf"
START_TIMEOUT = 10.0


def binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def render(
    directory: Path, listen: str, edges: Sequence[str], *, worker_connections: int = 4096
) -> Path:
    """compose/nginx.conf listening on ``listen`` (``address:port``) in front of ``edges``
    (``address:port`` each, two of them), its files in ``directory``."""
    text = CONFIG.read_text()
    replacements = {
        "listen 8080;": f"listen {listen};",
        "server edge-1:8000 ": f"server {edges[0]} ",
        "server edge-2:8000 ": f"server {edges[1]} ",
        "pid /tmp/nginx.pid;": f"pid {directory}/nginx.pid;",
        "error_log /dev/stderr warn;": f"error_log {directory}/error.log warn;",
        "access_log /dev/stdout notify;": f"access_log {directory}/access.log notify;",
        "/var/cache/nginx/": f"{directory}/",
        "worker_processes auto;": "worker_processes 1;",
        "worker_connections 20000;": f"worker_connections {worker_connections};",
        "worker_rlimit_nofile 45000;": f"worker_rlimit_nofile {worker_connections * 2 + 100};",
    }
    for old, new in replacements.items():
        assert old in text, f"compose/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def running(directory: Path, listen: str, edges: Sequence[str]) -> AsyncIterator[int]:
    """nginx with the rendered configuration until the block ends; yields its PID."""
    found = binary()
    if found is None:
        raise RuntimeError("nginx is not installed")
    config = render(directory, listen, edges)
    args = [found, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")]
    check = await asyncio.create_subprocess_exec(
        *args, "-t", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(check.communicate(), 30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{out.decode()}")
    proc = await asyncio.create_subprocess_exec(
        *args, "-g", "daemon off;", stdin=asyncio.subprocess.DEVNULL
    )
    try:
        host, _, port = listen.rpartition(":")
        async with asyncio.timeout(START_TIMEOUT):
            while True:  # until it listens (it says nothing when it does)
                with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
                    break
                if proc.returncode is not None:
                    raise RuntimeError((directory / "error.log").read_text())
                await asyncio.sleep(0.05)
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
