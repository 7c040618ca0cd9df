"""The drain on SIGTERM: an edge stops accepting, closes its sockets with 1012 spread evenly
over ``EDGE_DRAIN_SECONDS``, and exits 0 within the window and its margin; the clients it
closes reconnect to another edge with ``since`` and miss nothing, see nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from websockets.exceptions import ConnectionClosed

from producers import topology
from producers.service import NotificationService
from socket_edge.ws_protocol import DRAIN_MARGIN, Drain
from tests.support.client import Client, personal, ws_client
from tests.support.deliveries import RoundRobin, watch_deliveries
from tests.support.processes import start_edge

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

WINDOW = 3.0
SOCKETS = 30


class Roamer:
    """One client: on the draining edge until its 1012, then on the other edge with
    ``since`` = the greatest seq it has seen. Keeps every notification id it got, in order."""

    def __init__(self, user_id: str, fallback_url: str) -> None:
        self.user_id = user_id
        self.fallback_url = fallback_url
        self.ids: list[str] = []
        self.cursor = 0
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.back = asyncio.Event()
        self.changed = asyncio.Event()

    def take(self, frames: list[dict[str, Any]]) -> None:
        for frame in personal(frames):
            self.ids.append(frame["id"])
            self.cursor = max(self.cursor, frame["seq"])
        self.changed.set()

    async def run(self, client: Client) -> None:
        self.cursor = client.replay_complete["data"]["last_seq"]
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await client.recv(timeout=60)
                self.take([frame])
        except ConnectionClosed as closed:
            self.closed_at = loop.time()
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
        async with ws_client(self.fallback_url, self.user_id, since=self.cursor) as again:
            self.take(again.replayed)
            self.back.set()
            with contextlib.suppress(ConnectionClosed):
                while True:
                    self.take([await again.recv(timeout=60)])

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.ids) < count:
                self.changed.clear()
                await self.changed.wait()


def test_the_drain_plan_spreads_every_socket_evenly_over_the_window() -> None:
    loop = asyncio.new_event_loop()
    try:
        sockets = [object() for _ in range(4)]
        drain = Drain(loop, 8.0, sockets)
        now = drain.start
        assert [drain.delay(s, now) for s in sockets] == [0.0, 2.0, 4.0, 6.0]
        assert drain.delay(object(), now) == 0.0  # unknown (or already closed): at once
        assert Drain(loop, 0.0, sockets).delay(sockets[3], loop.time()) == 0.0
    finally:
        loop.close()


@pytest.mark.usefixtures("dispatcher_process")
async def test_sigterm_spreads_the_1012s_over_the_window_and_nothing_is_missed(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    edge_url: str,
) -> None:
    env = {**process_env, "EDGE_DRAIN_SECONDS": str(WINDOW)}
    draining, port = await start_edge(env)
    users = [f"d-{uuid.uuid4().hex[:8]}" for _ in range(SOCKETS)]
    roamers = [Roamer(u, edge_url) for u in users]
    tasks: list[asyncio.Task[None]] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            for roamer in roamers:
                client = await stack.enter_async_context(
                    ws_client(f"ws://127.0.0.1:{port}", roamer.user_id)
                )
                tasks.append(asyncio.create_task(roamer.run(client)))
            loop = asyncio.get_running_loop()
            # Notifications before, during and after the drain, round-robin to every user.
            keys = [topology.user_key(u) for u in users]
            async with watch_deliveries(amqp, *keys) as deliveries:
                rounds = RoundRobin(service, users, deliveries)
                sent = rounds.sent
                await rounds.round(0)
                started = loop.time()
                os.kill(draining.pid, signal.SIGTERM)
                await draining.wait_for_line(f"closing {SOCKETS} sockets with 1012")
                # It accepts nobody any more: its listening socket is closed.
                with pytest.raises(OSError):
                    await asyncio.open_connection("127.0.0.1", port)
                for i in range(1, 4):
                    await rounds.round(i)
                    await asyncio.sleep(WINDOW / 4)  # rounds spread over the drain, not a wait
                code = await draining.exited(timeout=WINDOW + DRAIN_MARGIN)
                stopped = loop.time() - started
            await asyncio.gather(*(r.back.wait() for r in roamers))
            for roamer in roamers:
                await roamer.wait_for(len(sent[roamer.user_id]), timeout=10)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await draining.stop()

    assert code == 0
    assert stopped < WINDOW + DRAIN_MARGIN
    assert not any("Traceback" in line for line in draining.lines)
    assert [r.close_code for r in roamers] == [1012] * SOCKETS
    # Spread: socket i of N closes about i * window / N after the signal, not all at once.
    offsets = sorted(r.closed_at - started for r in roamers if r.closed_at is not None)
    assert len(offsets) == SOCKETS
    step = WINDOW / SOCKETS
    for i, offset in enumerate(offsets):
        assert i * step - 0.2 <= offset <= i * step + 1.0, (i, offsets)
    assert offsets[-1] - offsets[0] >= WINDOW * 0.8, offsets
    per_second = [sum(1 for o in offsets if s <= o - offsets[0] < s + 1) for s in range(3)]
    assert max(per_second) <= SOCKETS / WINDOW + 3, per_second
    # Each client got each of its notifications exactly once, in order, across both edges.
    for roamer in roamers:
        assert roamer.ids == sent[roamer.user_id], roamer.user_id
