"""NotificationService's pure decisions: what each call builds, and that an invalid call
publishes nothing. The publisher here only records; the real one is tested against RabbitMQ
in tests/integration/test_producer.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from producers.catalog import NotificationPriority, NotificationType, Priority
from producers.envelope import Envelope
from producers.messages import event_fields
from producers.service import NotificationService
from tests.unit.conftest import RecordingPublisher


def only(recorder: RecordingPublisher) -> Envelope:
    (envelope,) = recorder.published
    assert isinstance(envelope, Envelope)
    return envelope


async def test_a_call_returns_the_event_id_of_what_it_published(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    event_id = await svc.notify_booking_confirmed("u1", "b1", "Jerusalem Tour")
    envelope = only(recorder)
    assert envelope.event_id == event_id
    assert envelope.producer == "booking-service"
    assert envelope.data == {"booking_id": "b1", "tour_name": "Jerusalem Tour"}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"tour_date": "someday", "total_amount": 1}, "tour_date"),
        ({"tour_date": "2026-02-15", "total_amount": "lots"}, "total_amount"),
        ({"tour_date": "2026-02-15", "total_amount": -5}, "total_amount"),
    ],
)
async def test_invalid_data_raises_naming_the_field_before_anything_is_published(
    svc: NotificationService, recorder: RecordingPublisher, arguments: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await svc.notify_booking_created("u1", "b1", "T", **arguments)
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]
    assert recorder.published == []


async def test_an_invalid_audience_raises_before_anything_is_published(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    with pytest.raises(ValidationError, match="user_id"):
        await svc.notify_tour_started("not a valid id", "b1", "T")
    assert recorder.published == []


async def test_options_override_the_catalog_defaults(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    fixed = uuid.uuid4()
    await svc.notify_tour_started(
        "u1", "b1", "T", title="Off we go", priority=Priority.LOW, action_url=None, event_id=fixed
    )
    envelope = only(recorder)
    assert (envelope.title, envelope.priority, envelope.action_url, envelope.event_id) == (
        "Off we go", Priority.LOW, None, fixed,
    )  # fmt: skip


async def test_broadcast_system_message_takes_the_seeds_priority_enum(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    await svc.broadcast_system_message(
        title="System Maintenance", message="Tonight at 2 AM", priority=NotificationPriority.URGENT
    )
    envelope = only(recorder)
    assert envelope.broadcast and envelope.notification_type is NotificationType.SYSTEM_ALERT
    assert (envelope.title, envelope.message, envelope.priority) == (
        "System Maintenance", "Tonight at 2 AM", Priority.URGENT,
    )  # fmt: skip


async def test_maintenance_goes_to_everybody_or_to_one_room(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    await svc.notify_maintenance_scheduled("2026-02-16T02:00:00Z")
    await svc.notify_maintenance_scheduled("2026-02-16T02:00:00Z", room="agents")
    everybody, room = recorder.published
    assert everybody.broadcast and everybody.room is None
    assert room.room == "agents" and not room.broadcast


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "notification", "data": {"k": 1}},
         {"notification_type": NotificationType.SYSTEM_ALERT, "data": {"k": 1}}),
        ({"type": "system_alert", "message": "Down at 2"},
         {"notification_type": NotificationType.SYSTEM_ALERT, "message": "Down at 2", "data": {}}),
        ({"type": "tour_update", "data": {"tour": "t1"}, "title": "Update"},
         {"notification_type": NotificationType.SYSTEM_ALERT, "title": "Update",
          "data": {"type": "tour_update", "tour": "t1"}}),
        ({"notification_type": "tour_started", "data": {"booking_id": "b", "tour_name": "T"},
          "priority": "low"},
         {"notification_type": NotificationType.TOUR_STARTED, "priority": "low",
          "data": {"booking_id": "b", "tour_name": "T"}}),
    ],
)  # fmt: skip
def test_seed_style_messages_become_event_fields(
    message: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert event_fields(message) == expected


async def test_room_and_broadcast_messages_reach_their_audience(
    svc: NotificationService, recorder: RecordingPublisher
) -> None:
    await svc.broadcast_to_room({"type": "tour_update", "title": "Pickup moved"}, room="tour_456")
    await svc.broadcast({"type": "system_alert", "message": "Down at 2"})
    room, everybody = recorder.published
    assert room.room == "tour_456" and room.title == "Pickup moved"
    assert everybody.broadcast and everybody.message == "Down at 2"


def test_the_contract_imports_without_the_broker_client_and_the_service_opens_nothing() -> None:
    """``import producers.settings`` loads no AMQP library; ``notification_service`` is made
    on first use, and making it opens no connection (the broker here does not exist)."""
    script = (
        "import sys\n"
        "import producers.settings, producers.envelope, producers.catalog\n"
        "assert 'aio_pika' not in sys.modules, 'the contract imports the broker client'\n"
        "from producers import notification_service\n"
        "import producers\n"
        "assert producers.notification_service is notification_service\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
