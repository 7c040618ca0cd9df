"""The envelope v1 rules (docs/events.md): a valid event, then each rule broken once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from producers.catalog import CATALOG, Category, NotificationType, Priority
from producers.envelope import DATA_MAX_BYTES, EnvelopeError, parse_envelope


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "notification_type": "booking_confirmed",
        "user_id": "user-1",
        "data": {"booking_id": "b1", "tour_name": "Jerusalem Tour", "confirmation_code": "C1"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _MISSING}


_MISSING = object()


def body(**overrides: Any) -> bytes:
    return orjson.dumps(event(**overrides))


def refused(**overrides: Any) -> str:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(body(**overrides))
    return caught.value.reason


def test_valid_event_gets_catalog_defaults() -> None:
    envelope = parse_envelope(body())
    assert envelope.priority is Priority.HIGH
    assert envelope.title == "Booking Confirmed!"
    assert envelope.message == "Your booking for 'Jerusalem Tour' is confirmed"
    assert envelope.occurred_at is not None and envelope.occurred_at.tzinfo is not None
    assert envelope.routing_key == "booking_confirmed"
    assert envelope.category.value == "booking"


def test_given_fields_override_the_defaults() -> None:
    moment = "2026-01-15T10:30:00+02:00"
    envelope = parse_envelope(
        body(priority="low", title="T", message="M", occurred_at=moment, producer="booking-svc")
    )
    assert (envelope.priority, envelope.title, envelope.message) == (Priority.LOW, "T", "M")
    assert envelope.occurred_at == datetime(2026, 1, 15, 8, 30, tzinfo=UTC)


def test_every_catalog_type_has_a_category_priority_and_data_model() -> None:
    assert set(CATALOG) == set(NotificationType)
    for notification_type, entry in CATALOG.items():
        assert entry.notification_type is notification_type
        assert isinstance(entry.category, Category) and isinstance(entry.priority, Priority)
        # Its documented example is valid data of its own model, with a title and a message.
        data = entry.parse_data(entry.example_data)
        assert entry.title(data) and entry.message(data), notification_type


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"event_id": _MISSING}, "event_id: Field required"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"schema_version": 2}, "schema_version"),
        ({"schema_version": _MISSING}, "schema_version: Field required"),
        ({"notification_type": "booking_exploded"}, "notification_type"),
        ({"priority": "critical"}, "priority"),
        ({"user_id": _MISSING}, "exactly one audience"),
        ({"room": "tour_456"}, "exactly one audience"),
        ({"broadcast": True}, "exactly one audience"),
        ({"user_id": "has space"}, "user_id"),
        ({"user_id": "x" * 129}, "user_id"),
        ({"user_id": None, "room": "bad/room"}, "room"),
        ({"title": "t" * 201}, "title"),
        ({"message": "m" * 2001}, "message"),
        ({"title": "bell\x07"}, "title: must be plain text"),
        ({"data": {"booking_id": "b1"}}, "data.tour_name: Field required"),
        ({"data": {"booking_id": "b1", "tour_name": "T", "pad": "x" * DATA_MAX_BYTES}}, "16384"),
        ({"action_url": "javascript:alert(1)"}, "action_url"),
        ({"action_url": "http://example.com/b1"}, "action_url"),
        ({"action_url": "//evil.example/b1"}, "action_url"),
        ({"occurred_at": "2026-01-15T10:30:00"}, "occurred_at"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_each_broken_rule_is_refused_with_its_reason(
    overrides: dict[str, Any], fragment: str
) -> None:
    assert fragment in refused(**overrides)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "one JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_undecodable_bodies_are_refused(raw: bytes, fragment: str) -> None:
    with pytest.raises(EnvelopeError, match=fragment):
        parse_envelope(raw)


def test_typed_data_is_normalised() -> None:
    envelope = parse_envelope(
        body(
            notification_type="booking_created",
            data={
                "booking_id": "b1",
                "tour_name": "T",
                "tour_date": "2026-02-15",
                "total_amount": "250.50",
            },
        )
    )
    assert envelope.data == {
        "booking_id": "b1",
        "tour_name": "T",
        "tour_date": "2026-02-15",
        "total_amount": 250.5,
    }


def test_a_room_or_a_broadcast_is_an_audience_too() -> None:
    assert parse_envelope(body(user_id=None, room="tour_456")).room == "tour_456"
    assert parse_envelope(body(user_id=None, broadcast=True)).broadcast is True


def test_relative_and_https_action_urls_are_accepted() -> None:
    assert parse_envelope(body(action_url="/bookings/b1")).action_url == "/bookings/b1"
    assert parse_envelope(body(action_url="https://x.example/b")).action_url is not None
