"""The event envelope v1 (docs/events.md): the one JSON object a producer publishes.

Every process imports this module: the SDK builds envelopes with it, the dispatcher validates
what arrives from the broker with it, and nothing else spells the rules again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from producers.catalog import CATALOG, CatalogEntry, Category, NotificationType, Priority
from producers.preferences import Preferences

SCHEMA_VERSION = 1
TITLE_MAX = 200
MESSAGE_MAX = 2000
DATA_MAX_BYTES = 16 * 1024
# Nesting of a ``data`` object (an envelope's, a room message's): deep enough for any real
# payload, far below the depth at which a JSON encoder gives up.
DATA_MAX_DEPTH = 32
ACTION_URL_MAX = 2048
# How far ahead a notification may be scheduled.
SCHEDULE_MAX = timedelta(days=366)

# A position in the event log: a PostgreSQL bigint. Every seq a client or a producer sends
# (``since``, ``before_seq``, ``up_to_seq``) is an integer in this range, never a string or a
# float that happens to hold one.
SEQ_MAX = 2**63 - 1
Seq = Annotated[int, Strict(), Field(ge=0, le=SEQ_MAX)]

# User ids, room names and producer names. ``ID_PATTERN`` is the anchored form for JSON
# Schema and pydantic (whose ``$`` is the end of the text); Python code tests a whole string
# with ``is_identifier``, since Python's ``$`` also matches before a final newline.
ID_CHARS = r"[A-Za-z0-9_.:@-]{1,128}"
ID_PATTERN = rf"^{ID_CHARS}$"
ID_RULE = "1-128 of A-Z a-z 0-9 _ . : @ -"
_ID = re.compile(ID_CHARS)


def is_identifier(value: str) -> bool:
    return _ID.fullmatch(value) is not None


# Plain text may hold line breaks and tabs. Refused: every other C0 control and DEL, the C1
# controls (which terminals interpret), the bidirectional embeddings, overrides and isolates
# (which make text display in another order than it reads) and lone surrogates (which no
# UTF-8 encoder accepts). Left-to-right and right-to-left marks stay: Hebrew and Arabic text
# needs them.
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}\ud800-\udfff]")


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(
            "must be plain text without control characters, bidirectional overrides or "
            "lone surrogates"
        )
    return value


# An action_url is followed by a browser, whose URL parser drops tabs and line breaks
# anywhere, strips leading and trailing spaces and controls, and reads a backslash as a slash:
# ``/\\evil.example`` and ``/<TAB>/evil.example`` both lead to ``//evil.example``. So no
# whitespace, control, backslash or bidi control is accepted anywhere in it; a relative path
# is ``/`` followed by anything but another slash; an https URL names a plain host (no user
# info, which would hide the real host behind a trusted-looking one).
_URL_REFUSED = re.compile(rf"[\s\x00-\x1f\x7f-\x9f\\{_BIDI_CONTROLS}\ud800-\udfff]")
_HTTPS_AUTHORITY = re.compile(r"https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_URL_RULE = "must be a relative path such as /bookings/b1 or an https:// URL"


def _action_url(value: str) -> str:
    if _URL_REFUSED.search(value):
        raise ValueError(f"{_URL_RULE}, without spaces, control characters or backslashes")
    if value.startswith("/") and not value.startswith("//"):
        return value
    authority = _HTTPS_AUTHORITY.match(value)
    if authority is not None and value[authority.end() : authority.end() + 1] in (
        "",
        "/",
        "?",
        "#",
    ):
        return value
    raise ValueError(_URL_RULE)


class DataTooLarge(ValueError):
    """A ``data`` object over its size limit."""


def json_object(value: dict[str, Any], max_bytes: int = DATA_MAX_BYTES) -> dict[str, Any]:
    """Check that ``value`` is a JSON object a client can be sent: at most ``DATA_MAX_DEPTH``
    levels deep, encodable (no lone surrogates, integers within 64 bits) and at most
    ``max_bytes`` once encoded. Raises ValueError naming what is wrong."""
    _check_depth(value)
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"cannot be encoded as JSON: {exc}") from None
    if len(encoded) > max_bytes:
        raise DataTooLarge(f"is larger than {max_bytes} bytes once encoded")
    return value


def _check_depth(value: dict[str, Any]) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]  # a container, and how many enclose it
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        assert isinstance(children, Iterable)
        for child in children:
            if isinstance(child, dict | list | tuple):
                if depth + 1 > DATA_MAX_DEPTH:
                    raise ValueError(f"is nested more than {DATA_MAX_DEPTH} levels deep")
                stack.append((child, depth + 1))


Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX), AfterValidator(_plain_text)]
Message = Annotated[str, Field(max_length=MESSAGE_MAX), AfterValidator(_plain_text)]
ActionUrl = Annotated[str, Field(max_length=ACTION_URL_MAX), AfterValidator(_action_url)]
ProducerName = Annotated[str, Field(pattern=ID_PATTERN)]
JsonObject = Annotated[dict[str, Any], AfterValidator(json_object)]


def _shallow(value: dict[str, Any]) -> dict[str, Any]:
    _check_depth(value)
    return value


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
    # Depth is checked on what arrives (an SDK passes dates and Decimals, which the type's
    # model turns into JSON); the JSON form is checked whole once normalised.
    data: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(default_factory=dict)
    action_url: ActionUrl | None = None
    occurred_at: AwareDatetime | None = None
    producer: ProducerName | None = None
    # A scheduled notification: logged at once, delivered when due (docs/events.md,
    # "Scheduled notifications"). Absent, or not after the time it is logged: at once.
    deliver_at: AwareDatetime | None = None

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
        try:
            json_object(data)
        except ValueError as exc:
            raise ValueError(f"data {exc}") from None
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
        if self.deliver_at is not None and self.deliver_at > datetime.now(UTC) + SCHEDULE_MAX:
            raise ValueError(
                f"deliver_at: must be at most {SCHEDULE_MAX.days} days ahead of the time it is sent"
            )
        return self

    def scheduled_after(self, logged_at: datetime) -> bool:
        """Whether this notification waits in the schedule: its ``deliver_at`` is later than
        the moment it was logged."""
        return self.deliver_at is not None and self.deliver_at > logged_at

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
        # A notification sent at once is logged exactly as before scheduling existed.
        unscheduled = {"deliver_at"} if self.deliver_at is None else None
        return orjson.dumps(self.model_dump(mode="json", exclude=unscheduled))


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
    up_to_seq: Seq | None = None
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


class UserStateEvent(BaseModel):
    """The common part of the events that change one user's state (seen, archive,
    preferences): published by the edge and the REST API like a read event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    schema_version: Literal[1]
    user_id: Identifier
    occurred_at: AwareDatetime | None = None
    producer: ProducerName | None = None

    @model_validator(mode="after")
    def _received(self) -> Self:
        if self.occurred_at is None:
            object.__setattr__(self, "occurred_at", datetime.now(UTC))
        return self

    @property
    def routing_key(self) -> str:
        return str(getattr(self, "event_type"))  # noqa: B009 - every subclass has one

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class SeenEvent(UserStateEvent):
    """The user opened their inbox: everything up to ``up_to_seq`` is seen (the badge, which
    counts unseen notifications, goes down); read state is unchanged."""

    event_type: Literal["notification.seen"]
    up_to_seq: Seq


class ArchiveEventType(StrEnum):
    ARCHIVED = "notification.archived"
    UNARCHIVED = "notification.unarchived"


class ArchiveEvent(UserStateEvent):
    """``notification.archived``: the notifications named by ``ids``, or with ``all_read``
    every read one (up to ``up_to_seq`` when given), leave the user's inbox for its Archived
    list. ``notification.unarchived``: the ones named by ``ids`` come back."""

    event_type: ArchiveEventType
    ids: list[uuid.UUID] = Field(default_factory=list, max_length=READ_IDS_MAX)
    all_read: bool = False
    up_to_seq: Seq | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all_read:
            if self.event_type is ArchiveEventType.UNARCHIVED:
                raise ValueError("all_read belongs to notification.archived")
            if self.ids:
                raise ValueError("give either ids or all_read, not both")
        else:
            if not self.ids:
                raise ValueError(f"{self.event_type.value} needs at least one id in ids")
            if self.up_to_seq is not None:
                raise ValueError("up_to_seq belongs to all_read")
        return self


class PreferencesEvent(UserStateEvent):
    """The user's preferences, replaced whole."""

    event_type: Literal["notification.preferences"]
    preferences: Preferences


# Releases of scheduled notifications have an event_id derived from the scheduled one's, so
# that any number of dispatchers releasing the same notification append one release.
RELEASE_NAMESPACE = uuid.UUID("5d8e0f4c-7a51-4f0e-9a43-2f4b8d1c6e17")


def release_event_id(scheduled_event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(RELEASE_NAMESPACE, str(scheduled_event_id))


class ScheduleEvent(BaseModel):
    """``notification.released``: a scheduled notification is due (appended by a dispatcher);
    ``notification.cancelled``: a producer withdrew it before it was due."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID
    schema_version: Literal[1]
    event_type: Literal["notification.released", "notification.cancelled"]
    scheduled_event_id: uuid.UUID
    occurred_at: AwareDatetime | None = None
    producer: ProducerName | None = None

    @model_validator(mode="after")
    def _received(self) -> Self:
        if self.occurred_at is None:
            object.__setattr__(self, "occurred_at", datetime.now(UTC))
        if self.event_type == RELEASED and self.event_id != release_event_id(
            self.scheduled_event_id
        ):
            raise ValueError("a release's event_id is release_event_id(scheduled_event_id)")
        return self

    @property
    def routing_key(self) -> str:
        return self.event_type

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


SEEN = "notification.seen"
ARCHIVED = ArchiveEventType.ARCHIVED.value
UNARCHIVED = ArchiveEventType.UNARCHIVED.value
PREFERENCES = "notification.preferences"
RELEASED = "notification.released"
CANCELLED = "notification.cancelled"

StateEvent = SeenEvent | ArchiveEvent | PreferencesEvent
Event = Envelope | ReadEvent | SeenEvent | ArchiveEvent | PreferencesEvent | ScheduleEvent

# The model of each event_type a producer, the edge or a dispatcher may publish.
EVENT_MODELS: dict[str, type[BaseModel]] = {
    ReadEventType.READ.value: ReadEvent,
    ReadEventType.ALL_READ.value: ReadEvent,
    SEEN: SeenEvent,
    ARCHIVED: ArchiveEvent,
    UNARCHIVED: ArchiveEvent,
    PREFERENCES: PreferencesEvent,
    RELEASED: ScheduleEvent,
    CANCELLED: ScheduleEvent,
}


class EnvelopeError(ValueError):
    """An event that breaks a rule of the envelope; ``reason`` names the field and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(error: ValidationError, prefix: str = "") -> str:
    """A one-line reason naming each field that failed, for logs and dead-letter headers."""
    return "; ".join(describe_errors(error.errors(include_url=False), prefix))


def describe_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[str]:
    """Each error of a validation as ``field.path: message`` (never the input's value)."""
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "") or "event"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(message if where == "event" else f"{where}: {message}")
    return parts


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
    """Decode and validate any event of the events exchange: a notification, or an event
    about one (recognised by its ``event_type`` field: a read, seen, archive, preferences,
    release or cancel event)."""
    raw = _decode(body)
    if "event_type" not in raw:
        model: type[BaseModel] = Envelope
    else:
        kind = raw["event_type"]
        found = EVENT_MODELS.get(kind) if isinstance(kind, str) else None
        if found is None:
            raise EnvelopeError(f"event_type: must be one of {', '.join(sorted(EVENT_MODELS))}")
        model = found
    try:
        event = model.model_validate(raw)
    except ValidationError as exc:
        raise EnvelopeError(describe(exc)) from None
    assert isinstance(event, Envelope | ReadEvent | UserStateEvent | ScheduleEvent)
    return event  # type: ignore[return-value]


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()
