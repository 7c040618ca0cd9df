"""The event envelope v1 (DESIGN.md section 2): the one JSON object a producer publishes.

Every process imports this module: the SDK builds envelopes with it, the dispatcher validates
what arrives from the broker with it, and nothing else spells the rules again.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from producers.catalog import CATALOG, CatalogEntry, Category, NotificationType, Priority

SCHEMA_VERSION = 1
TITLE_MAX = 200
MESSAGE_MAX = 2000
DATA_MAX_BYTES = 16 * 1024
ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"

# Plain text may hold line breaks and tabs; any other control character is refused, so that
# nothing a terminal, a log viewer or a push gateway would interpret travels in a title.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be plain text without control characters")
    return value


def _action_url(value: str) -> str:
    if value.startswith("/") and not value.startswith("//"):
        return value
    if value.startswith("https://") and len(value) > len("https://"):
        return value
    raise ValueError("must be a relative path such as /bookings/b1 or an https:// URL")


Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX), AfterValidator(_plain_text)]
Message = Annotated[str, Field(max_length=MESSAGE_MAX), AfterValidator(_plain_text)]
ActionUrl = Annotated[str, Field(max_length=2048), AfterValidator(_action_url)]
ProducerName = Annotated[str, Field(pattern=ID_PATTERN)]


class Envelope(BaseModel):
    """One notification event, validated.

    After validation every optional field holds its effective value: the priority and the
    title/message defaults come from the catalog, ``occurred_at`` from the time of receipt,
    and ``data`` is the normalised form of the type's data model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: uuid.UUID
    schema_version: Literal[1]
    notification_type: NotificationType
    priority: Priority | None = None
    user_id: Identifier | None = None
    room: Identifier | None = None
    broadcast: bool = False
    title: Title | None = None
    message: Message | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    action_url: ActionUrl | None = None
    occurred_at: AwareDatetime | None = None
    producer: ProducerName | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        audiences = (self.user_id is not None) + (self.room is not None) + bool(self.broadcast)
        if audiences != 1:
            raise ValueError(
                "exactly one audience is required: user_id, room, or broadcast=true "
                f"(got {audiences})"
            )
        entry = self.entry
        try:
            parsed = entry.parse_data(self.data)
        except ValidationError as exc:
            raise ValueError(describe(exc, prefix="data")) from None
        data = parsed.model_dump(mode="json", exclude_unset=True)
        if len(orjson.dumps(data)) > DATA_MAX_BYTES:
            raise ValueError(f"data is larger than {DATA_MAX_BYTES} bytes once encoded")
        # The model is frozen; these assignments complete it during validation only.
        object.__setattr__(self, "data", data)
        if self.priority is None:
            object.__setattr__(self, "priority", entry.priority)
        if self.title is None:
            object.__setattr__(self, "title", _plain_text(entry.title(parsed))[:TITLE_MAX])
        if self.message is None:
            object.__setattr__(self, "message", _plain_text(entry.message(parsed))[:MESSAGE_MAX])
        if self.occurred_at is None:
            object.__setattr__(self, "occurred_at", datetime.now(UTC))
        return self

    @property
    def entry(self) -> CatalogEntry:
        return CATALOG[self.notification_type]

    @property
    def category(self) -> Category:
        return self.entry.category

    @property
    def routing_key(self) -> str:
        """The key it is published under on the events exchange: its notification type."""
        return self.notification_type.value

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class ReadEventType(StrEnum):
    READ = "notification.read"
    ALL_READ = "notification.all_read"


READ_IDS_MAX = 1000


class ReadEvent(BaseModel):
    """A user marked notifications read: published by the edge and the REST API to
    ``notifications.events`` with routing key = ``event_type``, stored in the same log.

    ``notification.read`` names the notifications by ``ids`` (their event_ids);
    ``notification.all_read`` marks everything of the user read, or, with ``up_to_seq``,
    everything up to that seq (so nothing the client has not seen is marked read).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    schema_version: Literal[1]
    event_type: ReadEventType
    user_id: Identifier
    ids: list[uuid.UUID] = Field(default_factory=list, max_length=READ_IDS_MAX)
    up_to_seq: int | None = Field(default=None, ge=0)
    occurred_at: AwareDatetime | None = None
    producer: ProducerName | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.event_type is ReadEventType.READ:
            if not self.ids:
                raise ValueError("notification.read needs at least one id in ids")
            if self.up_to_seq is not None:
                raise ValueError("up_to_seq belongs to notification.all_read")
        elif self.ids:
            raise ValueError("ids belong to notification.read")
        if self.occurred_at is None:
            object.__setattr__(self, "occurred_at", datetime.now(UTC))
        return self

    @property
    def routing_key(self) -> str:
        return self.event_type.value

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


Event = Envelope | ReadEvent


class EnvelopeError(ValueError):
    """An event that breaks a rule of the envelope; ``reason`` names the field and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(error: ValidationError, prefix: str = "") -> str:
    """A one-line reason naming each field that failed, for logs and dead-letter headers."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "") or "event"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(message if where == "event" else f"{where}: {message}")
    return "; ".join(parts)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise EnvelopeError("body must be one JSON object")
    return raw


def parse_envelope(body: bytes) -> Envelope:
    """Decode and validate one notification; raise EnvelopeError with a readable reason."""
    try:
        return Envelope.model_validate(_decode(body))
    except ValidationError as exc:
        raise EnvelopeError(describe(exc)) from None


def parse_event(body: bytes) -> Event:
    """Decode and validate any event of the events exchange: a notification, or a read
    event (recognised by its ``event_type`` field)."""
    raw = _decode(body)
    model: type[Envelope] | type[ReadEvent] = ReadEvent if "event_type" in raw else Envelope
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise EnvelopeError(describe(exc)) from None


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()
