"""A socket's handover from replay to live: held frames newer than the snapshot are released
once, in order; frames the snapshot covered are dropped."""

from __future__ import annotations

import asyncio

import pytest

from socket_edge.connection import Connection, IllegalTransition, State


class FakeWebSocket:
    client = None

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)


def connection(buffer: int = 100) -> tuple[Connection, FakeWebSocket]:
    ws = FakeWebSocket()
    conn = Connection(ws, "u1", device_type="test", app_version=None, send_buffer=buffer)  # type: ignore[arg-type]
    return conn, ws


async def test_live_frames_held_during_replay_are_released_after_the_snapshot() -> None:
    conn, ws = connection()
    conn.start_writer()
    conn.deliver(5, "five")  # committed before the snapshot: part of the replay
    conn.deliver(7, "seven")  # committed after it
    conn.deliver(6, "six")  # equal to the high-water mark: covered by the replay
    conn.send("replayed")
    conn.go_live(high_water=6)
    conn.deliver(8, "eight")
    conn.deliver(4, "four")  # committed before the snapshot, its live copy late: replayed
    await conn.flushed()
    assert ws.sent == ["replayed", "seven", "eight"]
    await conn.close()


async def test_go_live_twice_is_an_illegal_transition() -> None:
    conn, _ = connection()
    conn.go_live(0)
    with pytest.raises(IllegalTransition, match=r"expects State\.REPLAYING"):
        conn.go_live(0)


async def test_a_client_that_does_not_read_is_closed_with_1013() -> None:
    conn, ws = connection(buffer=3)
    conn.go_live(0)  # no writer running: nothing drains the buffer
    for seq in range(1, 6):
        conn.deliver(seq, f"f{seq}")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert conn.state is State.CLOSED
    assert ws.closed is not None and ws.closed[0] == 1013


async def test_nothing_is_delivered_after_close() -> None:
    conn, ws = connection()
    conn.start_writer()
    conn.go_live(0)
    await conn.close()
    conn.deliver(1, "late")
    await asyncio.sleep(0)
    assert ws.sent == []
