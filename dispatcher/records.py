"""A stored notification, and the frame a WebSocket client receives for it (docs/websocket.md).

The dispatcher builds the frame once when it routes a new notification; the edge builds the
same frame from a database row when it replays. Both go through ``notification_frame``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson

from producers import topology
from producers.envelope import Envelope


@dataclass(frozen=True, slots=True)
class StoredNotification:
    seq: int
    event_id: uuid.UUID
    audience: str  # "user", "room" or "broadcast"
    user_id: str | None
    room: str | None
    notification_type: str
    category: str
    priority: str
    title: str
    message: str
    data: dict[str, Any]
    action_url: str | None
    producer: str | None
    occurred_at: datetime

    @classmethod
    def from_envelope(cls, envelope: Envelope, seq: int) -> StoredNotification:
        assert envelope.priority is not None and envelope.occurred_at is not None
        assert envelope.title is not None and envelope.message is not None
        return cls(
            seq=seq,
            event_id=envelope.event_id,
            audience=audience_of(envelope),
            user_id=envelope.user_id,
            room=envelope.room,
            notification_type=envelope.notification_type.value,
            category=envelope.category.value,
            priority=envelope.priority.value,
            title=envelope.title,
            message=envelope.message,
            data=envelope.data,
            action_url=envelope.action_url,
            producer=envelope.producer,
            occurred_at=envelope.occurred_at,
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StoredNotification:
        return cls(**{name: row[name] for name in FIELDS})

    @property
    def delivery_key(self) -> str:
        """The routing key on the delivery exchange: ``user.<id>``, ``room.<name>`` or
        ``broadcast``."""
        if self.user_id is not None:
            return topology.user_key(self.user_id)
        if self.room is not None:
            return topology.room_key(self.room)
        return topology.BROADCAST_KEY

    def projection_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = tuple(f.name for f in fields(StoredNotification))


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, the same whether the frame is live or replayed."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def audience_of(envelope: Envelope) -> str:
    if envelope.user_id is not None:
        return "user"
    if envelope.room is not None:
        return "room"
    return "broadcast"


def notification_frame(
    notification: StoredNotification,
    *,
    read: bool = False,
    replayed: bool = False,
    quiet: bool = False,
    archived: bool = False,
) -> dict[str, Any]:
    """A notification as a client gets it. ``quiet``: it came during the user's quiet hours
    (no browser notification for it); ``archived``: the user archived it (history only)."""
    frame: dict[str, Any] = {
        "type": "notification",
        "id": str(notification.event_id),
        "seq": notification.seq,
        "notification_type": notification.notification_type,
        "priority": notification.priority,
        "title": notification.title,
        "message": notification.message,
        "data": notification.data,
        "action_url": notification.action_url,
        "timestamp": timestamp(notification.occurred_at),
        "read": read,
    }
    if notification.room is not None:
        frame["room"] = notification.room
    if replayed:
        frame["replayed"] = True
    if quiet:
        frame["quiet"] = True
    if archived:
        frame["archived"] = True
    return frame


def encode_frame(frame: Mapping[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def read_frame(
    ids: Sequence[str],
    unread_count: int,
    up_to_seq: int | None = None,
    *,
    unseen_count: int | None = None,
) -> dict[str, Any]:
    """The ``read`` sync every socket of a user gets when any device marks something read:
    the event_ids it marked, the new counts, and for ``mark_all_read`` the seq up to which
    everything is now read. (The dispatcher always gives ``unseen_count``.)"""
    frame: dict[str, Any] = {"type": "read", "ids": list(ids), "unread_count": unread_count}
    if unseen_count is not None:
        frame["unseen_count"] = unseen_count
    if up_to_seq is not None:
        frame["up_to_seq"] = up_to_seq
    return frame


def seen_frame(up_to_seq: int, unseen_count: int) -> dict[str, Any]:
    """The ``seen`` sync: everything of the user up to ``up_to_seq`` (their new seen mark) has
    been seen on some device; ``unseen_count`` is the new badge."""
    return {"type": "seen", "up_to_seq": up_to_seq, "unseen_count": unseen_count}


def archived_frame(
    ids: Sequence[str], unread_count: int, unseen_count: int, *, unarchived: bool = False
) -> dict[str, Any]:
    """The ``archived`` (or ``unarchived``) sync: the event_ids the event actually moved, and
    the user's counts after it."""
    return {
        "type": "unarchived" if unarchived else "archived",
        "ids": list(ids),
        "unread_count": unread_count,
        "unseen_count": unseen_count,
    }


def preferences_frame(preferences: Mapping[str, Any], critical: Iterable[str]) -> dict[str, Any]:
    """The ``preferences`` sync: the user's preferences, whole, and the operator's critical
    types (which no preference mutes)."""
    return {
        "type": "preferences",
        "preferences": dict(preferences),
        "critical_types": sorted(critical),
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message for the delivery exchange. ``seq`` is the log position of the event it
    comes from: the edge drops a live frame at or below its replay's high-water mark, so every
    delivery must carry its own event's seq (``topology.SEQ_HEADER``)."""

    seq: int
    routing_key: str
    body: bytes


def notification_delivery(notification: StoredNotification) -> Delivery:
    body = encode_frame(notification_frame(notification)).encode()
    return Delivery(notification.seq, notification.delivery_key, body)
