"""The AsyncAPI 3.0 document of the pipeline's channels and messages, generated from the same
models as the JSON Schema (``producers.contract``): ``notify schema asyncapi`` prints it, and
docs/asyncapi.yaml is that document (a test keeps the two equal).

It describes the pipeline as one application: it receives notification events and the events
about them and their users (read, seen, archive, preferences, release and cancel of scheduled
ones) on ``notifications.events``, dead-letters the invalid ones, and sends delivery frames to
``notifications.deliver``.
"""

from __future__ import annotations

from typing import Any

from producers import topology
from producers.catalog import CATALOG, NotificationType
from producers.contract import (
    STATE_EVENT_MODELS,
    data_model_name,
    definitions,
    example_event,
    example_read_event,
    example_state_event,
)
from producers.envelope import ReadEventType

SCHEMAS = "#/components/schemas/"
MESSAGES = "#/components/messages/"
AMQP_BINDING_VERSION = "0.3.0"


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"}


def _routing_key_channel(
    address: str, exchange: str, kind: str, messages: list[str], description: str
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": address,
        "description": description,
        "messages": {name: {"$ref": MESSAGES + name} for name in messages},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": _exchange(exchange, kind),
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }
    return channel


def _notification_message(notification_type: NotificationType) -> dict[str, Any]:
    entry = CATALOG[notification_type]
    return {
        "name": notification_type.value,
        "title": f"{notification_type.value} ({entry.category.value})",
        "summary": f"Default priority {entry.priority.value}. Routing key {notification_type}.",
        "contentType": "application/json",
        "correlationId": {"location": "$message.payload#/event_id"},
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + "Envelope"},
                {
                    "properties": {
                        "notification_type": {"const": notification_type.value},
                        "data": {"$ref": SCHEMAS + data_model_name(notification_type)},
                    }
                },
            ]
        },
        "bindings": {
            "amqp": {
                "messageType": notification_type.value,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "examples": [{"name": "example", "payload": example_event(notification_type)}],
    }


def _read_message(event_type: ReadEventType) -> dict[str, Any]:
    return {
        "name": event_type.value,
        "title": event_type.value,
        "contentType": "application/json",
        "correlationId": {"location": "$message.payload#/event_id"},
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + "ReadEvent"},
                {"properties": {"event_type": {"const": event_type.value}}},
            ]
        },
        "bindings": {
            "amqp": {
                "messageType": event_type.value,
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
        "examples": [{"name": "example", "payload": example_read_event(event_type)}],
    }


def _state_message(event_type: str) -> dict[str, Any]:
    model = STATE_EVENT_MODELS[event_type]
    return {
        "name": event_type,
        "title": event_type,
        "contentType": "application/json",
        "correlationId": {"location": "$message.payload#/event_id"},
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + model.__name__},
                {"properties": {"event_type": {"const": event_type}}},
            ]
        },
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": AMQP_BINDING_VERSION}},
        "examples": [{"name": "example", "payload": example_state_event(event_type)}],
    }


def _message_key(name: str) -> str:
    return name.replace(".", "_")


def _frame_schemas() -> dict[str, Any]:
    """The frames of the delivery exchange, which are also the frames a WebSocket client
    receives (docs/websocket.md)."""
    text = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    return {
        "NotificationFrame": {
            "type": "object",
            "required": ["type", "id", "seq", "notification_type", "priority", "title",
                         "message", "data", "action_url", "timestamp", "read"],
            "properties": {
                "type": {"const": "notification"},
                "id": {"type": "string", "format": "uuid", "description": "the event_id"},
                "seq": {"type": "integer", "description": "position in the event log"},
                "notification_type": {"$ref": SCHEMAS + "NotificationType"},
                "priority": {"$ref": SCHEMAS + "Priority"},
                "title": text,
                "message": text,
                "data": {"type": "object"},
                "action_url": {"type": ["string", "null"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "read": {"type": "boolean"},
                "room": {**text, "description": "present on room notifications"},
                "replayed": {"const": True, "description": "present on frames of a replay"},
                "quiet": {"const": True, "description": "it came during the user's quiet "
                          "hours: shown, without a browser notification"},
                "archived": {"const": True, "description": "the user archived it (history)"},
            },
            "additionalProperties": False,
        },
        "ReadFrame": {
            "type": "object",
            "required": ["type", "ids", "unread_count", "unseen_count"],
            "properties": {
                "type": {"const": "read"},
                "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                "unread_count": count,
                "unseen_count": count,
                "up_to_seq": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
        },
        "SeenFrame": {
            "type": "object",
            "required": ["type", "up_to_seq", "unseen_count"],
            "properties": {
                "type": {"const": "seen"},
                "up_to_seq": {"type": "integer", "minimum": 0,
                              "description": "the user's seen mark: everything up to it is seen"},
                "unseen_count": count,
            },
            "additionalProperties": False,
        },
        **{
            f"{kind.capitalize()}Frame": {
                "type": "object",
                "required": ["type", "ids", "unread_count", "unseen_count"],
                "properties": {
                    "type": {"const": kind},
                    "ids": {"type": "array", "items": {"type": "string", "format": "uuid"},
                            "description": f"the event_ids the event {kind}"},
                    "unread_count": count,
                    "unseen_count": count,
                },
                "additionalProperties": False,
            }
            for kind in ("archived", "unarchived")
        },
        "PreferencesFrame": {
            "type": "object",
            "required": ["type", "preferences", "critical_types"],
            "properties": {
                "type": {"const": "preferences"},
                "preferences": {"$ref": SCHEMAS + "Preferences"},
                "critical_types": {"type": "array", "items": {"$ref": SCHEMAS + "NotificationType"},
                                   "description": "the operator's types no preference mutes"},
            },
            "additionalProperties": False,
        },
    }  # fmt: skip


def _frame_messages() -> dict[str, Any]:
    seq_header = {
        "type": "object",
        "properties": {topology.SEQ_HEADER: {"type": "integer"}},
    }
    return {
        "notification_frame": {
            "name": "notification",
            "title": "A stored notification, as the client receives it",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "NotificationFrame"},
        },
        "read_frame": {
            "name": "read",
            "title": "Notifications a device of the user marked read",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "ReadFrame"},
        },
        "seen_frame": {
            "name": "seen",
            "title": "A device of the user saw the notifications up to a seq",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "SeenFrame"},
        },
        "archived_frame": {
            "name": "archived",
            "title": "Notifications a device of the user archived",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "ArchivedFrame"},
        },
        "unarchived_frame": {
            "name": "unarchived",
            "title": "Notifications a device of the user brought back from the archive",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "UnarchivedFrame"},
        },
        "preferences_frame": {
            "name": "preferences",
            "title": "The user's preferences, as just set",
            "contentType": "application/json",
            "headers": seq_header,
            "payload": {"$ref": SCHEMAS + "PreferencesFrame"},
        },
        "dead_letter": {
            "name": "dead_letter",
            "title": "An event the dispatcher refused, unchanged, with the reason",
            "headers": {
                "type": "object",
                "required": [topology.ERROR_HEADER, topology.ORIGINAL_KEY_HEADER],
                "properties": {
                    topology.ERROR_HEADER: {"type": "string"},
                    topology.ORIGINAL_KEY_HEADER: {"type": "string"},
                },
            },
            "payload": {"description": "the original body, as published"},
        },
    }


def _channels() -> dict[str, Any]:
    event_messages = (
        [t.value for t in NotificationType]
        + [_message_key(t.value) for t in ReadEventType]
        + [_message_key(t) for t in STATE_EVENT_MODELS]
    )
    frames = ["notification_frame", "read_frame", "seen_frame", "archived_frame",
              "unarchived_frame", "preferences_frame"]  # fmt: skip
    return {
        "events": _routing_key_channel(
            "{routing_key}", topology.EVENTS_EXCHANGE, "topic", event_messages,
            "Producers publish here: persistent, with publisher confirms, routing key = "
            "notification_type (or event_type for the other events).",
        ) | {"parameters": {"routing_key": {
            "description": "the notification_type, or the event_type of another event",
            "enum": event_messages[: len(NotificationType)] + [t.value for t in ReadEventType]
            + list(STATE_EVENT_MODELS),
        }}},
        "deadLetter": _routing_key_channel(
            "{routing_key}", topology.DEAD_LETTER_EXCHANGE, "fanout", ["dead_letter"],
            f"Invalid events, kept in the queue {topology.DEAD_LETTER_QUEUE}.",
        ) | {"parameters": {"routing_key": {"description": "the original routing key"}}},
        "userDeliveries": _routing_key_channel(
            "user.{user_id}", topology.DELIVER_EXCHANGE, "topic", frames,
            "Frames for one user, consumed by the socket edges holding that user's sockets.",
        ) | {"parameters": {"user_id": {"description": "the recipient"}}},
        "roomDeliveries": _routing_key_channel(
            "room.{room}", topology.DELIVER_EXCHANGE, "topic", ["notification_frame"],
            "Frames for the subscribers of one room.",
        ) | {"parameters": {"room": {"description": "the room"}}},
        "broadcastDeliveries": _routing_key_channel(
            topology.BROADCAST_KEY, topology.DELIVER_EXCHANGE, "topic", ["notification_frame"],
            "Frames for everybody connected.",
        ),
    }  # fmt: skip


def _operations() -> dict[str, Any]:
    def operation(action: str, channel: str, summary: str) -> dict[str, Any]:
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary}

    receive = operation(
        "receive", "events", "The dispatcher stores each event once, then acknowledges it."
    )
    # Acknowledged only after the event is committed to the log.
    receive["bindings"] = {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}}
    return {
        "receiveEvents": receive,
        "deadLetterInvalidEvents": operation(
            "send", "deadLetter", "An invalid event is re-published with the reason."
        ),
        "deliverToUser": operation("send", "userDeliveries", "After the event is committed."),
        "deliverToRoom": operation("send", "roomDeliveries", "After the event is committed."),
        "deliverToEverybody": operation(
            "send", "broadcastDeliveries", "After the event is committed."
        ),
    }


def asyncapi_document() -> dict[str, Any]:
    messages: dict[str, Any] = {t.value: _notification_message(t) for t in NotificationType}
    messages |= {_message_key(t.value): _read_message(t) for t in ReadEventType}
    messages |= {_message_key(t): _state_message(t) for t in STATE_EVENT_MODELS}
    messages |= _frame_messages()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tour-notify notification pipeline",
            "version": "1",
            "description": (
                "Events in on RabbitMQ, stored once in a PostgreSQL event log, delivery "
                "frames out to the socket edges. Generated by `notify schema asyncapi`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The AMQP_URL of a deployment; guest/guest on a development host.",
            }
        },
        "channels": _channels(),
        "operations": _operations(),
        "components": {
            "schemas": definitions(SCHEMAS) | _frame_schemas(),
            "messages": messages,
        },
    }
