"""Seed-style message dicts (``{"type": ..., "title": ..., "data": {...}}``) turned into the
fields of an event, for ``send_personal_message``, ``broadcast`` and ``broadcast_to_room``.

The rule, so that code written for the seed's connection manager keeps working:
- the type is ``notification_type``, else ``type`` when it names a catalog type, else
  ``system_alert`` (whose data is free-form);
- ``title``, ``message``, ``priority``, ``action_url`` are the envelope's fields;
- ``data`` is the data, and every other key joins it (a ``type`` that named no catalog type,
  ``"tour_update"`` say, is kept there too, except the seed's frame type ``"notification"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producers.catalog import NotificationType

ENVELOPE_KEYS = ("title", "message", "priority", "action_url")
SEED_FRAME_TYPE = "notification"
CATALOG_TYPES = frozenset(t.value for t in NotificationType)


def notification_type_of(message: Mapping[str, Any]) -> NotificationType:
    named = message.get("notification_type")
    if named is not None:
        return NotificationType(named)
    if message.get("type") in CATALOG_TYPES:
        return NotificationType(message["type"])
    return NotificationType.SYSTEM_ALERT


def event_fields(message: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``NotificationService.build`` for one seed-style message."""
    notification_type = notification_type_of(message)
    data = message.get("data") or {}
    if not isinstance(data, Mapping):
        raise TypeError(f"message['data'] must be a mapping, not {type(data).__name__}")
    extra = {
        key: value
        for key, value in message.items()
        if key not in (*ENVELOPE_KEYS, "data", "notification_type")
        and not (key == "type" and value in (*CATALOG_TYPES, SEED_FRAME_TYPE))
    }
    fields: dict[str, Any] = {key: message[key] for key in ENVELOPE_KEYS if key in message}
    fields["notification_type"] = notification_type
    fields["data"] = {**extra, **data}
    return fields
