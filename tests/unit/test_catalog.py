"""The catalog (docs/events.md, "The catalog") and the published contract generated from it."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from producers import contract, outbox
from producers.asyncapi import asyncapi_document
from producers.catalog import (
    CATALOG,
    BookingCreated,
    Category,
    MaintenanceScheduled,
    NotificationType,
    PaymentReceived,
    Priority,
)
from producers.envelope import ReadEventType, parse_envelope, parse_event

DOCS = Path(__file__).resolve().parents[2] / "docs"

# The catalog of docs/events.md, spelled out again on purpose: the test is the specification.
DESIGN_TABLE = {
    "booking_created": ("booking", "medium", {"booking_id", "tour_name", "tour_date", "total_amount"}, set()),  # noqa: E501
    "booking_confirmed": ("booking", "high", {"booking_id", "tour_name"}, {"confirmation_code"}),
    "booking_cancelled": ("booking", "high", {"booking_id", "tour_name"}, {"reason"}),
    "payment_received": ("payment", "high", {"booking_id", "amount", "payment_method"}, set()),
    "payment_failed": ("payment", "urgent", {"booking_id", "amount"}, {"reason"}),
    "refund_processed": ("payment", "high", {"booking_id", "amount"}, set()),
    "tour_starting_soon": ("tour", "urgent", {"booking_id", "tour_name", "start_time", "meeting_point"}, set()),  # noqa: E501
    "tour_started": ("tour", "high", {"booking_id", "tour_name"}, set()),
    "tour_completed": ("tour", "medium", {"booking_id", "tour_name"}, set()),
    "new_commission": ("agent", "high", {"booking_id", "commission_amount", "tier"}, set()),
    "tier_upgraded": ("agent", "high", {"old_tier", "new_tier"}, set()),
    "chat_message": ("chat", "medium", {"conversation_id", "sender_id", "preview"}, set()),
    "chat_read": ("chat", "low", {"conversation_id", "reader_id"}, set()),
    "system_alert": ("system", "high", set(), set()),
    "maintenance_scheduled": ("system", "high", {"starts_at"}, {"ends_at"}),
    "agent_response": ("ai_agent", "medium", {"agent_name", "response", "execution_time_ms"}, set()),  # noqa: E501
    "workflow_completed": ("ai_agent", "medium", {"workflow_id", "status"}, set()),
}  # fmt: skip


@pytest.mark.parametrize("notification_type", sorted(DESIGN_TABLE))
def test_each_published_type_keeps_its_category_priority_and_fields(
    notification_type: str,
) -> None:
    """The types the contract was published with: changing one is a breaking change for
    producers and clients, so it must be deliberate. A new type needs no row here."""
    category, priority, required, optional = DESIGN_TABLE[notification_type]
    entry = CATALOG[NotificationType(notification_type)]
    assert entry.category is Category(category)
    assert entry.priority is Priority(priority)
    fields = entry.data_model.model_fields
    assert {name for name, f in fields.items() if f.is_required()} == required
    assert {name for name, f in fields.items() if not f.is_required()} == optional


@pytest.mark.parametrize("notification_type", list(NotificationType))
def test_each_example_is_a_valid_event_with_default_texts(
    notification_type: NotificationType,
) -> None:
    envelope = parse_envelope(orjson.dumps(contract.example_event(notification_type)))
    assert envelope.priority is CATALOG[notification_type].priority
    assert envelope.title and envelope.message


def test_amounts_are_decimals_and_travel_as_json_numbers() -> None:
    data = PaymentReceived.model_validate(
        {"booking_id": "b1", "amount": "0.10", "payment_method": "card"}
    )
    assert data.amount == Decimal("0.10")
    assert data.model_dump(mode="json")["amount"] == 0.1
    with pytest.raises(ValidationError, match="amount"):
        PaymentReceived.model_validate({"booking_id": "b1", "amount": -1, "payment_method": "c"})
    with pytest.raises(ValidationError, match="amount"):
        PaymentReceived.model_validate({"booking_id": "b1", "amount": "NaN", "payment_method": "c"})


def test_a_tour_date_may_be_given_as_a_datetime_and_means_its_day() -> None:
    data = BookingCreated.model_validate(
        {"booking_id": "b1", "tour_name": "T", "tour_date": datetime(2026, 2, 15, 9, 30),
         "total_amount": 1}
    )  # fmt: skip
    assert data.tour_date == date(2026, 2, 15)


def test_moments_need_a_time_zone() -> None:
    with pytest.raises(ValidationError, match="starts_at"):
        MaintenanceScheduled.model_validate({"starts_at": "2026-02-16T02:00:00"})
    aware = MaintenanceScheduled.model_validate({"starts_at": datetime(2026, 2, 16, tzinfo=UTC)})
    assert aware.default_message() == "Scheduled maintenance from 2026-02-16 00:00 UTC"


def test_required_text_fields_may_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="tour_name"):
        CATALOG[NotificationType.TOUR_STARTED].parse_data({"booking_id": "b1", "tour_name": ""})


def test_a_long_chat_preview_is_shortened_in_the_default_message() -> None:
    entry = CATALOG[NotificationType.CHAT_MESSAGE]
    data = entry.parse_data({"conversation_id": "c", "sender_id": "s", "preview": "x" * 500})
    message = entry.message(data)
    assert len(message) == 140 and message.endswith("…")


def _validator(schema: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("notification_type", list(NotificationType))
def test_the_json_schema_accepts_each_example_and_refuses_wrong_data(
    notification_type: NotificationType,
) -> None:
    validator = _validator(contract.envelope_schema())
    example = contract.example_event(notification_type)
    validator.validate(example)
    required = [
        name
        for name, field in CATALOG[notification_type].data_model.model_fields.items()
        if field.is_required()
    ]
    if required:
        broken = {**example, "data": {k: v for k, v in example["data"].items() if k != required[0]}}
        errors = list(validator.iter_errors(broken))
        assert errors and any(required[0] in e.message for e in errors)


@pytest.mark.parametrize("event_type", list(ReadEventType))
def test_the_read_event_schema_accepts_the_examples(event_type: ReadEventType) -> None:
    example = contract.example_read_event(event_type)
    _validator(contract.read_event_schema()).validate(example)
    assert parse_event(orjson.dumps(example)).event_id is not None


def test_the_json_schema_refuses_an_unknown_type_and_a_bad_priority() -> None:
    validator = _validator(contract.envelope_schema())
    example = contract.example_event(NotificationType.TOUR_STARTED)
    assert list(validator.iter_errors({**example, "notification_type": "tour_exploded"}))
    assert list(validator.iter_errors({**example, "priority": "critical"}))


def test_docs_asyncapi_yaml_is_the_generated_document() -> None:
    yaml = pytest.importorskip("yaml")
    on_disk = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    generated = json.loads(json.dumps(asyncapi_document()))
    assert on_disk == generated, "regenerate docs/asyncapi.yaml from `notify schema asyncapi`"


def _json_blocks(markdown: str) -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", markdown, re.S)]


def test_docs_events_md_shows_a_valid_example_of_every_type() -> None:
    events = [b for b in _json_blocks((DOCS / "events.md").read_text()) if "schema_version" in b]
    shown = {e.get("notification_type") or e.get("event_type") for e in events}
    assert shown >= {t.value for t in NotificationType} | {t.value for t in ReadEventType}
    for event in events:
        parse_event(orjson.dumps(event))


def test_docs_events_md_quotes_the_outbox_table_sql() -> None:
    assert outbox.create_table_sql() in (DOCS / "events.md").read_text()
