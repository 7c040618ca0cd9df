"""The wire contract as JSON Schema (draft 2020-12), generated from the pydantic models of
``producers.envelope`` and ``producers.catalog`` so that it cannot drift from what the
dispatcher accepts. ``notify schema`` prints it; docs/asyncapi.yaml embeds it.

Two rules of the envelope are not expressible in JSON Schema and are checked by the dispatcher
only: exactly one audience (``user_id``, ``room`` or ``broadcast: true``), and ``data`` at most
16 KiB once encoded. Titles and messages must also be plain text (no control characters), and
``action_url`` a relative path or an https URL.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic.json_schema import models_json_schema

from producers.catalog import CATALOG, Audience, NotificationType
from producers.envelope import (
    ARCHIVED,
    CANCELLED,
    PREFERENCES,
    RELEASED,
    SCHEMA_VERSION,
    SEEN,
    UNARCHIVED,
    ArchiveEvent,
    Envelope,
    PreferencesEvent,
    ReadEvent,
    ReadEventType,
    ScheduleEvent,
    SeenEvent,
    release_event_id,
)

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
LOCAL_DEFS = "#/$defs/"

ENVELOPE_DESCRIPTION = (
    "A notification event, published to the exchange notifications.events with routing key = "
    "notification_type. Exactly one audience is required: user_id, room, or broadcast=true. "
    "title, message and priority default from the catalog; occurred_at defaults to the time of "
    "receipt. data must match the data schema of the notification_type and be at most 16 KiB "
    "encoded. event_id is the idempotency key: the same id twice is stored once. deliver_at "
    "(at most 366 days ahead) schedules it: it is logged at once and delivered at that time, "
    "unless a notification.cancelled names it first."
)
SEEN_EVENT_DESCRIPTION = (
    "notification.seen: the user saw their notifications up to up_to_seq (their unseen badge "
    "goes down; read state is unchanged). Published by the edge and the REST API."
)
ARCHIVE_EVENT_DESCRIPTION = (
    "notification.archived: the notifications named by ids (event_ids), or with all_read=true "
    "every read one (up to up_to_seq when given), leave the user's inbox for the archive. "
    "notification.unarchived (ids only): they come back."
)
PREFERENCES_EVENT_DESCRIPTION = (
    "notification.preferences: the user's preferences, replaced whole: muted categories and "
    "types, and quiet hours in an IANA time zone. The operator's critical types cannot be muted "
    "by type."
)
SCHEDULE_EVENT_DESCRIPTION = (
    "notification.released: a scheduled notification is due (published by a dispatcher; its "
    "event_id is uuid5 of the scheduled event_id). notification.cancelled: a producer withdrew "
    "a scheduled notification before it was due."
)
STATE_EVENT_MODELS: dict[str, type[Any]] = {
    SEEN: SeenEvent,
    ARCHIVED: ArchiveEvent,
    UNARCHIVED: ArchiveEvent,
    PREFERENCES: PreferencesEvent,
    RELEASED: ScheduleEvent,
    CANCELLED: ScheduleEvent,
}
READ_EVENT_DESCRIPTION = (
    "A user marked notifications read, published to notifications.events with routing key = "
    "event_type: notification.read names the notifications by ids (their event_ids); "
    "notification.all_read marks everything of the user read, or everything up to up_to_seq."
)

# Audiences of the documented examples: a type the SDK sends to everybody (or to a room) goes to
# everybody, the rest to a user.
EXAMPLE_USER = "user-123"
BROADCAST_TYPES = frozenset(
    notification_type
    for notification_type, entry in CATALOG.items()
    if entry.sdk.audience in (Audience.BROADCAST, Audience.ROOM_OR_BROADCAST)
)


def definitions(ref_prefix: str = LOCAL_DEFS) -> dict[str, Any]:
    """Every schema of the contract by name, referring to each other under ``ref_prefix``."""
    models: list[type[Any]] = [
        Envelope,
        ReadEvent,
        SeenEvent,
        ArchiveEvent,
        PreferencesEvent,
        ScheduleEvent,
        *(e.data_model for e in CATALOG.values()),
    ]
    _, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=ref_prefix + "{model}"
    )
    defs: dict[str, Any] = top["$defs"]
    defs["Envelope"]["description"] = ENVELOPE_DESCRIPTION
    defs["ReadEvent"]["description"] = READ_EVENT_DESCRIPTION
    defs["SeenEvent"]["description"] = SEEN_EVENT_DESCRIPTION
    defs["ArchiveEvent"]["description"] = ARCHIVE_EVENT_DESCRIPTION
    defs["PreferencesEvent"]["description"] = PREFERENCES_EVENT_DESCRIPTION
    defs["ScheduleEvent"]["description"] = SCHEDULE_EVENT_DESCRIPTION
    return defs


def data_model_name(notification_type: NotificationType) -> str:
    return CATALOG[notification_type].data_model.__name__


def typed_data_rules(ref_prefix: str = LOCAL_DEFS) -> list[dict[str, Any]]:
    """One if/then per type: when notification_type is T, data follows T's schema."""
    rules = []
    for notification_type, entry in CATALOG.items():
        then: dict[str, Any] = {
            "properties": {"data": {"$ref": ref_prefix + data_model_name(notification_type)}}
        }
        if any(field.is_required() for field in entry.data_model.model_fields.values()):
            then["required"] = ["data"]
        rules.append(
            {
                "if": {
                    "properties": {"notification_type": {"const": notification_type.value}},
                    "required": ["notification_type"],
                },
                "then": then,
            }
        )
    return rules


def envelope_schema() -> dict[str, Any]:
    """The self-contained schema of a notification event, its data typed per type."""
    defs = definitions()
    root = defs.pop("Envelope")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": "urn:tour-notify:notification-event:v1",
        **root,
        "allOf": typed_data_rules(),
        "$defs": defs,
    }


def read_event_schema() -> dict[str, Any]:
    defs = definitions()
    root = defs.pop("ReadEvent")
    used = {"ReadEventType": defs["ReadEventType"]}
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": "urn:tour-notify:read-event:v1",
        **root,
        "$defs": used,
    }


def _referenced(defs: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """The definitions ``root`` refers to, directly or through each other."""
    used: dict[str, Any] = {}
    pending = [root]
    while pending:
        text = repr(pending.pop())
        for name, schema in defs.items():
            if name not in used and f"'{LOCAL_DEFS}{name}'" in text:
                used[name] = schema
                pending.append(schema)
    return used


def event_schema(model: type[Any], urn: str) -> dict[str, Any]:
    """The self-contained schema of one of the events about notifications and users."""
    defs = definitions()
    root = defs.pop(model.__name__)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:tour-notify:{urn}:v1",
        **root,
        "$defs": _referenced(defs, root),
    }


def data_schema(notification_type: NotificationType) -> dict[str, Any]:
    schema = CATALOG[notification_type].data_model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def example_event(notification_type: NotificationType) -> dict[str, Any]:
    """A complete, valid event of the type, as a producer in any language would publish it."""
    audience: dict[str, Any] = (
        {"broadcast": True} if notification_type in BROADCAST_TYPES else {"user_id": EXAMPLE_USER}
    )
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tour-notify:{notification_type}")),
        "schema_version": SCHEMA_VERSION,
        "notification_type": notification_type.value,
        **audience,
        "data": CATALOG[notification_type].example_data,
        "occurred_at": "2026-02-14T09:30:00Z",
        "producer": "booking-service",
    }


def example_read_event(event_type: ReadEventType) -> dict[str, Any]:
    specific: dict[str, Any] = (
        {"ids": [example_event(NotificationType.BOOKING_CONFIRMED)["event_id"]]}
        if event_type is ReadEventType.READ
        else {"up_to_seq": 1234}
    )
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tour-notify:{event_type}")),
        "schema_version": SCHEMA_VERSION,
        "event_type": event_type.value,
        "user_id": EXAMPLE_USER,
        **specific,
        "occurred_at": "2026-02-14T09:31:00Z",
        "producer": "socket-edge",
    }


def example_state_event(event_type: str) -> dict[str, Any]:
    """A valid seen, archive, unarchive, preferences, release or cancel event."""
    booking = example_event(NotificationType.BOOKING_CONFIRMED)["event_id"]
    examples: dict[str, dict[str, Any]] = {
        SEEN: {"user_id": EXAMPLE_USER, "up_to_seq": 1234},
        ARCHIVED: {"user_id": EXAMPLE_USER, "ids": [booking]},
        UNARCHIVED: {"user_id": EXAMPLE_USER, "ids": [booking]},
        PREFERENCES: {
            "user_id": EXAMPLE_USER,
            "preferences": {
                "muted_categories": ["chat"],
                "muted_types": ["tour_completed"],
                "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"},
            },
        },
        RELEASED: {"scheduled_event_id": booking},
        CANCELLED: {"scheduled_event_id": booking},
    }
    specific = examples[event_type]
    event_id = (
        str(release_event_id(uuid.UUID(booking)))
        if event_type == RELEASED
        else str(uuid.uuid5(uuid.NAMESPACE_URL, f"tour-notify:{event_type}"))
    )
    producer = {RELEASED: "notify-scheduler", CANCELLED: "booking-service"}.get(
        event_type, "socket-edge"
    )
    return {
        "event_id": event_id,
        "schema_version": SCHEMA_VERSION,
        "event_type": event_type,
        **specific,
        "occurred_at": "2026-02-14T09:32:00Z",
        "producer": producer,
    }
