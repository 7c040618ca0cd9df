"""Socket edge benchmark (not collected by pytest): ours beside the peer and the limit, one run.

    python -m tests.bench.bench_edge run [--smoke] [--json PATH]

Three systems, each started fresh for each row (with fresh clients), with the same load
client and workload:
- ours: ``notify edge`` (and, where the row goes through the whole pipeline, ``notify
  dispatcher``): SDK publish -> RabbitMQ -> dispatcher -> PostgreSQL -> edge -> client;
- the peer: python-socketio 5 with AsyncAioPikaManager under uvicorn; a write-only manager
  emits (emitter -> RabbitMQ -> server -> client);
- the limit: a bare ``websockets`` server fed by an aio-pika consumer, ``websockets.broadcast``.

Rows (issue 5): 1. idle connections one process holds, and RSS per connection (N vs 0);
1b. the same with two processes on one port; 2a. 10,000 clients in one room, 5 room
broadcasts/s for 20 s: delivered / offered and publish-to-receipt latency; 2b. 50 broadcasts
as fast as they can be published: frames/s; 3. 10,000 connected, 1,000 personal
notifications/s: latency. Storm: N clients (10,000) connect and join one room, all drop at
once (the servers' CPU after it, and how long until they are idle), then reconnect all at
once, ours from their cursors, while one room notification is published: how long until all
are back, and who missed it or got it twice.

The servers run on one core and the load client, the emitters and this script on the other
(RabbitMQ and PostgreSQL are shared and float). The peer and the limit run from a separate
virtualenv (``--venv``, created on first use) so that python-socketio never becomes a
dependency of the project. Everything runs in a private RabbitMQ vhost and a private
database, both removed at the end; every process started is stopped by its PID, also on
Ctrl-C. Load goes only to 127.0.0.0/8, every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, Settings, async_database_url
from tests.bench.peers.pacing import armed, paced, report, target
from tests.support.processes import free_port
from tests.support.services import create_database, drop_database, own_vhost

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NOTIFY = str(Path(sys.executable).with_name("notify"))
SERVER_CPU = "1"
CLIENT_CPU = 0
PER_LOADER = 19_000  # sockets per load-client process: open files are capped at 20,000
ROOM = "bench-room"
STOP_TIMEOUT = 15.0
READY_TIMEOUT = 60.0
PEER_PACKAGES = [
    "python-socketio>=5,<6",
    "aio-pika>=9.4",
    "uvicorn[standard]>=0.30",
    "websockets>=13",
]
SYSTEMS = ("ours", "peer", "limit")


@dataclass
class Sizes:
    connections: int = 19_000  # row 1, per process
    connections_two: int = 38_000  # row 1b, two processes
    clients: int = 10_000  # rows 2 and 3
    room_rate: float = 5.0
    room_seconds: float = 20.0
    burst: int = 50
    personal_rate: float = 1_000.0
    personal_seconds: float = 20.0
    concurrency: int = 200  # handshakes in flight
    settle: float = 3.0  # seconds before reading the RSS
    drain: float = 30.0  # seconds to wait, after the last publish, for the last frames
    storm_clients: int = 10_000  # the storm row
    storm_window: float = 10.0  # the servers' CPU seconds are reported over this after a drop
    storm_idle_cap: float = 180.0  # how long to wait for the servers to go idle after a drop
    storm_socket_timeout: float = 180.0  # per socket, when they all reconnect
    storm_deadline: float = 600.0  # for all of them to reconnect

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            300,
            600,
            200,
            5.0,
            2.0,
            10,
            200.0,
            2.0,
            100,
            0.5,
            5.0,
            storm_clients=200,
            storm_idle_cap=60.0,
            storm_socket_timeout=60.0,
            storm_deadline=120.0,
        )


# -- processes ---------------------------------------------------------------------------


class Proc:
    """A child process whose merged output is read line by line; stopped by its PID."""

    started: ClassVar[list[Proc]] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, stdin: bool = False) -> Proc:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=1 << 20,
        )
        Proc.started.append(self)
        self._reader = asyncio.create_task(self._read())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())
            if len(self.lines) > 5000:
                del self.lines[:1000]
            self._changed.set()
        self._changed.set()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    async def wait_for(self, match: Callable[[str], bool], count: int, timeout: float) -> list[str]:
        """Wait until ``count`` lines match (bounded by ``timeout``); return them."""
        async with asyncio.timeout(timeout):
            while True:
                found = [line for line in self.lines if match(line)]
                if len(found) >= count:
                    return found
                if self._reader is not None and self._reader.done():
                    raise RuntimeError(f"{self.name} exited; its output:\n{self.tail()}")
                self._changed.clear()
                await self._changed.wait()

    async def wait_line(self, needle: str, count: int = 1, timeout: float = READY_TIMEOUT) -> None:
        try:
            await self.wait_for(lambda line: needle in line, count, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: no {needle!r} in {timeout}s:\n{self.tail()}"
            ) from None

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        with contextlib.suppress(ValueError):
            Proc.started.remove(self)


async def stop_all(procs: list[Proc]) -> None:
    for proc in reversed(procs):
        await proc.stop()


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, i = [pid], 0
    while i < len(pids):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{pids[i]}/task/{task}/children").read_text()
                    pids.extend(int(p) for p in text.split())
        i += 1
    return pids


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


class CpuMeter:
    """The share of one core the system's servers used between ``start`` and ``share``."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.start()

    def start(self) -> None:
        self.wall = time.monotonic()
        self.cpu = cpu_seconds(self.system.servers())

    def used(self) -> float:
        return cpu_seconds(self.system.servers()) - self.cpu

    def share(self) -> float:
        return self.used() / max(1e-9, time.monotonic() - self.wall)


def pin(pids: list[int], cpus: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)


# -- the load client ---------------------------------------------------------------------


class Loader:
    """One load-client process, driven by JSON lines on its stdin."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.seen = 0

    @classmethod
    async def start(
        cls,
        port: int,
        dialect: str,
        count: int,
        first: int,
        prefix: str,
        room: str | None,
        secret: str | None,
        concurrency: int,
        track: bool = False,
    ) -> Loader:
        argv = [
            PYTHON,
            "-m",
            "tests.bench.loadclient",
            "--port",
            str(port),
            "--dialect",
            dialect,
            "--connections",
            str(count),
            "--user-start",
            str(first),
            "--user-prefix",
            prefix,
            "--concurrency",
            str(concurrency),
            "--cpu",
            str(CLIENT_CPU),
        ]
        if room is not None:
            argv += ["--room", room]
        if secret is not None:
            argv += ["--secret", secret]
        if track:
            argv.append("--track")
        return cls(await Proc(f"loadclient {dialect}", argv).start(stdin=True))

    async def next_event(self, timeout: float) -> dict[str, Any]:
        def is_json(line: str) -> bool:
            return line.startswith("{")

        try:
            found = await self.proc.wait_for(is_json, self.seen + 1, timeout)
        except TimeoutError:
            raise TimeoutError(f"load client silent for {timeout}s:\n{self.proc.tail()}") from None
        self.seen += 1
        event: dict[str, Any] = json.loads(found[self.seen - 1])
        return event

    async def command(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.proc is not None and self.proc.proc.stdin is not None
        self.proc.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.proc.stdin.drain()
        return await self.next_event(timeout)

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            await self.command({"cmd": "quit"}, 0.01)
        await self.proc.stop()


# -- the three systems -------------------------------------------------------------------


@dataclass
class Env:
    amqp_url: str
    database_url: str
    secret: str
    venv_python: str


class System:
    name = "?"
    dialect = "?"

    def __init__(self, env: Env) -> None:
        self.env = env
        self.procs: list[Proc] = []
        self.port = 0

    async def start(self, workers: int, pipeline: bool) -> None:
        raise NotImplementedError

    def servers(self) -> list[int]:
        """PIDs whose memory is the system's: the serving processes and their children."""
        raise NotImplementedError

    def emitter(self) -> list[str]:
        raise NotImplementedError

    @property
    def secret(self) -> str | None:
        return None

    async def stop(self) -> None:
        await stop_all(self.procs)
        self.procs.clear()

    def emit_argv(
        self, kind: str, count: int, rate: float, users: int, prefix: str, tag: str
    ) -> list[str]:
        return [
            "taskset",
            "-c",
            str(CLIENT_CPU),
            *self.emitter(),
            "--tag",
            tag,
            "--kind",
            kind,
            "--count",
            str(count),
            "--rate",
            str(rate),
            "--users",
            str(users),
            "--user-prefix",
            prefix,
            "--room",
            ROOM,
        ]

    async def emit(
        self, kind: str, count: int, rate: float, users: int, prefix: str, tag: str
    ) -> dict[str, Any]:
        argv = self.emit_argv(kind, count, rate, users, prefix, tag)
        proc = await Proc(f"{self.name} emitter", argv).start()
        try:
            found = await proc.wait_for(lambda line: '"published"' in line, 1, 120 + count / 100)
        finally:
            await proc.stop()
        result: dict[str, Any] = json.loads(found[0])
        return result

    async def arm(self, tag: str) -> Proc:
        """An emitter of one room notification, started and waiting for ``fire``."""
        argv = [*self.emit_argv("room", 1, 0.0, 1, "", tag), "--gate"]
        proc = await Proc(f"{self.name} emitter", argv).start(stdin=True)
        try:
            await proc.wait_line('"armed"')
        except BaseException:
            await proc.stop()
            raise
        return proc

    @staticmethod
    async def fire(proc: Proc) -> dict[str, Any]:
        """Let an armed emitter publish; its report; it is stopped."""
        try:
            assert proc.proc is not None and proc.proc.stdin is not None
            proc.proc.stdin.write(b"go\n")
            await proc.proc.stdin.drain()
            found = await proc.wait_for(lambda line: '"published"' in line, 1, 60)
        finally:
            await proc.stop()
        result: dict[str, Any] = json.loads(found[0])
        return result

    async def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = await Proc(name, ["taskset", "-c", SERVER_CPU, *argv], env).start()
        self.procs.append(proc)
        return proc


class Ours(System):
    name = "ours"
    dialect = "ours"

    @property
    def secret(self) -> str | None:
        return self.env.secret

    def settings_env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.env.database_url,
            "AMQP_URL": self.env.amqp_url,
            "AUTH_JWT_SECRET": self.env.secret,
            # The bench's tens of thousands of sockets per process, from a few loopback
            # addresses: the per-process cap and the per-address handshake rate go up.
            "WEBSOCKET_MAX_CONNECTIONS": "20000",
            "WEBSOCKET_HANDSHAKES_PER_SECOND": "1000000",
            "LOG_LEVEL": "info",
        }

    async def start(self, workers: int, pipeline: bool) -> None:
        env = self.settings_env()
        if pipeline:
            dispatcher = await self._spawn("notify dispatcher", [NOTIFY, "dispatcher"], env)
            await dispatcher.wait_line("dispatcher consuming")
        self.port = free_port()
        argv = [NOTIFY, "edge", "--port", str(self.port), "--workers", str(workers)]
        edge = await self._spawn("notify edge", argv, env)
        self.edge = edge
        if workers == 1:
            await edge.wait_line(" consuming ")
        else:
            # Worker processes do not log through the parent: each is ready once its own
            # queue exists on the broker.
            await edge.wait_line("Uvicorn running on")
            await wait_edge_queues(self.env.amqp_url, workers)

    def servers(self) -> list[int]:
        return tree(self.edge.pid)

    def emitter(self) -> list[str]:
        return [PYTHON, "-m", "tests.bench.bench_edge", "emit-ours", "--amqp", self.env.amqp_url]


async def wait_edge_queues(amqp_url: str, count: int, timeout: float = READY_TIMEOUT) -> None:
    """Wait until ``count`` edge queues (one per edge process) exist in the vhost."""
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "list_queues",
            "-q",
            "-p",
            vhost,
            "name",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await listing.communicate()
        names = out.decode().split()
        if sum(1 for n in names if n.startswith(topology.edge_queue_name(""))) >= count:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{count} edge processes did not declare their queues in {timeout}s")


class Peer(System):
    name = "peer"
    dialect = "socketio"

    async def start(self, workers: int, pipeline: bool) -> None:
        self.port = free_port()
        argv = [
            self.env.venv_python,
            "-m",
            "tests.bench.peers.socketio_peer",
            "serve",
            "--port",
            str(self.port),
            "--amqp",
            self.env.amqp_url,
            "--workers",
            str(workers),
        ]
        self.server = await self._spawn("socketio peer", argv)
        await self.server.wait_line("Application startup complete", workers)

    def servers(self) -> list[int]:
        return tree(self.server.pid)

    def emitter(self) -> list[str]:
        return [
            self.env.venv_python,
            "-m",
            "tests.bench.peers.socketio_peer",
            "emit",
            "--amqp",
            self.env.amqp_url,
        ]


class Limit(System):
    name = "limit"
    dialect = "bare"

    async def start(self, workers: int, pipeline: bool) -> None:
        self.port = free_port()
        for i in range(workers):
            argv = [
                self.env.venv_python,
                "-m",
                "tests.bench.peers.bare_limit",
                "serve",
                "--port",
                str(self.port),
                "--amqp",
                self.env.amqp_url,
            ]
            if workers > 1:
                argv.append("--reuse-port")
            proc = await self._spawn(f"bare limit {i}", argv)
            await proc.wait_line("limit ready")

    def servers(self) -> list[int]:
        return [pid for proc in self.procs for pid in tree(proc.pid)]

    def emitter(self) -> list[str]:
        return [
            self.env.venv_python,
            "-m",
            "tests.bench.peers.bare_limit",
            "emit",
            "--amqp",
            self.env.amqp_url,
        ]


def make_system(name: str, env: Env) -> System:
    return {"ours": Ours, "peer": Peer, "limit": Limit}[name](env)


@contextlib.asynccontextmanager
async def running(system: System, workers: int, pipeline: bool) -> AsyncIterator[System]:
    try:
        await system.start(workers, pipeline)
        pin(system.servers(), {int(SERVER_CPU)})
        yield system
    finally:
        await system.stop()


@contextlib.asynccontextmanager
async def loaders(
    system: System,
    total: int,
    prefix: str,
    room: str | None,
    concurrency: int,
    track: bool = False,
) -> AsyncIterator[tuple[list[Loader], dict[str, Any]]]:
    """Open ``total`` sockets from as many load-client processes as the open-files cap needs;
    yield them with the summed connect report."""
    parts = max(1, math.ceil(total / PER_LOADER))
    started: list[Loader] = []
    try:
        first = 0
        for i in range(parts):
            count = total // parts + (1 if i < total % parts else 0)
            started.append(
                await Loader.start(
                    system.port,
                    system.dialect,
                    count,
                    first,
                    prefix,
                    room,
                    system.secret,
                    concurrency,
                    track,
                )
            )
            first += count
        reports = [await loader.next_event(900) for loader in started]
        summary = {
            "ready": sum(r["ready"] for r in reports),
            "failed": sum(r["failed"] for r in reports),
            "failures": [r["failures"] for r in reports if r["failures"]],
            "connect_seconds": max(r["seconds"] for r in reports),
        }
        yield started, summary
    finally:
        for loader in started:
            await loader.quit()


# -- rows --------------------------------------------------------------------------------


async def row_connections(
    system: System, workers: int, target_n: int, sizes: Sizes, tag: str
) -> dict[str, Any]:
    async with running(system, workers, pipeline=False):
        await asyncio.sleep(sizes.settle)
        before = rss_bytes(system.servers())
        prefix = f"{tag}-c{workers}-{system.name}-"
        meter = CpuMeter(system)
        async with loaders(system, target_n, prefix, None, sizes.concurrency) as (ls, summary):
            connect_cpu = meter.used()
            await asyncio.sleep(sizes.settle)
            pin(system.servers(), {int(SERVER_CPU)})
            after = rss_bytes(system.servers())
            still_open = 0
            closed: Counter[str] = Counter()
            for loader in ls:
                stats = await loader.command({"cmd": "stats"}, 60)
                still_open += int(stats["open"])
                closed.update(stats["closed_by_server"])
        held = still_open
        log_tail = [] if held == summary["ready"] else [p.tail(20) for p in system.procs]
        return {
            **summary,
            "target": target_n,
            "held": held,
            "rss_before_mib": before / 2**20,
            "rss_after_mib": after / 2**20,
            "kib_per_connection": (after - before) / held / 1024 if held else None,
            "handshakes_per_s": summary["ready"] / max(summary["connect_seconds"], 1e-9),
            "server_cpu_ms_per_handshake": connect_cpu * 1000 / max(1, summary["ready"]),
            "closed_by_server": dict(closed),
            "server_log_tail": log_tail,
        }


async def row_traffic(system: System, sizes: Sizes, tag: str, row: str) -> dict[str, Any]:
    """Row 2a, 2b or 3 on a fresh start of the system, with fresh clients all in one room.
    The phase's messages carry a tag: only they count."""
    prefix = f"{tag}-{row}-{system.name}-"
    phase = f"{tag}-{row}"
    if row == "2a":
        kind, rate, count, drain = (
            "room",
            sizes.room_rate,
            int(sizes.room_rate * sizes.room_seconds),
            1,
        )
    elif row == "2b":
        kind, rate, count, drain = "room", 0.0, sizes.burst, 4
    else:
        kind, rate, count, drain = (
            "user",
            sizes.personal_rate,
            int(sizes.personal_rate * sizes.personal_seconds),
            1,
        )
    async with (
        running(system, 1, pipeline=True),
        loaders(system, sizes.clients, prefix, ROOM, sizes.concurrency) as (ls, summary),
    ):
        (loader,) = ls
        clients = summary["ready"]
        offered = count * clients if kind == "room" else count
        pin(system.servers(), {int(SERVER_CPU)})
        meter = CpuMeter(system)
        await loader.command({"cmd": "reset", "tag": phase}, 30)
        meter.start()
        published = await system.emit(kind, count, rate, sizes.clients, prefix, phase)
        stats = await loader.command(
            {"cmd": "wait", "count": offered, "timeout": drain * sizes.drain}, 600
        )
        return {
            "connected": summary,
            **summarise(stats, published, meter.share(), offered),
        }


def summarise(
    stats: dict[str, Any], published: dict[str, Any], server_cpu: float, offered: int
) -> dict[str, Any]:
    delivered = int(stats["notifications"])
    span = (stats["last_recv"] or 0) - published["first"]
    return {
        "offered": offered,
        "delivered": delivered,
        "delivered_ratio": delivered / offered if offered else None,
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
        "max_ms": stats["max_ms"],
        "frames_per_s": delivered / span if span > 0 else None,
        "publish_seconds": published["seconds"],
        "stale_frames": stats["stale"],
        "client_cpu_share": stats["cpu_share"],
        "server_cpu_share": server_cpu,
        "closed_by_server": stats["closed_by_server"],
    }


# -- the storm row -----------------------------------------------------------------------

SAMPLE = 0.5  # seconds between two readings of the servers' CPU after a drop
IDLE_SHARE = 0.05  # of a core: below this for two readings in a row, the servers are idle


async def on_all(ls: list[Loader], cmd: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(loader.command(cmd, timeout) for loader in ls)))


async def watch_drop(system: System, sizes: Sizes) -> dict[str, Any]:
    """The servers' CPU from now, read every ``SAMPLE`` seconds until they are idle (two
    readings in a row under ``IDLE_SHARE`` of a core) and ``storm_window`` has passed, or
    until ``storm_idle_cap``."""
    start = previous = time.monotonic()
    cpu0 = last = cpu_seconds(system.servers())
    shares: list[float] = []
    window_cpu: float | None = None
    quiet_start: tuple[float, float] | None = None  # (seconds after the drop, CPU then)
    idle: tuple[float, float] | None = None
    while True:
        await asyncio.sleep(SAMPLE)
        now = time.monotonic()
        cpu = cpu_seconds(system.servers())
        share = (cpu - last) / max(1e-9, now - previous)
        shares.append(round(share, 3))
        if share < IDLE_SHARE:
            if quiet_start is None:
                quiet_start = (previous - start, last - cpu0)
            elif idle is None:
                idle = quiet_start
        else:
            quiet_start = None
        if window_cpu is None and now - start >= sizes.storm_window:
            window_cpu = cpu - cpu0
        previous, last = now, cpu
        if (idle is not None and window_cpu is not None) or now - start >= sizes.storm_idle_cap:
            break
    return {
        "window_s": sizes.storm_window,
        "cpu_s_window": window_cpu,
        # a number, or ">CAP" when the servers were still busy at the cap
        "idle_after_drop_s": round(idle[0], 1) if idle else f">{sizes.storm_idle_cap:.0f}",
        "cpu_s_until_idle": idle[1] if idle else last - cpu0,
        "watched_s": previous - start,
        "cpu_share_samples": shares,
    }


async def storm_reconnect(
    system: System, ls: list[Loader], sizes: Sizes, phase: str, clients: int
) -> dict[str, Any]:
    """Every client reconnects at once (ours from its cursors) and rejoins the room; once half
    of them are back, one room notification tagged ``phase`` is published. How long until all
    are back, and how many got that notification not once."""
    await on_all(ls, {"cmd": "reset", "tag": phase}, 30)
    emitter = await system.arm(phase)
    try:
        meter = CpuMeter(system)
        command = {
            "cmd": "reconnect",
            "resume": True,
            "concurrency": sizes.concurrency,
            "timeout": sizes.storm_socket_timeout,
            "deadline": sizes.storm_deadline,
        }
        await on_all(ls, command, 30)
        live, waited = 0, time.monotonic()
        for _ in range(int(sizes.storm_deadline / 0.05)):
            progress = await on_all(ls, {"cmd": "progress"}, 30)
            live = sum(p["live"] for p in progress)
            if live * 2 >= clients or all(p["done"] for p in progress):
                break
            await asyncio.sleep(0.05)
        fired_after = time.monotonic() - waited
        published = await system.fire(emitter)
    finally:
        await emitter.stop()
    wait = sizes.storm_deadline + 30
    done = await on_all(ls, {"cmd": "reconnected", "timeout": wait}, wait + 30)
    reconnect_cpu = meter.used()
    delivery_cmd = {
        "cmd": "delivery",
        "timeout": sizes.drain,
        "settle": 1.0,
        "published_at": published["first"],
    }
    delivered = await on_all(ls, delivery_cmd, sizes.drain + 60)
    seconds = [d["seconds"] for d in done]

    def total(key: str) -> int:
        return sum(int(d[key]) for d in delivered)

    return {
        "ready": sum(d["ready"] for d in done),
        "failed": sum(d["failed"] for d in done),
        "failures": [d["failures"] for d in done if d["failures"]],
        # until the last client was back in the room (None: not all within the deadline)
        "seconds": None if None in seconds else max(seconds),
        "server_cpu_s": reconnect_cpu,
        "published_after_s": fired_after,
        "live_when_published": live,
        "ready_at_publish": total("ready_at_publish"),
        "missed": total("missed"),
        "duplicates": total("duplicates"),
        "got_live": total("live"),
        "got_replayed": total("replayed"),
        "stale_frames": total("stale"),
    }


async def row_storm(system: System, sizes: Sizes, tag: str) -> dict[str, Any]:
    """The storm row on a fresh start of the system: connect and join, drop and watch the
    servers' CPU until idle, reconnect (then, once idle), drop again and reconnect at once."""
    prefix = f"{tag}-storm-{system.name}-"
    clients = sizes.storm_clients
    async with running(system, 1, pipeline=True):
        meter = CpuMeter(system)
        async with loaders(system, clients, prefix, ROOM, sizes.concurrency, track=True) as (
            ls,
            summary,
        ):
            connect_cpu = meter.used()
            pin(system.servers(), {int(SERVER_CPU)})
            connect = {
                **summary,
                "clients_per_s": summary["ready"] / max(summary["connect_seconds"], 1e-9),
                "server_cpu_s": connect_cpu,
            }
            dropped = await on_all(ls, {"cmd": "drop", "timeout": 10}, 60)
            drop = {
                "dropped": sum(d["dropped"] for d in dropped),
                "still_open": sum(d["still_open"] for d in dropped),
                **await watch_drop(system, sizes),
            }
            after_idle = await storm_reconnect(system, ls, sizes, f"{tag}-storm-idle", clients)
            await on_all(ls, {"cmd": "drop", "timeout": 10}, 60)
            at_once = await storm_reconnect(system, ls, sizes, f"{tag}-storm-now", clients)
    return {
        "clients": clients,
        "connect": connect,
        "drop": drop,
        "reconnect": at_once,
        "reconnect_after_idle": after_idle,
    }


# -- the run -----------------------------------------------------------------------------


def ensure_venv(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating the bench virtualenv {venv} (peer packages)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True, timeout=900
        )
    return str(python)


@dataclass
class Results:
    started_at: str
    sizes: dict[str, Any]
    machine: dict[str, Any]
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)


async def run(sizes: Sizes, systems: list[str], rows: list[str], venv_python: str) -> Results:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    results = Results(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sizes=asdict(sizes),
        machine={"cpus": os.cpu_count(), "nofile": os.sysconf("SC_OPEN_MAX")},
    )
    tag = secrets.token_hex(3)
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    with own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)) as amqp_url:
        database_url = await create_database(db_base)
        try:
            env = Env(amqp_url, database_url, secrets.token_hex(24), venv_python)
            for row in rows:
                for name in systems:
                    system = make_system(name, env)
                    clock = time.monotonic()
                    print(f"-- row {row}: {name}", file=sys.stderr, flush=True)
                    try:
                        if row == "1":
                            figures = await row_connections(
                                system, 1, sizes.connections, sizes, tag
                            )
                        elif row == "1b":
                            figures = await row_connections(
                                system, 2, sizes.connections_two, sizes, tag
                            )
                        elif row == "storm":
                            figures = await row_storm(system, sizes, tag)
                        else:
                            figures = await row_traffic(system, sizes, tag, row)
                    except (TimeoutError, RuntimeError, OSError) as exc:
                        figures = {"error": str(exc)[-2000:]}
                    figures["bench_seconds"] = time.monotonic() - clock
                    print(json.dumps(figures), file=sys.stderr, flush=True)
                    results.rows.setdefault(row, {})[name] = figures
        finally:
            await stop_all(list(Proc.started))
            await drop_database(database_url)
    return results


# -- the table ---------------------------------------------------------------------------


def _raw(results: Results, row: str, system: str, *path: str) -> Any:
    value: Any = results.rows.get(row, {}).get(system)
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _get(results: Results, row: str, system: str, *path: str) -> float | None:
    value = _raw(results, row, system, *path)
    return float(value) if isinstance(value, int | float) else None


TABLE: list[tuple[str, str, tuple[str, ...], str]] = [
    ("1 connections held, 1 process", "1", ("held",), "{:,.0f}"),
    ("1 RSS per connection (KiB)", "1", ("kib_per_connection",), "{:.1f}"),
    ("1b connections held, 2 processes", "1b", ("held",), "{:,.0f}"),
    ("1b RSS per connection (KiB)", "1b", ("kib_per_connection",), "{:.1f}"),
    ("2a delivered / offered", "2a", ("delivered_ratio",), "{:.3f}"),
    ("2a p50 publish->receipt (ms)", "2a", ("p50_ms",), "{:.0f}"),
    ("2a p99 publish->receipt (ms)", "2a", ("p99_ms",), "{:.0f}"),
    ("2a frames/s", "2a", ("frames_per_s",), "{:,.0f}"),
    ("2b frames/s, flat out", "2b", ("frames_per_s",), "{:,.0f}"),
    ("2b delivered / offered", "2b", ("delivered_ratio",), "{:.3f}"),
    ("2b p99 publish->receipt (ms)", "2b", ("p99_ms",), "{:.0f}"),
    ("3 p50 publish->receipt (ms)", "3", ("p50_ms",), "{:.1f}"),
    ("3 p99 publish->receipt (ms)", "3", ("p99_ms",), "{:.1f}"),
    ("3 delivered / offered", "3", ("delivered_ratio",), "{:.3f}"),
    ("storm connect + join the room, s", "storm", ("connect", "connect_seconds"), "{:.1f}"),
    ("storm connect + join, clients/s", "storm", ("connect", "clients_per_s"), "{:,.0f}"),
    ("storm connect + join, server CPU s", "storm", ("connect", "server_cpu_s"), "{:.1f}"),
    ("storm server CPU s in 10 s after the drop", "storm", ("drop", "cpu_s_window"), "{:.2f}"),
    ("storm idle after the drop, s", "storm", ("drop", "idle_after_drop_s"), "{:.1f}"),
    ("storm server CPU s until idle", "storm", ("drop", "cpu_s_until_idle"), "{:.1f}"),
    ("storm reconnect once idle, s", "storm", ("reconnect_after_idle", "seconds"), "{:.1f}"),
    ("storm missed, once idle", "storm", ("reconnect_after_idle", "missed"), "{:,.0f}"),
    ("storm reconnect right after the drop, s", "storm", ("reconnect", "seconds"), "{:.1f}"),
    ("storm missed, right after", "storm", ("reconnect", "missed"), "{:,.0f}"),
    ("storm duplicates, right after", "storm", ("reconnect", "duplicates"), "{:,.0f}"),
]


def table(results: Results) -> str:
    lines = ["| row | ours | peer | limit | ours/peer | ours/limit |", "|---|--:|--:|--:|--:|--:|"]
    for label, row, path, fmt in TABLE:
        raws = [_raw(results, row, s, *path) for s in SYSTEMS]
        values = [_get(results, row, s, *path) for s in SYSTEMS]
        if all(v is None for v in raws):
            continue
        cells = [
            fmt.format(v) if v is not None else raw if isinstance(raw, str) else "n/a"
            for v, raw in zip(values, raws, strict=True)
        ]
        ours = values[0]
        ratios = [
            f"{ours / other:.2f}" if ours is not None and other else "n/a" for other in values[1:]
        ]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


# -- the emitter of ours (the producer SDK) ----------------------------------------------


async def emit_ours(args: argparse.Namespace) -> None:
    publisher = Publisher(Settings(amqp_url=args.amqp), name="bench emitter")
    service = NotificationService(publisher, producer="bench")
    first = 0.0

    async def send(indexes: range) -> None:
        nonlocal first
        now = time.time()
        first = first or now
        envelopes = []
        for i in indexes:
            to = target(args.kind, i, args.room, args.user_prefix, args.users)
            room, user_id = (to, None) if args.kind == "room" else (None, to)
            data = {"n": i, "tag": args.tag, "sent_at": now}
            envelopes.append(service.build("system_alert", room=room, user_id=user_id, data=data))
        await service.publish_many(envelopes)

    try:
        if args.gate:
            await armed()
        seconds = await paced(args.count, args.rate, send)
        report(args.count, seconds, first)
    finally:
        await publisher.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("run")
    bench.add_argument("--smoke", action="store_true", help="small sizes: under a minute a row")
    bench.add_argument("--systems", default=",".join(SYSTEMS))
    bench.add_argument("--rows", default="1,1b,2a,2b,3", help="any of 1, 1b, 2a, 2b, 3, storm")
    bench.add_argument("--connections", type=int, help="row 1, one process")
    bench.add_argument("--connections-two", type=int, help="row 1b, two processes")
    bench.add_argument("--clients", type=int, help="rows 2 and 3")
    bench.add_argument("--room-seconds", type=float)
    bench.add_argument("--burst", type=int)
    bench.add_argument("--personal-rate", type=float)
    bench.add_argument("--personal-seconds", type=float)
    bench.add_argument("--storm-clients", type=int, help="the storm row")
    bench.add_argument(
        "--venv",
        type=Path,
        default=ROOT / ".bench-venv",
        help="virtualenv of the peer and the limit",
    )
    bench.add_argument("--json", type=Path, help="write the results here")
    emitter = commands.add_parser("emit-ours")
    emitter.add_argument("--amqp", required=True)
    emitter.add_argument("--kind", choices=("room", "user"), required=True)
    emitter.add_argument("--room", default=ROOM)
    emitter.add_argument("--user-prefix", default="bench-u")
    emitter.add_argument("--users", type=int, default=1)
    emitter.add_argument("--count", type=int, required=True)
    emitter.add_argument("--rate", type=float, default=0.0)
    emitter.add_argument("--tag", default="", help="marks this phase's messages")
    emitter.add_argument("--gate", action="store_true", help="publish on a line on stdin")
    args = parser.parse_args()
    if args.command == "emit-ours":
        asyncio.run(emit_ours(args))
        return
    sizes = Sizes.smoke() if args.smoke else Sizes()
    for name in (
        "connections",
        "connections_two",
        "clients",
        "room_seconds",
        "burst",
        "personal_rate",
        "personal_seconds",
        "storm_clients",
    ):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    venv_python = ensure_venv(args.venv)
    systems = [s for s in args.systems.split(",") if s]
    rows = [r for r in args.rows.split(",") if r]
    try:
        results = asyncio.run(run(sizes, systems, rows, venv_python))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(results), indent=2))
        print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
