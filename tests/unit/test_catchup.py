"""The catch-up after a broker blip (docs/architecture.md, invariant 4b), as pure sequencing:
an edge node whose registry binds in memory, sockets that record what they are sent, and
deliveries handed to ``CatchUp.run`` as the snapshot would give them. Every held stream gets
the gap's frames above its own mark, in seq order, each once; read syncs included."""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection

import orjson
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from dispatcher.records import Delivery, encode_frame, read_frame
from producers import topology
from socket_edge import catchup
from socket_edge.broker import Delivery as BrokerDelivery
from socket_edge.catchup import CLOSE_SERVICE_RESTART
from socket_edge.connection import Connection
from socket_edge.edge import EdgeNode
from tests.support.edge_node import MemoryBinder
from tests.support.sockets import FakeWebSocket, RecordingSink


async def socket_of(node: EdgeNode, user_id: str, rooms: tuple[str, ...] = ()) -> RecordingSink:
    sink = RecordingSink()
    connection = Connection(
        FakeWebSocket(),  # type: ignore[arg-type]
        user_id,
        device_type="test",
        app_version=None,
        send_buffer=1 << 20,
        sink=sink,
    )
    await node.attach(connection)
    connection.open_live(connection.user_key)
    for room in rooms:
        await node.join(connection, room)
        connection.open_live(topology.room_key(room))
    return sink


def notification(seq: int, key: str) -> Delivery:
    frame = {"type": "notification", "id": str(uuid.UUID(int=seq)), "seq": seq}
    if topology.is_room_key(key):
        frame["room"] = key.removeprefix(topology.ROOM_PREFIX)
    return Delivery(seq, key, encode_frame(frame).encode())


def read_sync(seq: int, user_id: str, unread: int) -> Delivery:
    frame = read_frame([str(uuid.UUID(int=1))], unread)
    return Delivery(seq, topology.user_key(user_id), encode_frame(frame).encode())


def seqs(sink: RecordingSink) -> list[tuple[str, int]]:
    frames = [orjson.loads(text) for text in sink.sent]
    return [(f["type"], f.get("seq", f.get("unread_count"))) for f in frames]


def live(node: EdgeNode, delivery: Delivery) -> None:
    """A delivery arriving from the broker, handed to the node as its consumer does."""
    text = delivery.body.decode()
    node.on_delivery(BrokerDelivery(delivery.routing_key, text, delivery.seq, origin=None))


async def test_the_gap_and_its_read_syncs_reach_each_held_stream_in_order_once(
    node: EdgeNode,
) -> None:
    alice = await socket_of(node, "alice", rooms=("tour_1",))
    bob = await socket_of(node, "bob")
    live(node, notification(10, "user.alice"))
    node.catch_up.connection_lost()
    # Keys re-bound first get new frames before the gap is read; one is also in the gap.
    live(node, notification(15, "user.alice"))
    live(node, notification(16, "room.tour_1"))
    gap = [
        notification(11, "user.alice"),
        read_sync(12, "alice", unread=1),
        notification(13, "room.tour_1"),
        notification(14, topology.BROADCAST_KEY),
        notification(15, "user.alice"),
        notification(14, "user.carol"),  # nobody here: ignored
    ]
    await node.catch_up.run(sorted(gap, key=lambda d: d.seq), high_water=16)
    assert seqs(alice) == [
        ("notification", 10),
        ("notification", 11),
        ("read", 1),
        ("notification", 14),
        ("notification", 15),
        ("notification", 13),
        ("notification", 16),
    ]
    assert seqs(bob) == [("notification", 14)]
    assert node.last_seq == 16
    # After the catch-up, streams are live again; a copy of a gap delivery is dropped.
    live(node, notification(11, "user.alice"))
    live(node, notification(17, "user.alice"))
    assert seqs(alice)[-1] == ("notification", 17) and len(alice.sent) == 8


@pytest.mark.parametrize("seed", range(5))
async def test_random_gaps_are_delivered_in_seq_order_without_copies(
    node: EdgeNode, seed: int
) -> None:
    rng = random.Random(seed)
    sinks = {user: await socket_of(node, user) for user in ("u1", "u2", "u3")}
    node.catch_up.connection_lost()
    gap = []
    for seq in range(1, 200):
        user = rng.choice(list(sinks))
        gap.append(
            read_sync(seq, user, seq) if rng.random() < 0.2 else notification(seq, f"user.{user}")
        )
    arrived_live = rng.sample(gap, 40)  # some of the gap also arrives live, in any order
    for delivery in arrived_live:
        live(node, delivery)
    await node.catch_up.run(gap, high_water=199)
    for user, sink in sinks.items():
        expected = [d.seq for d in gap if d.routing_key == f"user.{user}"]
        got = [orjson.loads(text) for text in sink.sent]
        assert len(got) == len(expected), (seed, user)
        kinds = ["read" if d.body.startswith(b'{"type":"read"') else "notification" for d in gap
                 if d.routing_key == f"user.{user}"]  # fmt: skip
        assert [f["type"] for f in got] == kinds, (seed, user)
        notes = [d.seq for d in gap if d.routing_key == f"user.{user}" and b'"seq"' in d.body]
        assert [f["seq"] for f in got if f["type"] == "notification"] == notes, (seed, user)


async def test_a_replay_ending_while_a_catch_up_is_pending_is_released_by_it(
    node: EdgeNode,
) -> None:
    sink = await socket_of(node, "alice")
    node.catch_up.connection_lost()
    # A socket that connected during the blip: its replay read up to seq 20 and ended.
    late_sink = RecordingSink()
    late = Connection(
        FakeWebSocket(),  # type: ignore[arg-type]
        "alice",
        device_type="test",
        app_version=None,
        send_buffer=1 << 20,
        sink=late_sink,
    )
    late.hold(late.user_key)
    await node.attach(late)
    node.catch_up.release(late, late.user_key, high_water=20)
    assert late.holding(late.user_key)  # not live before the catch-up
    gap = [notification(seq, "user.alice") for seq in (18, 21)]
    await node.catch_up.run(gap, high_water=21)
    assert seqs(late_sink) == [("notification", 21)]  # 18 was in its replay
    assert seqs(sink) == [("notification", 18), ("notification", 21)]


async def test_a_gap_too_large_closes_every_socket_with_1012(node: EdgeNode) -> None:
    await socket_of(node, "alice")
    connection = next(iter(node.connections))
    node.catch_up.connection_lost()
    limit = node.settings.edge_catch_up_limit
    gap = [notification(seq, "user.alice") for seq in range(1, limit + 2)]
    await node.catch_up.run(gap, high_water=limit + 1)
    assert connection.close_code == CLOSE_SERVICE_RESTART


class FlakyBinder(MemoryBinder):
    """Binds fail ``failures`` times with a broker error that leaves the queue in place (no
    loss of it is reported meanwhile)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def bind_many(self, keys: Collection[str]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ChannelNotFoundEntity("NOT_FOUND - no queue 'notifications.edge.unit'")


@pytest.mark.parametrize(("failures", "caught_up"), [(0, True), (2, True), (10, False)])
async def test_binding_again_is_retried_while_the_queue_stays(
    node: EdgeNode, monkeypatch: pytest.MonkeyPatch, failures: int, caught_up: bool
) -> None:
    alice = await socket_of(node, "alice")
    connection = next(iter(node.connections))
    binder = FlakyBinder(failures)
    node.registry._binder = binder  # the keys are bound already: only the rebind is flaky
    monkeypatch.setattr(catchup, "REBIND_PAUSE", 0.0)

    async def snapshot(since: int) -> tuple[list[Delivery], int]:
        return [notification(since + 1, "user.alice")], since + 1

    monkeypatch.setattr(node.catch_up, "_read", snapshot)
    live(node, notification(10, "user.alice"))
    node.catch_up.connection_lost()
    await node.catch_up.after_reconnect()
    if caught_up:
        assert seqs(alice) == [("notification", 10), ("notification", 11)]
        assert connection.close_code is None
        assert binder.calls == failures + 1
    else:
        assert connection.close_code == CLOSE_SERVICE_RESTART
        assert binder.calls == catchup.REBIND_ATTEMPTS
