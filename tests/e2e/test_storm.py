"""Everybody leaves at once and comes back at once, while notifications keep flowing: on the
real edge processes, dispatcher, RabbitMQ and PostgreSQL.

- A mass disconnect followed at once by a reconnect storm, to the same edge (its users' keys
  still lingering, or unbound at once) or to another edge: every notification reaches every
  user, live or by the replay of the new connection, none twice on one connection, each
  connection's frames in seq order.
- Bindings left behind by sockets that never come back are removed within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from producers import topology
from producers.service import NotificationService
from tests.support import broker_admin
from tests.support.processes import NotifyProcess, start_edge
from tests.support.tokens import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

USERS = 150
NOTIFICATIONS = 450
WAIT = 30.0


class Socket:
    """One WebSocket of a user; collects every notification frame it gets, replayed or live."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.replayed = False
        self._reader = asyncio.create_task(self._read())
        self.changed = asyncio.Event()

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["type"] == "notification":
                    self.frames.append(frame)
                elif frame["type"] == "replay_complete":
                    self.replayed = True
                self.changed.set()

    @property
    def greatest_seq(self) -> int:
        return max((f["seq"] for f in self.frames), default=0)

    async def close(self) -> None:
        await self.ws.close()
        await self._reader

    async def until_replayed(self) -> None:
        while not self.replayed:
            self.changed.clear()
            await self.changed.wait()


async def open_socket(port: int, user_id: str, since: int | None = None) -> Socket:
    params: dict[str, Any] = {"user_id": user_id, "token": token_for(user_id)}
    if since is not None:
        params["since"] = since
    ws = await connect(f"ws://127.0.0.1:{port}/ws/connect?{urlencode(params)}", max_queue=None)
    socket = Socket(ws)
    await asyncio.wait_for(socket.until_replayed(), WAIT)
    return socket


@contextlib.asynccontextmanager
async def edges(env: dict[str, str], count: int) -> AsyncIterator[list[tuple[NotifyProcess, int]]]:
    started: list[tuple[NotifyProcess, int]] = []
    try:
        for _ in range(count):
            started.append(await start_edge(env))
        yield started
    finally:
        for proc, _ in started:
            await proc.stop()


async def publish(
    service: NotificationService,
    users: list[str],
    sent: dict[str, list[str]],
    halfway: asyncio.Event,
) -> None:
    for i in range(NOTIFICATIONS):
        user = users[i % len(users)]
        event_id = await service.notify(
            "chat_message",
            user_id=user,
            data={"conversation_id": "c", "sender_id": "s", "preview": f"#{i}"},
        )
        sent[user].append(str(event_id))
        if i == NOTIFICATIONS // 3:
            halfway.set()


@pytest.mark.parametrize(
    ("linger", "move"),
    [("30", False), ("0", False), ("0.02", False), ("30", True)],
    ids=["same-edge-lingering", "same-edge-unbound-at-once", "linger-expiring", "to-another-edge"],
)
async def test_a_mass_disconnect_and_an_immediate_reconnect_storm_miss_nothing(
    service: NotificationService, process_env: dict[str, str], linger: str, move: bool
) -> None:
    rng = random.Random(f"{linger}{move}")
    tag = f"storm{rng.randrange(10**9)}"
    users = [f"{tag}-{i}" for i in range(USERS)]
    async with edges({**process_env, "EDGE_KEY_LINGER": linger}, 2 if move else 1) as started:
        ports = [port for _, port in started]
        first = await asyncio.gather(
            *(open_socket(ports[i % len(ports)], u) for i, u in enumerate(users))
        )
        sent: dict[str, list[str]] = {u: [] for u in users}
        halfway = asyncio.Event()
        publishing = asyncio.create_task(publish(service, users, sent, halfway))
        await asyncio.wait_for(halfway.wait(), WAIT)
        await asyncio.gather(*(s.close() for s in first))  # everybody leaves at once
        second = await asyncio.gather(
            *(
                open_socket(ports[(i + move) % len(ports)], u, since=first[i].greatest_seq)
                for i, u in enumerate(users)
            )
        )
        await asyncio.wait_for(publishing, WAIT)

        async def complete(i: int) -> None:
            wanted = set(sent[users[i]])
            while not wanted <= {f["id"] for f in (*first[i].frames, *second[i].frames)}:
                second[i].changed.clear()
                await second[i].changed.wait()

        await asyncio.wait_for(asyncio.gather(*(complete(i) for i in range(USERS))), WAIT)
        ours = {event_id for ids in sent.values() for event_id in ids}
        for i, user in enumerate(users):
            for socket in (first[i], second[i]):
                seqs = [f["seq"] for f in socket.frames]
                assert seqs == sorted(set(seqs)), f"{user}: out of order or twice: {seqs}"
            # Another test's broadcasts may come too; of this test's notifications, the user's
            # own, each once.
            got = [f["id"] for f in (*first[i].frames, *second[i].frames) if f["id"] in ours]
            assert sorted(got) == sorted(sent[user]), user
        await asyncio.gather(*(s.close() for s in second))


async def bindings_of(amqp_url: str, queue: str) -> set[str]:
    listing = await broker_admin.list_bindings(amqp_url)
    return {key for source, destination, key in listing if destination == queue and source}


async def test_bindings_of_users_who_never_come_back_are_removed_within_a_bounded_time(
    process_env: dict[str, str],
) -> None:
    """With a linger of one second, the keys of 100 users who all leave at once are still
    bound right after (a quick return needs no bind) and gone soon after, leaving only the
    node's broadcast binding."""
    users = [f"gone{random.randrange(10**9)}-{i}" for i in range(100)]
    async with edges({**process_env, "EDGE_KEY_LINGER": "1"}, 1) as ((edge, port),):
        node_line = await edge.wait_for_line("edge node")
        queue = topology.edge_queue_name(node_line.split("edge node ", 1)[1].split()[0])
        sockets = await asyncio.gather(*(open_socket(port, u) for u in users))
        wanted = {topology.user_key(u) for u in users}
        assert wanted <= await bindings_of(process_env["AMQP_URL"], queue)
        await asyncio.gather(*(s.close() for s in sockets))

        async def only_broadcast() -> None:
            # Polling the broker: it announces no change of bindings.
            left = await bindings_of(process_env["AMQP_URL"], queue)
            while left != {topology.BROADCAST_KEY}:
                await asyncio.sleep(0.5)
                left = await bindings_of(process_env["AMQP_URL"], queue)

        await asyncio.wait_for(only_broadcast(), WAIT)
