"""The edge's Prometheus metrics (docs/metrics.md), served at ``GET /metrics`` on the edge's
own port.

Cheap on the delivery path: a delivery adds the number of sockets it was written to, once,
to ``notify_edge_frames_sent_total`` (not one increment per socket), and nothing is kept per
socket. What is a sum over sockets (``notify_edge_send_buffer_bytes``) or a count of them is
read by ``Sampler``, a task that wakes every ``SAMPLE_INTERVAL`` seconds and also measures how
late the event loop woke it (``notify_edge_event_loop_lag_seconds``).

``notify edge --workers N`` runs N processes on one port, and any of them may answer a scrape:
prometheus-client's multiprocess mode, in a directory of the run (``PROMETHEUS_MULTIPROC_DIR``,
prepared by ``prepare_multiprocess``). Each worker writes its values to files of its own;
``render`` sums them. The gauges are ``livesum``: the files of a worker that exited are
removed (``worker_exited``, and ``render`` for a worker that died without its cleanup), so a
gauge sums the live workers, while a counter keeps what dead workers counted.

Label values come from fixed sets: refusal codes (``REFUSAL_CODES``), close codes
(``CLOSE_CODES``), frame kinds (``FRAME_KINDS``); anything else is counted as ``other``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from producers.waiting import cancel_and_wait

log = logging.getLogger("notify.edge")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_INTERVAL = 1.0

REFUSAL_CODES = frozenset(
    {
        "missing_token",
        "invalid_token",
        "token_expired",
        "wrong_user",
        "forbidden_origin",
        "admin_only",
        "rate_limited",
        "missing_subprotocol",
        "connection_limit",
        "user_connection_limit",
        "body_too_large",
        "forbidden_room",
        "too_many_rooms",
    }
)
# The close codes of RFC 6455 the edge and its clients use (docs/websocket.md).
CLOSE_CODES = frozenset({1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013})
FRAME_KINDS = ("notification", "read", "broadcast", "room", "control", "replay")
CATCH_UP_OUTCOMES = ("caught_up", "too_large", "failed", "interrupted")
OTHER = "other"

REPLAY_FRAME_BUCKETS = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.sockets = Gauge(
            "notify_edge_sockets", "Open sockets", multiprocess_mode="livesum", registry=r
        )
        self.users = Gauge(
            "notify_edge_users",
            "Users with at least one open socket (summed over the workers of a process)",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.rooms = Gauge(
            "notify_edge_rooms",
            "Rooms with at least one subscribed socket (summed over the workers of a process)",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.send_buffer_bytes = Gauge(
            "notify_edge_send_buffer_bytes",
            "Bytes waiting in the sockets' write buffers, summed",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.handshakes = Counter(
            "notify_edge_handshakes",
            "WebSocket handshakes, by outcome",
            ["outcome"],
            registry=r,
        )
        self.accepted = self.handshakes.labels("accepted")
        self.refused = self.handshakes.labels("refused")
        self.refusals = Counter(
            "notify_edge_refusals",
            "Refusals (handshakes, REST calls, client frames) by code, as GET /ws/stats counts",
            ["code"],
            registry=r,
        )
        self.closes = Counter(
            "notify_edge_closes",
            "Sockets closed, by WebSocket close code (codes outside a fixed set: other)",
            ["code"],
            registry=r,
        )
        self._closes = {code: self.closes.labels(str(code)) for code in CLOSE_CODES}
        self._other_close = self.closes.labels(OTHER)
        self.frames_sent = Counter(
            "notify_edge_frames_sent",
            "Frames written to sockets, by kind",
            ["kind"],
            registry=r,
        )
        (
            self.sent_notification,
            self.sent_read,
            self.sent_broadcast,
            self.sent_room,
            self.sent_control,
            self.sent_replay,
        ) = (self.frames_sent.labels(kind) for kind in FRAME_KINDS)
        self.replay_frames = Histogram(
            "notify_edge_replay_frames",
            "Notifications replayed to a connecting socket",
            buckets=REPLAY_FRAME_BUCKETS,
            registry=r,
        )
        self.replay_seconds = Histogram(
            "notify_edge_replay_seconds",
            "Seconds from an accepted handshake to its replay_complete: the bind, the "
            "snapshot and the replayed frames",
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.slow_consumer_closes = Counter(
            "notify_edge_slow_consumer_closes",
            "Sockets closed with 1013 because they did not read their frames",
            registry=r,
        )
        self.catchups = Counter(
            "notify_edge_catchups",
            "Catch-ups after a broker blip, by outcome",
            ["outcome"],
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "notify_edge_event_loop_lag_seconds",
            f"How late the event loop ran a timer due every {SAMPLE_INTERVAL:g}s",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        for code in REFUSAL_CODES:
            self.refusals.labels(code)
        for outcome in CATCH_UP_OUTCOMES:
            self.catchups.labels(outcome)

    def refusal(self, code: str) -> None:
        self.refusals.labels(code if code in REFUSAL_CODES else OTHER).inc()

    def closed(self, code: int | None) -> None:
        if code is None:
            return
        self._closes.get(code, self._other_close).inc()

    def catch_up(self, outcome: str) -> None:
        self.catchups.labels(outcome if outcome in CATCH_UP_OUTCOMES else OTHER).inc()


_shared: EdgeMetrics | None = None


def shared() -> EdgeMetrics:
    """The metrics of this process, in prometheus-client's default registry."""
    global _shared
    if _shared is None:
        _shared = EdgeMetrics()
    return _shared


# -- sampling ------------------------------------------------------------------------------


class Node(Protocol):
    """What the sampler reads of the edge node."""

    @property
    def connections(self) -> Collection[_Buffered]: ...

    def counts(self) -> tuple[int, int]:
        """Users and rooms with local sockets."""


class _Buffered(Protocol):
    @property
    def buffered_bytes(self) -> int: ...


# Sockets or keys read between two turns of the event loop: a sample of 20,000 sockets is a
# few milliseconds of work, which in one piece would hold up every delivery meanwhile.
SAMPLE_CHUNK = 1_000


class Sampler:
    """Every ``interval`` seconds: the event loop's lag, and the gauges that are counts or sums
    over the sockets (O(sockets) once a second, not work on every frame), read a chunk at a
    time with the event loop free to run in between."""

    def __init__(self, node: Node, metrics: EdgeMetrics, interval: float = SAMPLE_INTERVAL) -> None:
        self.node = node
        self.metrics = metrics
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="edge-metrics")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def sample(self) -> None:
        metrics, node = self.metrics, self.node
        connections = tuple(node.connections)
        metrics.sockets.set(len(connections))
        buffered = 0
        for start in range(0, len(connections), SAMPLE_CHUNK):
            if start:
                await asyncio.sleep(0)
            buffered += sum(c.buffered_bytes for c in connections[start : start + SAMPLE_CHUNK])
        metrics.send_buffer_bytes.set(buffered)
        users, rooms = node.counts()
        metrics.users.set(users)
        metrics.rooms.set(rooms)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._sample()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.metrics.event_loop_lag.observe(max(0.0, loop.time() - due))
            await self._sample()

    async def _sample(self) -> None:
        try:
            await self.sample()
        except Exception:  # a bug here must not stop the sampling, nor the edge
            log.exception("sampling the edge's metrics failed")


# -- serving, one process or several -------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess(workers: int) -> Callable[[], None]:
    """Before ``notify edge --workers N`` (N > 1) starts its workers: a fresh directory for
    their metric files, named in the environment the workers inherit. Returns what removes it
    when the run ends. A directory the operator named in ``PROMETHEUS_MULTIPROC_DIR`` is used
    instead, emptied of the files of an earlier run, and kept."""
    if workers <= 1:
        return lambda: None
    given = multiprocess_dir()
    if given is not None:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        return lambda: None
    import tempfile

    made = tempfile.mkdtemp(prefix="notify-edge-metrics-")
    os.environ[MULTIPROC_ENV] = made

    def remove() -> None:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)

    return remove


def worker_exited() -> None:
    """A worker's cleanup: its live gauges leave the sums (its counters stay)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def _forget_dead_workers(path: str) -> None:
    """Remove the live gauges of workers that died without their cleanup (killed)."""
    from prometheus_client import multiprocess

    for pid in _dead(int(m[1]) for f in os.listdir(path) if (m := _LIVE_FILE.fullmatch(f))):
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _dead(pids: Iterable[int]) -> set[int]:
    dead = set()
    for pid in set(pids):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:
            pass
    return dead


def render() -> tuple[bytes, str]:
    """The text exposition of this process's metrics: of every worker in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    _forget_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def elapsed(since: float) -> float:
    return time.perf_counter() - since
