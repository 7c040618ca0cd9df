"""The system under test: a private RabbitMQ node, a private PostgreSQL cluster, and the
``notify`` processes (two dispatchers, two edges) running on them.

Private services can be stopped and started without touching the machine's shared ones. Where
one cannot be had (no RabbitMQ or PostgreSQL server binaries), the run falls back to a fresh
vhost or database on the shared service, and the faults that would restart it are skipped.
Every process is started and stopped by its own PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dispatcher.database import migrate
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, async_database_url
from tests.support import private_postgres as pg_support
from tests.support import private_rabbitmq as mq_support
from tests.support import tokens
from tests.support.processes import NotifyProcess, free_port, start_dispatcher
from tests.support.services import create_database, drop_database, own_vhost

log = logging.getLogger("notify.chaos")

# The slow-consumer fault fills a socket's outgoing buffer: a small one fills quickly.
SEND_BUFFER = 128 * 1024


def process_env(database_url: str, amqp_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "AUTH_JWT_SECRET": tokens.SECRET,
        "DISPATCHER_BATCH_WAIT_MS": "5",
        # Thousands of clients on one loopback address reconnect far faster than real ones.
        "WEBSOCKET_HANDSHAKES_PER_SECOND": "100000",
        "WEBSOCKET_CLIENT_FRAMES_PER_SECOND": "100000",
        "WEBSOCKET_SEND_BUFFER": str(SEND_BUFFER),
        # A SIGTERM'd edge drains its sockets over this window (exit within it + 10 s): short,
        # so that the edge_term fault ends within the harness's stop timeout.
        "EDGE_DRAIN_SECONDS": "2",
        "LOG_LEVEL": "info",
    }


@dataclass
class Services:
    database_url: str
    amqp_url: str
    rabbitmq: mq_support.PrivateRabbitMQ | None
    postgres: pg_support.PrivatePostgres | None
    skipped: dict[str, str] = field(default_factory=dict)  # fault kind -> why it can't run


@contextlib.asynccontextmanager
async def private_services() -> AsyncIterator[Services]:
    """Private RabbitMQ and PostgreSQL where possible, removed at the end whatever happens."""
    async with contextlib.AsyncExitStack() as stack:
        skipped: dict[str, str] = {}
        rabbitmq: mq_support.PrivateRabbitMQ | None = None
        if mq_support.available():
            rabbitmq = await stack.enter_async_context(mq_support.private_rabbitmq())
            amqp_url = rabbitmq.amqp_url()
        else:
            reason = (
                "no RabbitMQ server binaries for a private node; used a vhost of the shared one"
            )
            skipped["rabbitmq_restart"] = reason
            amqp_url = stack.enter_context(own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)))
        postgres: pg_support.PrivatePostgres | None = None
        if (pg_support.BIN / "initdb").exists():
            postgres = stack.enter_context(pg_support.private_postgres())
            database_url = postgres.url
            await migrate(database_url)
        else:
            skipped["postgres_restart"] = (
                f"no PostgreSQL server binaries in {pg_support.BIN} (set PG_BIN); used a "
                "database of the shared server"
            )
            base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
            database_url = await create_database(base)
            stack.push_async_callback(drop_database, database_url)
        yield Services(database_url, amqp_url, rabbitmq, postgres, skipped)


@dataclass
class Role:
    """One process slot (``dispatcher-0``, ``edge-1``) and the process filling it now."""

    name: str
    process: NotifyProcess | None = None
    port: int | None = None
    restarts: int = 0
    expected_exit: bool = False  # set while a fault stops it on purpose
    unexpected_exits: list[int | None] = field(default_factory=list)


class Cluster:
    """Two dispatchers and two edges; each can be killed, stopped and started again."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.dispatchers = [Role(f"dispatcher-{i}") for i in range(2)]
        self.edges = [Role(f"edge-{i}", port=free_port()) for i in range(2)]
        self._finished: list[NotifyProcess] = []

    @property
    def roles(self) -> list[Role]:
        return [*self.dispatchers, *self.edges]

    @property
    def edge_ports(self) -> list[int]:
        return [role.port for role in self.edges if role.port is not None]

    async def start(self) -> None:
        await asyncio.gather(*(self.start_role(role) for role in self.roles))

    async def start_role(self, role: Role) -> None:
        if role.name.startswith("dispatcher"):
            role.process = await start_dispatcher(self.env)
        else:
            assert role.port is not None
            proc = NotifyProcess(
                f"notify edge :{role.port}", ["edge", "--port", str(role.port)], self.env
            )
            role.process = await proc.start("Uvicorn running on")
        role.expected_exit = False

    async def restart(self, role: Role) -> None:
        if role.process is not None:
            self._finished.append(role.process)
        role.restarts += 1
        await self.start_role(role)

    async def signal(self, role: Role, sig: int) -> int:
        """Signal the role's process by its PID and wait for it to exit; its exit status."""
        assert role.process is not None
        role.expected_exit = True
        return await role.process.stop(sig)

    async def revive_crashed(self) -> list[str]:
        """Start again any process that exited when no fault asked it to; name them."""
        crashed = []
        for role in self.roles:
            proc = role.process
            if proc is not None and proc.returncode is not None and not role.expected_exit:
                role.unexpected_exits.append(proc.returncode)
                crashed.append(f"{role.name} exited with {proc.returncode}")
                log.warning("%s exited by itself (%s); starting it again", role.name,
                            proc.returncode)  # fmt: skip
                await self.restart(role)
        return crashed

    def pids(self) -> dict[str, int]:
        return {
            role.name: role.process.pid
            for role in self.roles
            if role.process is not None and role.process.returncode is None
        }

    async def stop(self) -> None:
        """Stop every process by its PID (SIGTERM, then SIGKILL if it lingers); keep logs."""
        for role in self.roles:
            role.expected_exit = True
        running = [r.process for r in self.roles if r.process is not None]
        await asyncio.gather(*(p.stop() for p in running if p.returncode is None),
                             return_exceptions=True)  # fmt: skip
        self._finished.extend(running)
        self.write_logs()

    def write_logs(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for index, proc in enumerate(self._finished):
            name = proc.name.replace(" ", "-").replace(":", "")
            (self.log_dir / f"{index:02d}-{name}.log").write_text("\n".join(proc.lines) + "\n")


def rss_of(pid: int) -> int:
    """Resident set size in bytes, 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return 0


def _children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def rss_of_tree(pid: int) -> int:
    """RSS of a process and all its descendants (a RabbitMQ or PostgreSQL server)."""
    tree = _children_by_parent()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss_of(current)
        todo.extend(tree.get(current, []))
    return total


def postmaster_pid(postgres: pg_support.PrivatePostgres) -> int | None:
    try:
        return int((postgres.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_signal_name(sig: int) -> str:
    return signal.Signals(sig).name
