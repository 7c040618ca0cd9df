"""The dispatcher against the real RabbitMQ and PostgreSQL, running as ``notify dispatcher``."""

from __future__ import annotations

import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from producers import topology
from producers.service import NotificationService
from tests.support.dead_letters import take_dead_letter
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dispatcher_process")]


async def rows(engine: AsyncEngine, sql: str, **params: object) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [dict(r) for r in result.mappings().all()]


async def test_booking_created_is_stored_in_the_log_and_projection(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    engine: AsyncEngine,
    user_id: str,
) -> None:
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        event_id = await service.notify_booking_created(
            user_id=user_id,
            booking_id="b-42",
            tour_name="Jerusalem Day Tour",
            tour_date="2026-02-15",
            total_amount="250.00",
        )
        frame = await deliveries.wait_for(event_id)

    (logged,) = await rows(
        engine, "SELECT * FROM notification_events WHERE event_id = :id", id=event_id
    )
    assert logged["event_type"] == "notification.created"
    assert logged["producer"] == "tests"
    assert logged["payload"]["user_id"] == user_id  # type: ignore[index]
    (projected,) = await rows(
        engine, "SELECT * FROM notifications WHERE event_id = :id", id=event_id
    )
    assert projected["seq"] == logged["seq"] == frame["seq"]
    assert projected["audience"] == "user"
    assert projected["category"] == "booking"
    assert projected["priority"] == "medium"
    assert projected["data"] == {
        "booking_id": "b-42",
        "tour_name": "Jerusalem Day Tour",
        "tour_date": "2026-02-15",
        "total_amount": 250.0,
    }
    (state,) = await rows(
        engine, "SELECT * FROM notification_recipients WHERE user_id = :u", u=user_id
    )
    assert state["seq"] == logged["seq"] and state["read_at"] is None


async def test_duplicate_event_is_stored_once(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    engine: AsyncEngine,
    user_id: str,
) -> None:
    envelope = service.build(
        "tier_upgraded", user_id=user_id, data={"old_tier": "Silver", "new_tier": "Gold"}
    )
    marker = service.build(
        "tier_upgraded", user_id=user_id, data={"old_tier": "Gold", "new_tier": "Platinum"}
    )
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        await service.publisher.publish(envelope)
        await service.publisher.publish(envelope)
        await service.publisher.publish(envelope)
        await service.publisher.publish(marker)
        # One dispatcher consumes in queue order: once the marker is routed, the copies
        # published before it have been handled.
        await deliveries.wait_for(marker.event_id)
        assert deliveries.count(envelope.event_id) == 1

    stored = await rows(
        engine,
        "SELECT count(*) AS n FROM notification_events WHERE event_id = :id",
        id=envelope.event_id,
    )
    assert stored == [{"n": 1}]


async def _dead_letters(amqp: AbstractRobustConnection) -> aio_pika.abc.AbstractQueue:
    channel = await amqp.channel()
    _, queue = await topology.declare_dead_letter(channel)
    return queue


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{this is not json", "not valid JSON"),
        (b'{"schema_version": 1}', "event_id: Field required"),
    ],
)
async def test_malformed_event_is_dead_lettered_and_the_queue_keeps_flowing(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    engine: AsyncEngine,
    user_id: str,
    body: bytes,
    reason: str,
) -> None:
    dead_letters = await _dead_letters(amqp)
    channel = await amqp.channel(publisher_confirms=True)
    events = await topology.declare_events_exchange(channel)
    message_id = uuid.uuid4().hex
    await events.publish(
        aio_pika.Message(body=body, message_id=message_id, content_type="application/json"),
        routing_key="booking_created",
    )
    refused = await take_dead_letter(dead_letters, message_id)
    assert reason in str(refused.headers[topology.ERROR_HEADER])
    assert refused.headers[topology.ORIGINAL_KEY_HEADER] == "booking_created"
    assert refused.body == body

    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        after = await service.notify(
            "tour_started", user_id=user_id, data={"booking_id": "b1", "tour_name": "T"}
        )
        await deliveries.wait_for(after)
    await channel.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE notification_events SET producer = 'tampered'",
        "DELETE FROM notification_events",
        "TRUNCATE notification_events CASCADE",
    ],
)
async def test_the_event_log_refuses_updates_and_deletes(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    engine: AsyncEngine,
    user_id: str,
    statement: str,
) -> None:
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        event_id = await service.notify(
            "tour_completed", user_id=user_id, data={"booking_id": "b1", "tour_name": "T"}
        )
        await deliveries.wait_for(event_id)
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    remaining = await rows(
        engine, "SELECT producer FROM notification_events WHERE event_id = :id", id=event_id
    )
    assert remaining == [{"producer": "tests"}]


async def test_dispatcher_stops_cleanly_on_sigterm(process_env: dict[str, str]) -> None:
    from tests.support.processes import start_dispatcher

    extra: NotifyProcess = await start_dispatcher(process_env)
    assert await extra.stop() == 0
    assert any("dispatcher stopped" in line for line in extra.lines)
    assert not any("Traceback" in line for line in extra.lines)
