"""Poison messages against the real ``notify dispatcher``: every kind of bad input is
dead-lettered with its reason and original routing key, a valid event the database refuses is
retried a bounded number of times, and ``notify dead-letters`` lists and replays them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers import topology
from tests.support.cli import run_notify
from tests.support.dead_letters import take_dead_letter
from tests.support.deliveries import watch_deliveries

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dispatcher_process")]

WAIT = 20.0


def body(**fields: Any) -> bytes:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "notification_type": "system_alert",
        "user_id": "poison-user",
        "title": "t",
        "message": "m",
    }
    event.update(fields)
    return orjson.dumps({k: v for k, v in event.items() if v is not None})


BAD_INPUT = {
    "malformed JSON": (b'{"event_id": "x",', "booking_created", "not valid JSON"),
    "wrong schema_version": (body(schema_version=2), "system_alert", "schema_version"),
    "unknown type": (body(notification_type="space_launch"), "space_launch", "notification_type"),
    "two audiences": (body(room="lobby"), "system_alert", "exactly one audience"),
    "oversize data": (body(data={"blob": "x" * 17_000}), "system_alert", "larger than 16384"),
    "missing event_id": (body(event_id=None), "system_alert", "event_id: Field required"),
    "deeply nested data": (
        b'{"event_id":"%s","schema_version":1,"notification_type":"system_alert",'
        b'"user_id":"u1","data":{"x":%s}}' % (str(uuid.uuid4()).encode(), b"[" * 300 + b"]" * 300),
        "system_alert",
        "nested more than 32 levels",
    ),
    "bidi override in a title": (body(title="inv\u202eoice"), "system_alert", "title"),
    "redirect in action_url": (body(action_url="/\\evil.example"), "system_alert", "action_url"),
    "seq beyond bigint": (
        orjson.dumps(
            {"event_id": str(uuid.uuid4()), "schema_version": 1,
             "event_type": "notification.all_read", "user_id": "u1", "up_to_seq": 2**63}
        ),
        "notification.all_read",
        "up_to_seq",
    ),
    "read event without ids": (
        orjson.dumps(
            {"event_id": str(uuid.uuid4()), "schema_version": 1,
             "event_type": "notification.read", "user_id": "u1", "ids": []}
        ),
        "notification.read",
        "at least one id",
    ),
}  # fmt: skip


@pytest.fixture
async def dead_letters(amqp: AbstractRobustConnection) -> AsyncIterator[AbstractQueue]:
    channel = await amqp.channel()
    _, queue = await topology.declare_dead_letter(channel)
    yield queue
    await channel.close()


@pytest.fixture
async def events(amqp: AbstractRobustConnection) -> AsyncIterator[aio_pika.abc.AbstractExchange]:
    channel = await amqp.channel(publisher_confirms=True)
    yield await topology.declare_events_exchange(channel)
    await channel.close()


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
async def test_bad_input_is_dead_lettered_with_its_reason_and_the_queue_keeps_flowing(
    events: aio_pika.abc.AbstractExchange,
    dead_letters: AbstractQueue,
    amqp: AbstractRobustConnection,
    user_id: str,
    case: str,
) -> None:
    raw, key, reason = BAD_INPUT[case]
    message_id = uuid.uuid4().hex
    await events.publish(aio_pika.Message(body=raw, message_id=message_id), routing_key=key)
    refused = await take_dead_letter(dead_letters, message_id)
    assert reason in str(refused.headers[topology.ERROR_HEADER])
    assert refused.headers[topology.ORIGINAL_KEY_HEADER] == key
    assert refused.routing_key == key and refused.body == raw

    after = orjson.loads(body(user_id=user_id))
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        await events.publish(aio_pika.Message(body=orjson.dumps(after)), "system_alert")
        await deliveries.wait_for(after["event_id"])


async def test_an_event_the_database_refuses_is_retried_then_dead_lettered_with_the_reason(
    events: aio_pika.abc.AbstractExchange,
    dead_letters: AbstractQueue,
    amqp: AbstractRobustConnection,
    engine: AsyncEngine,
    user_id: str,
) -> None:
    # Valid JSON and a valid envelope, but jsonb cannot hold U+0000: the insert fails every
    # time, a handler crash that no retry can cure.
    raw = body(user_id=user_id, data={"note": "nul \u0000 inside"})
    event_id = orjson.loads(raw)["event_id"]
    message_id = uuid.uuid4().hex
    await events.publish(aio_pika.Message(body=raw, message_id=message_id), "system_alert")
    refused = await take_dead_letter(dead_letters, message_id)
    error = str(refused.headers[topology.ERROR_HEADER])
    assert "could not be stored after 5 deliveries" in error
    assert "Unicode" in error or "\\u0000" in error
    assert refused.headers["x-delivery-count"] == 4
    async with engine.connect() as conn:
        stored = await conn.execute(
            text("SELECT count(*) FROM notification_events WHERE event_id = :id"),
            {"id": event_id},
        )
    assert stored.scalar_one() == 0


async def test_dead_letters_list_shows_them_and_replay_republishes_one(
    amqp: AbstractRobustConnection, process_env: dict[str, str], user_id: str
) -> None:
    """A refused event that is valid now (say, after a catalog fix) is replayed by its id
    under its original routing key, and the dispatcher stores it."""
    raw = body(user_id=user_id)
    event_id = orjson.loads(raw)["event_id"]
    channel = await amqp.channel(publisher_confirms=True)
    exchange, _ = await topology.declare_dead_letter(channel)
    headers: dict[str, aio_pika.abc.FieldValue] = {
        topology.ERROR_HEADER: "unknown type",
        topology.ORIGINAL_KEY_HEADER: "system_alert",
    }
    await exchange.publish(
        aio_pika.Message(body=raw, message_id=event_id, headers=headers), "system_alert"
    )
    await channel.close()

    code, out, err = await run_notify("dead-letters", "list", "--limit", "10000", env=process_env)
    assert code == 0, err
    listed = [orjson.loads(line) for line in out.splitlines()]
    assert {"id": event_id, "routing_key": "system_alert", "reason": "unknown type"}.items() <= (
        next(letter for letter in listed if letter["id"] == event_id).items()
    )

    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        code, out, err = await run_notify(
            "dead-letters", "replay", "--id", event_id, env=process_env
        )
        assert code == 0, err
        assert out.split() == [event_id]
        await deliveries.wait_for(event_id)

    code, out, _ = await run_notify("dead-letters", "replay", "--id", event_id, env=process_env)
    assert code == 1 and out == ""
