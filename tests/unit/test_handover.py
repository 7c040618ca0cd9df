"""A socket's streams: the handover from replay to live, per stream, and its limits."""

from __future__ import annotations

import asyncio
import random

import pytest

from socket_edge.connection import Connection, IllegalTransition, State
from socket_edge.sinks import OutFrame
from tests.support.sockets import FakeWebSocket, RecordingSink

USER = "user.u1"
ROOM = "room.tour_1"


def connection(
    room: int = 1_000, hold_limit: int = 100
) -> tuple[Connection, RecordingSink, FakeWebSocket]:
    ws, sink = FakeWebSocket(), RecordingSink(room)
    conn = Connection(
        ws,  # type: ignore[arg-type]
        "u1",
        device_type="test",
        app_version=None,
        send_buffer=1 << 20,
        hold_limit=hold_limit,
        sink=sink,
    )
    return conn, sink, ws


def f(text: str) -> OutFrame:
    return OutFrame(text)


def test_live_frames_held_during_replay_are_released_above_the_snapshot() -> None:
    conn, sink, _ = connection()
    conn.hold(USER)
    conn.deliver(USER, 5, f("five"))  # committed before the snapshot: part of the replay
    conn.deliver(USER, 7, f("seven"))  # committed after it
    conn.deliver(USER, 6, f("six"))  # at the high-water mark: covered by the replay
    conn.send(f("replayed"))
    conn.release(USER, high_water=6)
    conn.deliver(USER, 8, f("eight"))
    conn.deliver(USER, 4, f("four"))  # committed before the snapshot, its live copy late
    assert sink.sent == ["replayed", "seven", "eight"]


def test_streams_are_independent() -> None:
    conn, sink, _ = connection()
    conn.hold(USER)
    conn.open_live(ROOM)
    conn.deliver(ROOM, 3, f("room-3"))  # the room is live while the user stream replays
    conn.deliver(USER, 9, f("user-9"))
    conn.release(USER, high_water=8)
    conn.deliver("room.other", 10, f("not subscribed"))
    assert sink.sent == ["room-3", "user-9"]


def test_a_catch_up_releases_what_arrived_and_what_it_read_in_seq_order_once() -> None:
    conn, sink, _ = connection()
    conn.open_live(USER)
    conn.deliver(USER, 2, f("live-2"))
    stream = conn.hold(USER, keep_high_water=True)  # the broker connection dropped
    conn.deliver(USER, 6, f("live-6"))  # arrived after the broker came back: held
    conn.deliver(USER, 5, f("live-5"))
    conn.deliver(USER, 3, f("gap-3"))  # read from Postgres by the catch-up
    conn.deliver(USER, 5, f("gap-5"))  # read too, and arrived live as well
    assert conn.holds(USER, stream)
    conn.release(USER, stream.high_water)
    assert sink.sent == ["live-2", "gap-3", "live-5", "live-6"]


def test_a_catch_up_does_not_release_a_stream_held_again_by_someone_else() -> None:
    conn, _, _ = connection()
    conn.open_live(ROOM)
    stream = conn.hold(ROOM, keep_high_water=True)
    conn.drop(ROOM)  # unsubscribed, then subscribed again with a replay of its own
    conn.hold(ROOM)
    assert not conn.holds(ROOM, stream) and conn.holding(ROOM)


def test_release_without_hold_is_an_illegal_transition() -> None:
    conn, _, _ = connection()
    conn.open_live(USER)
    with pytest.raises(IllegalTransition, match=r"expects a HOLDING stream"):
        conn.release(USER, 0)


@pytest.mark.parametrize("seed", range(50))
def test_every_seq_is_sent_once_whatever_the_arrival_order(seed: int) -> None:
    """Seqs 1..40 committed; the snapshot saw 1..high_water; live copies of all of them
    arrive in any order, before, during and after the replay: each goes out exactly once."""
    rng = random.Random(seed)
    high_water = rng.randint(0, 40)
    arrivals = list(range(1, 41))
    rng.shuffle(arrivals)
    split = rng.randint(0, 40)
    conn, sink, _ = connection()
    conn.hold(USER)
    for seq in arrivals[:split]:
        conn.deliver(USER, seq, f(str(seq)))
    for seq in range(1, high_water + 1):
        conn.send(f(str(seq)))  # the replay
    conn.release(USER, high_water)
    for seq in arrivals[split:]:
        conn.deliver(USER, seq, f(str(seq)))
    assert sorted(int(t) for t in sink.sent) == list(range(1, 41))


async def test_a_client_that_does_not_read_is_closed_with_1013() -> None:
    conn, _, ws = connection(room=3)
    conn.open_live(USER)
    for seq in range(1, 6):
        conn.deliver(USER, seq, f(str(seq)))
    await asyncio.sleep(0)  # the close runs as its own task
    assert conn.state is State.CLOSED
    assert ws.closed is not None and ws.closed[0] == 1013


async def test_too_many_frames_held_during_a_replay_close_the_socket() -> None:
    conn, _, ws = connection(hold_limit=10)
    conn.hold(USER)
    for seq in range(1, 12):
        conn.deliver(USER, seq, f(str(seq)))
    await asyncio.sleep(0)
    assert ws.closed is not None and ws.closed[0] == 1013


async def test_nothing_is_sent_after_close() -> None:
    conn, sink, _ = connection()
    conn.open_live(USER)
    await conn.close()
    assert conn.deliver(USER, 1, f("late")) is False
    conn.send(f("later"))
    assert sink.sent == []


@pytest.mark.parametrize("seed", range(30))
async def test_the_nodes_set_of_holding_sockets_follows_every_transition(seed: int) -> None:
    """The node counts held frames over the sockets in its holding set only: whatever a socket
    goes through, it is in the set exactly while one of its streams is HOLDING, and the count
    over the set equals the count over every socket."""
    rng = random.Random(seed)
    holding: set[Connection] = set()
    conns = []
    for i in range(4):
        conn = Connection(
            FakeWebSocket(),  # type: ignore[arg-type]
            f"u{i}",
            device_type="test",
            app_version=None,
            send_buffer=1 << 20,
            sink=RecordingSink(1 << 20),
            holding=holding,
        )
        conns.append(conn)
    keys = [USER, ROOM, "room.tour_2"]
    seq = 0
    for _ in range(200):
        conn, key = rng.choice(conns), rng.choice(keys)
        step = rng.randrange(7)
        if step == 0:
            conn.hold(key, keep_high_water=rng.random() < 0.5)
        elif step == 1 and conn.holding(key):
            conn.release(key, high_water=rng.randint(0, seq))
        elif step == 2:
            conn.open_live(key)
        elif step == 3:
            conn.drop(key)
        elif step == 4 and rng.random() < 0.1:
            await conn.close()
        else:
            seq += 1
            conn.deliver(key, seq, f(str(seq)))
        for c in conns:
            expected = c.state is State.OPEN and any(c.holding(k) for k in keys)
            assert (c in holding) == expected
        assert sum(c.held_frames for c in holding) == sum(
            c.held_frames for c in conns if c.state is State.OPEN
        )
