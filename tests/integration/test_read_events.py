"""Read events through the real ``notify dispatcher``: logged, applied to the projection, and
synced to every device of the user as a ``read`` frame carrying the event's own seq."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers import topology
from producers.envelope import Envelope, ReadEvent

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dispatcher_process")]

WAIT = 10.0
Frame = dict[str, Any]


class Frames:
    """Every message routed to one delivery key, with its seq header."""

    def __init__(self) -> None:
        self.received: list[tuple[int, Frame]] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        seq = (message.headers or {})[topology.SEQ_HEADER]
        assert isinstance(seq, int)
        async with self._changed:
            self.received.append((seq, orjson.loads(message.body)))
            self._changed.notify_all()

    async def first(self, wanted: Callable[[Frame], bool]) -> tuple[int, Frame]:
        def found() -> tuple[int, Frame] | None:
            return next(((s, f) for s, f in self.received if wanted(f)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), WAIT)
        hit = found()
        assert hit is not None
        return hit


@asynccontextmanager
async def frames_of(amqp: AbstractRobustConnection, key: str) -> AsyncIterator[Frames]:
    channel = await amqp.channel()
    exchange = await topology.declare_deliver_exchange(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, key)
    frames = Frames()
    tag = await queue.consume(frames.on_message, no_ack=True)
    try:
        yield frames
    finally:
        await queue.cancel(tag)
        await channel.close()


class Events:
    def __init__(self, exchange: aio_pika.abc.AbstractExchange) -> None:
        self.exchange = exchange

    async def publish(self, event: Envelope | ReadEvent) -> uuid.UUID:
        await self.exchange.publish(
            aio_pika.Message(body=event.to_json(), content_type="application/json"),
            routing_key=event.routing_key,
        )
        return event.event_id


@pytest.fixture
async def events(amqp: AbstractRobustConnection) -> AsyncIterator[Events]:
    channel = await amqp.channel(publisher_confirms=True)
    yield Events(await topology.declare_events_exchange(channel))
    await channel.close()


def note(**audience: Any) -> Envelope:
    return Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "chat_message",
            "data": {"conversation_id": "c1", "sender_id": "s1", "preview": "hi"},
            **audience,
        }
    )


def read(user_id: str, **fields: Any) -> ReadEvent:
    kind = "notification.read" if "ids" in fields else "notification.all_read"
    return ReadEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": kind, "user_id": user_id}
        | fields
    )


def is_read(frame: Frame) -> bool:
    return bool(frame["type"] == "read")


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def log_seq(engine: AsyncEngine, event_id: uuid.UUID) -> int:
    sql = "SELECT seq FROM notification_events WHERE event_id = :id"
    return int(await scalar(engine, sql, id=event_id))


async def unread_ids(engine: AsyncEngine, user_id: str) -> set[str]:
    sql = """SELECT n.event_id FROM notification_recipients r JOIN notifications n USING (seq)
             WHERE r.user_id = :u AND r.read_at IS NULL AND n.audience = 'user'"""
    async with engine.connect() as conn:
        return {str(i) for i in (await conn.execute(text(sql), {"u": user_id})).scalars()}


async def broadcasts_in_window(engine: AsyncEngine) -> int:
    sql = """SELECT count(*) FROM notifications
             WHERE audience = 'broadcast' AND created_at > now() - interval '7 days'"""
    return int(await scalar(engine, sql))


async def send_all(events: Events, frames: Frames, notes: list[Envelope]) -> dict[str, int]:
    """Publish notifications and await their deliveries; their seqs by event_id."""
    for n in notes:
        await events.publish(n)
    seqs = {}
    for n in notes:
        wanted = str(n.event_id)
        seq, _ = await frames.first(lambda f: bool(f.get("id") == wanted))  # noqa: B023
        seqs[wanted] = seq
    return seqs


async def test_mark_read_marks_only_the_users_own_notifications_and_syncs_the_badge(
    events: Events, amqp: AbstractRobustConnection, engine: AsyncEngine, user_id: str
) -> None:
    mine = [note(user_id=user_id) for _ in range(3)]
    theirs = note(user_id=f"{user_id}-other")
    async with frames_of(amqp, topology.user_key(user_id)) as frames:
        await send_all(events, frames, mine)
        await events.publish(theirs)
        ids = [mine[0].event_id, mine[1].event_id, theirs.event_id]
        event_id = await events.publish(read(user_id, ids=ids))
        seq, frame = await frames.first(is_read)

    assert seq == await log_seq(engine, event_id)
    assert frame["ids"] == [str(mine[0].event_id), str(mine[1].event_id)]
    assert frame["unread_count"] == 1 + await broadcasts_in_window(engine)
    assert "up_to_seq" not in frame
    assert await unread_ids(engine, user_id) == {str(mine[2].event_id)}
    assert await unread_ids(engine, f"{user_id}-other") == {str(theirs.event_id)}


async def test_mark_all_read_up_to_a_seq_leaves_later_ones_unread(
    events: Events, amqp: AbstractRobustConnection, engine: AsyncEngine, user_id: str
) -> None:
    notes = [note(user_id=user_id) for _ in range(3)]
    async with frames_of(amqp, topology.user_key(user_id)) as frames:
        seqs = await send_all(events, frames, notes)
        bound = seqs[str(notes[1].event_id)]
        event_id = await events.publish(read(user_id, up_to_seq=bound))
        seq, frame = await frames.first(is_read)

    assert seq == await log_seq(engine, event_id)
    assert frame["up_to_seq"] == bound
    # Broadcasts other tests sent inside the window are marked too; ids come in seq order.
    mine = [i for i in frame["ids"] if i in {str(n.event_id) for n in notes}]
    assert mine == [str(notes[0].event_id), str(notes[1].event_id)]
    assert await unread_ids(engine, user_id) == {str(notes[2].event_id)}


@pytest.mark.broadcasts
async def test_mark_all_read_marks_broadcasts_too_and_a_second_one_marks_nothing(
    events: Events, amqp: AbstractRobustConnection, engine: AsyncEngine, user_id: str
) -> None:
    personal, broadcast = note(user_id=user_id), note(broadcast=True)
    async with (
        frames_of(amqp, topology.user_key(user_id)) as frames,
        frames_of(amqp, topology.BROADCAST_KEY) as everybody,
    ):
        await send_all(events, frames, [personal])
        await send_all(events, everybody, [broadcast])
        first_id = await events.publish(read(user_id))
        _, first = await frames.first(is_read)
        await events.publish(read(user_id))
        _, second = await frames.first(lambda f: is_read(f) and f is not first)

    assert {str(personal.event_id), str(broadcast.event_id)} <= set(first["ids"])
    assert first["unread_count"] == 0
    assert first["up_to_seq"] == await log_seq(engine, first_id) - 1
    assert second["ids"] == [] and second["unread_count"] == 0
    state = await scalar(
        engine,
        "SELECT read_at IS NOT NULL FROM notification_recipients r JOIN notifications n "
        "USING (seq) WHERE r.user_id = :u AND n.event_id = :id",
        u=user_id,
        id=broadcast.event_id,
    )
    assert state is True
