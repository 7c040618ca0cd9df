"""What each accepted event becomes in the log: pure decisions, no I/O.

The log holds every kind of event in one order (``seq``):

- ``notification.created``: a notification envelope (``producers.envelope.Envelope``);
- ``notification.read`` / ``notification.all_read``: a user marked notifications read
  (``producers.envelope.ReadEvent``);
- ``notification.seen``: a user saw their notifications up to a seq (the badge goes down);
- ``notification.archived`` / ``notification.unarchived``: notifications leave a user's inbox
  for the archive, or come back (``producers.envelope.ArchiveEvent``);
- ``notification.preferences``: a user's preferences, replaced whole;
- ``notification.released`` / ``notification.cancelled``: a scheduled notification became due
  (appended by a dispatcher's scheduler, ``dispatcher.scheduler``) or was withdrawn by its
  producer (``producers.envelope.ScheduleEvent``);
- ``notification.pruned``: the operator removed old read notifications from the projections
  (``notify prune``), recorded so that a rebuild from the log prunes the same rows again.

The projections are a function of this sequence alone (plus delivery receipts, which are
facts about sockets, not events, and are carried across a rebuild: ``dispatcher.rebuild``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from producers.envelope import (
    ARCHIVED,
    CANCELLED,
    EVENT_MODELS,
    PREFERENCES,
    RELEASED,
    SEEN,
    UNARCHIVED,
    Envelope,
    Event,
    ReadEvent,
    ReadEventType,
    ScheduleEvent,
    UserStateEvent,
)

CREATED = "notification.created"
READ = ReadEventType.READ.value
ALL_READ = ReadEventType.ALL_READ.value
PRUNED = "notification.pruned"

__all__ = [
    "ALL_READ",
    "ARCHIVED",
    "CANCELLED",
    "CREATED",
    "EVENT_TYPES",
    "PREFERENCES",
    "PRUNED",
    "READ",
    "RELEASED",
    "SEEN",
    "STATE_EVENT_TYPES",
    "UNARCHIVED",
]

EVENT_TYPES = (
    CREATED,
    READ,
    ALL_READ,
    PRUNED,
    SEEN,
    ARCHIVED,
    UNARCHIVED,
    PREFERENCES,
    RELEASED,
    CANCELLED,
)

# The events about one user's state: each is delivered as a sync frame under ``user.<id>``
# (docs/websocket.md), to every socket of the user.
STATE_EVENT_TYPES = (READ, ALL_READ, SEEN, ARCHIVED, UNARCHIVED, PREFERENCES)

# The events whose application publishes something: new notifications (at once or when
# released) and the state syncs. A prune, a cancel and a scheduled notification have none.
DELIVERED_EVENT_TYPES = (CREATED, RELEASED, *STATE_EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class Pruned:
    """The operator's retention decision: read notifications created before ``cutoff`` leave
    the projections (``dispatcher.retention``)."""

    event_id: uuid.UUID
    cutoff: datetime
    occurred_at: datetime
    producer: str | None = "notify-prune"

    def payload(self) -> dict[str, Any]:
        return {"event_id": str(self.event_id), "cutoff": self.cutoff.isoformat()}


LogEvent = Event | Pruned


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One row to append to ``notification_events`` (its seq is drawn by the database)."""

    event: LogEvent
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    producer: str | None
    payload: str  # JSON text, cast to jsonb by the insert


def event_type_of(event: LogEvent) -> str:
    if isinstance(event, Envelope):
        return CREATED
    if isinstance(event, ReadEvent):
        return event.event_type.value
    if isinstance(event, UserStateEvent | ScheduleEvent):
        return str(event.routing_key)
    return PRUNED


def log_entry(event: LogEvent) -> LogEntry:
    if isinstance(event, Pruned):
        payload = orjson.dumps(event.payload()).decode()
    else:
        payload = event.to_json().decode()
    assert event.occurred_at is not None  # completed by validation
    return LogEntry(
        event=event,
        event_id=event.event_id,
        event_type=event_type_of(event),
        occurred_at=event.occurred_at,
        producer=event.producer,
        payload=payload,
    )


def unique_entries(events: Iterable[LogEvent]) -> list[LogEntry]:
    """One entry per event_id, in arrival order: a second copy of an event inside one batch is
    the broker saying "maybe you missed it", and it is skipped like a copy already logged."""
    seen: set[uuid.UUID] = set()
    entries: list[LogEntry] = []
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        entries.append(log_entry(event))
    return entries


def event_from_payload(
    event_type: str, payload: dict[str, Any], occurred_at: datetime
) -> LogEvent | None:
    """Rebuild the event a log row was appended from (for ``notify rebuild``); None for an
    event type this version does not project, which a rebuild leaves aside."""
    if event_type == CREATED:
        return Envelope.model_validate(payload)
    if event_type == PRUNED:
        return Pruned(
            event_id=uuid.UUID(payload["event_id"]),
            cutoff=datetime.fromisoformat(payload["cutoff"]),
            occurred_at=occurred_at,
        )
    model = EVENT_MODELS.get(event_type)
    if model is None:
        return None
    event = model.model_validate(payload)
    assert isinstance(event, ReadEvent | UserStateEvent | ScheduleEvent)
    return event  # type: ignore[return-value]
