"""The producer SDK against the real RabbitMQ, with the real ``notify dispatcher`` storing what
it publishes: a delivery frame arrives only after the dispatcher committed the event."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support.deliveries import watch_deliveries
from tests.support.processes import start_dispatcher
from tests.support.services import Services, session_services

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dispatcher_process")]

START = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)

# method, its arguments beside the audience, the audience argument, and what the client sees:
# (notification_type, priority, title, message)
CALLS: list[tuple[str, dict[str, Any], str, tuple[str, str, str, str]]] = [
    ("notify_booking_created",
     {"booking_id": "b1", "tour_name": "Jerusalem Day Tour", "tour_date": date(2026, 2, 15),
      "total_amount": Decimal("250.00")}, "user_id",
     ("booking_created", "medium", "Booking Created",
      "Your booking for 'Jerusalem Day Tour' on 2026-02-15 has been created")),
    ("notify_booking_confirmed",
     {"booking_id": "b1", "tour_name": "Jerusalem Tour", "confirmation_code": "ABC123"}, "user_id",
     ("booking_confirmed", "high", "Booking Confirmed!",
      "Your booking for 'Jerusalem Tour' is confirmed")),
    ("notify_booking_cancelled", {"booking_id": "b1", "tour_name": "Jerusalem Tour"}, "user_id",
     ("booking_cancelled", "high", "Booking Cancelled",
      "Your booking for 'Jerusalem Tour' has been cancelled")),
    ("notify_payment_received",
     {"booking_id": "b1", "amount": 250.0, "payment_method": "Credit Card"}, "user_id",
     ("payment_received", "high", "Payment Received",
      "We received your payment of 250.00 by Credit Card")),
    ("notify_payment_failed", {"booking_id": "b1", "amount": "99.5", "reason": "card declined"},
     "user_id",
     ("payment_failed", "urgent", "Payment Failed",
      "Your payment of 99.50 for booking b1 failed: card declined")),
    ("notify_refund_processed", {"booking_id": "b1", "amount": 40}, "user_id",
     ("refund_processed", "high", "Refund Processed",
      "Your refund of 40.00 for booking b1 has been processed")),
    ("notify_tour_starting_soon",
     {"booking_id": "b1", "tour_name": "Old City Walk", "start_time": START,
      "meeting_point": "Jaffa Gate"}, "user_id",
     ("tour_starting_soon", "urgent", "Tour Starting Soon",
      "'Old City Walk' starts at 2026-02-15 08:00 UTC. Meeting point: Jaffa Gate")),
    ("notify_tour_started", {"booking_id": "b1", "tour_name": "Old City Walk"}, "user_id",
     ("tour_started", "high", "Tour Started", "'Old City Walk' has started. Enjoy!")),
    ("notify_tour_completed", {"booking_id": "b1", "tour_name": "Old City Walk"}, "user_id",
     ("tour_completed", "medium", "Tour Completed", "Thank you for joining 'Old City Walk'")),
    ("notify_new_commission", {"booking_id": "b1", "commission_amount": 25.0, "tier": "Gold"},
     "agent_id",
     ("new_commission", "high", "New Commission Earned",
      "You earned 25.00 on booking b1 (Gold tier)")),
    ("notify_tier_upgraded", {"old_tier": "Silver", "new_tier": "Gold"}, "agent_id",
     ("tier_upgraded", "high", "Tier Upgraded!",
      "Congratulations! You moved from Silver to Gold")),
    ("notify_chat_message",
     {"conversation_id": "c1", "sender_id": "guide-7", "preview": "See you at 8"}, "user_id",
     ("chat_message", "medium", "New Message", "See you at 8")),
    ("notify_chat_read", {"conversation_id": "c1", "reader_id": "guide-7"}, "user_id",
     ("chat_read", "low", "Message Read", "Your message has been read")),
    ("notify_agent_response",
     {"agent_name": "itinerary_planner", "response": {"days": 2}, "execution_time": 812.5},
     "user_id",
     ("agent_response", "medium", "itinerary_planner responded", '{"days":2}')),
    ("notify_workflow_completed", {"workflow_id": "wf1", "status": "succeeded"}, "user_id",
     ("workflow_completed", "medium", "Workflow Completed", "Workflow wf1 finished: succeeded")),
    ("notify_maintenance_scheduled", {"starts_at": START}, "broadcast",
     ("maintenance_scheduled", "high", "Maintenance Scheduled",
      "Scheduled maintenance from 2026-02-15 08:00 UTC")),
    ("broadcast_system_message",
     {"title": "System Maintenance", "message": "Tonight at 2 AM", "priority": "urgent"},
     "broadcast",
     ("system_alert", "urgent", "System Maintenance", "Tonight at 2 AM")),
]  # fmt: skip


PERSONAL = [c for c in CALLS if c[2] != "broadcast"]
BROADCASTS = [c for c in CALLS if c[2] == "broadcast"]


@dataclass
class Pipeline:
    service: NotificationService
    amqp: AbstractRobustConnection


@pytest.fixture(scope="module")
async def own_pipeline(services: Services, process_env: dict[str, str]) -> AsyncIterator[Pipeline]:
    """A virtual host, a database and a dispatcher of this module's own. A broadcast counts as
    unread for every user, so broadcasts published into the session's database would show up
    in every other test's replay; here they stay apart, and go with the database."""
    stack = contextlib.ExitStack()
    own = await asyncio.to_thread(
        stack.enter_context, session_services(services.database_url, services.amqp_url)
    )
    try:
        env = {**process_env, "DATABASE_URL": own.database_url, "AMQP_URL": own.amqp_url}
        dispatcher = await start_dispatcher(env)
        settings = Settings(database_url=own.database_url, amqp_url=own.amqp_url)
        service = NotificationService(Publisher(settings, name="tests-own"), producer="tests")
        amqp = await aio_pika.connect_robust(own.amqp_url)
        try:
            yield Pipeline(service, amqp)
        finally:
            await amqp.close()
            await service.close()
            await dispatcher.stop()
    finally:
        await asyncio.to_thread(stack.close)


async def publish_and_watch(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    key: str,
    method: str,
    arguments: dict[str, Any],
) -> dict[str, object]:
    call: Callable[..., Awaitable[uuid.UUID]] = getattr(service, method)
    async with watch_deliveries(amqp, key) as deliveries:
        event_id = await call(**arguments)
        return await deliveries.wait_for(event_id)


def shown(frame: dict[str, object]) -> tuple[object, ...]:
    return (frame["notification_type"], frame["priority"], frame["title"], frame["message"])


@pytest.mark.parametrize(
    ("method", "arguments", "audience", "expected"), PERSONAL, ids=[c[0] for c in PERSONAL]
)
async def test_each_notify_method_publishes_an_event_the_dispatcher_stores(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    user_id: str,
    method: str,
    arguments: dict[str, Any],
    audience: str,
    expected: tuple[str, str, str, str],
) -> None:
    key = topology.user_key(user_id)
    frame = await publish_and_watch(service, amqp, key, method, {audience: user_id, **arguments})
    assert shown(frame) == expected
    assert frame["read"] is False


@pytest.mark.parametrize(
    ("method", "arguments", "audience", "expected"), BROADCASTS, ids=[c[0] for c in BROADCASTS]
)
async def test_each_broadcast_method_publishes_an_event_the_dispatcher_stores(
    own_pipeline: Pipeline,
    method: str,
    arguments: dict[str, Any],
    audience: str,
    expected: tuple[str, str, str, str],
) -> None:
    frame = await publish_and_watch(
        own_pipeline.service, own_pipeline.amqp, topology.BROADCAST_KEY, method, arguments
    )
    assert shown(frame) == expected


async def test_booking_notifications_link_to_the_booking(
    service: NotificationService, amqp: AbstractRobustConnection, user_id: str
) -> None:
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        event_id = await service.notify_booking_confirmed(
            user_id=user_id, booking_id="book 456", tour_name="T", title="Custom title"
        )
        frame = await deliveries.wait_for(event_id)
    assert frame["action_url"] == "/bookings/book%20456"
    assert frame["title"] == "Custom title"
    assert frame["data"] == {"booking_id": "book 456", "tour_name": "T"}


@pytest.mark.parametrize("how", ["personal", "room", "broadcast"])
async def test_the_seed_connection_manager_calls_publish_events(
    own_pipeline: Pipeline, user_id: str, how: str
) -> None:
    service, amqp = own_pipeline.service, own_pipeline.amqp
    room = f"tour_{user_id}"
    message = {"type": "tour_update", "title": "Pickup moved", "data": {"pickup": "08:15"}}
    keys = {
        "personal": topology.user_key(user_id),
        "room": topology.room_key(room),
        "broadcast": topology.BROADCAST_KEY,
    }
    async with watch_deliveries(amqp, keys[how]) as deliveries:
        if how == "personal":
            event_id = await service.send_personal_message(message, user_id=user_id)
        elif how == "room":
            event_id = await service.broadcast_to_room(message, room=room)
        else:
            event_id = await service.broadcast(message)
        frame = await deliveries.wait_for(event_id)
    assert frame["notification_type"] == "system_alert"
    assert frame["title"] == "Pickup moved"
    assert frame["data"] == {"type": "tour_update", "pickup": "08:15"}


async def test_invalid_data_raises_naming_the_field_and_stores_nothing(
    service: NotificationService, engine: AsyncEngine, user_id: str
) -> None:
    with pytest.raises(ValidationError, match="tour_date"):
        await service.notify_booking_created(
            user_id=user_id, booking_id="b1", tour_name="T", tour_date="someday", total_amount=1
        )
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM notifications WHERE user_id = :u"), {"u": user_id}
        )
    assert count == 0


async def test_publish_many_confirms_ten_thousand_events(
    service: NotificationService, amqp: AbstractRobustConnection, user_id: str
) -> None:
    """Each event is confirmed once publish_many returns: a confirm means RabbitMQ has put it
    in every bound queue, so a queue of the test's own holds all of them at that moment."""
    channel = await amqp.channel()
    events = await topology.declare_events_exchange(channel)
    tap = await channel.declare_queue(f"test-tap-{uuid.uuid4().hex[:8]}", exclusive=True)
    await tap.bind(events, routing_key="tour_started")
    envelopes = [
        service.build(
            "tour_started", user_id=user_id, data={"booking_id": f"b{i}", "tour_name": "T"}
        )
        for i in range(10_000)
    ]
    try:
        event_ids = await service.publish_many(envelopes)
        assert event_ids == [e.event_id for e in envelopes]
        # A channel of its own: a robust channel answers a passive declaration from its cache.
        counting = await amqp.channel()
        declared = await counting.declare_queue(tap.name, passive=True)
        await counting.close()
        assert declared.declaration_result.message_count == 10_000
    finally:
        await tap.delete(if_unused=False, if_empty=False)
        await channel.close()
