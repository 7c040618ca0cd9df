"""A RabbitMQ node of a test's own, for tests that stop and start the broker.

The machine's shared broker is never touched: this node has its own name, AMQP and
distribution ports, data and log directories in a temporary directory, no plugins, and an
Erlang cookie of its own (HOME points at the temporary directory, for the server and for
``rabbitmqctl``). It listens on 127.0.0.1 only, unless given other addresses. ``stop`` halts
it and removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.processes import free_port

# The Debian package puts the real scripts here; the ones on PATH re-run them as the rabbitmq
# user, which would not see this node's HOME.
PACKAGE_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT = 90.0
COMMAND_TIMEOUT = 60.0
READY_LINE = "Starting broker... completed"


def _tool(name: str) -> str | None:
    packaged = PACKAGE_BIN / name
    return str(packaged) if packaged.exists() else shutil.which(name)


def available() -> bool:
    return _tool("rabbitmq-server") is not None and _tool("rabbitmqctl") is not None


class PrivateRabbitMQ:
    def __init__(
        self,
        *,
        cookie: str | None = None,
        name: str | None = None,
        addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> None:
        """``cookie``: the Erlang cookie, shared by the nodes of a cluster (default: one of
        its own); ``name``: the node name before ``@localhost``; ``addresses``: where its
        AMQP port listens (127.0.0.1, and e.g. a test network's bridge address)."""
        self.addresses = addresses
        self.node = f"{name or f'notify-test-{secrets.token_hex(4)}'}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="notify-rabbitmq-"))
        self.cookie = cookie or secrets.token_hex(16).upper()
        self.output: list[str] = []
        self._server: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def amqp_url(self, reconnect_interval: float = 0.5) -> str:
        # aio-pika reads reconnect_interval from the URL: a quick retry keeps the tests short.
        return f"amqp://guest:guest@127.0.0.1:{self.port}/?reconnect_interval={reconnect_interval}"

    def _env(self) -> dict[str, str]:
        home = self.home
        return {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _write_files(self) -> None:
        cookie = self.home / ".erlang.cookie"
        if cookie.exists():
            return  # started before: the same files, the same data
        cookie.write_text(self.cookie)
        cookie.chmod(0o400)
        (self.home / "enabled_plugins").write_text("[].\n")
        (self.home / "rabbitmq-env.conf").write_text("")
        listeners = "".join(
            f"listeners.tcp.{i} = {address}:{self.port}\n"
            for i, address in enumerate(self.addresses, 1)
        )
        if set(self.addresses) != {"127.0.0.1"}:
            # guest may log in from loopback only, by default: this node's other addresses are
            # a test network's.
            listeners += "loopback_users = none\n"
        (self.home / "rabbitmq.conf").write_text(listeners)
        (self.home / "mnesia").mkdir()
        (self.home / "log").mkdir()

    async def start(self) -> None:
        server = _tool("rabbitmq-server")
        assert server is not None
        self._write_files()
        self._ready = asyncio.Event()
        self._server = await asyncio.create_subprocess_exec(
            server,
            env=self._env(),
            cwd=self.home,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can end all of it
        )
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self._ready.wait(), START_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"{self.node} did not start:\n" + "\n".join(self.output)) from None
        await self.ctl("await_startup")

    async def _read(self) -> None:
        assert self._server is not None and self._server.stdout is not None
        async for raw in self._server.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if READY_LINE in line:
                self._ready.set()

    async def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl -n <node> ...`` against this node; raise if it fails."""
        tool = _tool("rabbitmqctl")
        assert tool is not None
        proc = await asyncio.create_subprocess_exec(
            tool, "-n", self.node, *args,
            env=self._env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed:\n{out.decode()}")
        return out.decode()

    async def stop_app(self) -> None:
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        await self.ctl("start_app")
        await self.ctl("await_startup")

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.returncode is None

    @property
    def pid(self) -> int | None:
        """The server's PID (the leader of its own process group), while it runs."""
        return self._server.pid if self.running and self._server is not None else None

    async def kill(self) -> None:
        """``kill -9`` the node: its process group (the Erlang VM and its helpers), by the
        server's PID. Its data directory stays, for ``start`` to bring it back."""
        assert self._server is not None
        if self._server.returncode is None:
            os.killpg(self._server.pid, signal.SIGKILL)
        await self._server.wait()
        if self._reader is not None:
            await self._reader

    async def halt(self) -> None:
        """Stop the node cleanly, keeping its data for ``start``: SIGTERM to the server's PID,
        which RabbitMQ takes as a shutdown request (as a service manager sends it)."""
        assert self._server is not None
        if self._server.returncode is None:
            self._server.send_signal(signal.SIGTERM)
            await self._wait_or_kill()
        if self._reader is not None:
            await self._reader

    async def _wait_or_kill(self) -> None:
        """Wait for the node's process to end; kill its process group if it takes longer than
        ``COMMAND_TIMEOUT``."""
        assert self._server is not None
        try:
            await asyncio.wait_for(self._server.wait(), COMMAND_TIMEOUT)
        except TimeoutError:
            os.killpg(self._server.pid, signal.SIGKILL)
            await self._server.wait()

    async def stop(self) -> None:
        """Halt the node (by its own PID if it does not halt), then remove its directory."""
        try:
            if self._server is not None and self._server.returncode is None:
                with contextlib.suppress(RuntimeError, TimeoutError):
                    await self.ctl("stop")
                await self._wait_or_kill()
            if self._reader is not None:
                await self._reader
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


@contextlib.asynccontextmanager
async def private_rabbitmq() -> AsyncIterator[PrivateRabbitMQ]:
    node = PrivateRabbitMQ()
    try:
        await node.start()
        yield node
    finally:
        await node.stop()
