"""Client-to-server frames (docs/websocket.md), parsed into typed models.

Anything that does not parse gets an ``error`` frame with a machine code; the socket stays
open. Parsing is strict: a seq is a JSON integer within PostgreSQL's bigint (not ``"5"`` nor
``5.0``), a room a valid name, a message's data a JSON object of bounded depth and size. Parsing
is pure: no I/O here.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from producers.envelope import (
    ID_PATTERN,
    READ_IDS_MAX,
    DataTooLarge,
    Seq,
    describe,
    json_object,
)

Room = Annotated[str, Field(pattern=ID_PATTERN)]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ping(_Action):
    action: Literal["ping"]


class Subscribe(_Action):
    action: Literal["subscribe"]
    room: Room
    since: Seq | None = None


class Unsubscribe(_Action):
    action: Literal["unsubscribe"]
    room: Room


class Message(_Action):
    action: Literal["message"]
    room: Room
    data: dict[str, Any] = Field(default_factory=dict)


class MarkRead(_Action):
    action: Literal["mark_read"]
    ids: list[uuid.UUID] = Field(min_length=1, max_length=READ_IDS_MAX)


class MarkAllRead(_Action):
    action: Literal["mark_all_read"]
    up_to_seq: Seq | None = None


class MarkSeen(_Action):
    """Everything of the user up to ``up_to_seq`` is seen: the badge (unseen) goes down."""

    action: Literal["mark_seen"]
    up_to_seq: Seq


Ids = Annotated[list[uuid.UUID], Field(min_length=1, max_length=READ_IDS_MAX)]


class Archive(_Action):
    """Archive the notifications named by ``ids``, or with ``all_read`` every read one (up to
    ``up_to_seq`` when given)."""

    action: Literal["archive"]
    ids: list[uuid.UUID] | None = Field(default=None, max_length=READ_IDS_MAX)
    all_read: StrictBool = False
    up_to_seq: Seq | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all_read == bool(self.ids):
            raise ValueError('give either "ids": [...] or "all_read": true')
        if self.up_to_seq is not None and not self.all_read:
            raise ValueError('up_to_seq goes with "all_read": true')
        return self


class Unarchive(_Action):
    action: Literal["unarchive"]
    ids: Ids


Action = Annotated[
    Ping
    | Subscribe
    | Unsubscribe
    | Message
    | MarkRead
    | MarkAllRead
    | MarkSeen
    | Archive
    | Unarchive,
    Field(discriminator="action"),
]
# The actions that change the user's state through an event of the log.
StateAction = MarkRead | MarkAllRead | MarkSeen | Archive | Unarchive
ClientAction = Ping | Subscribe | Unsubscribe | Message | StateAction
_ACTION = TypeAdapter(Action)
ACTIONS = (
    "ping",
    "subscribe",
    "unsubscribe",
    "message",
    "mark_read",
    "mark_all_read",
    "mark_seen",
    "archive",
    "unarchive",
)


class BadFrame(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_action(raw: str | bytes) -> ClientAction:
    """Parse one client frame, or raise BadFrame with a code and a readable message."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadFrame("invalid_json", "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise BadFrame("invalid_frame", "frame must be a JSON object")
    action = frame.get("action")
    if action not in ACTIONS:
        raise BadFrame("unknown_action", f"unknown action {action!r}; expected one of {ACTIONS}")
    try:
        parsed = _ACTION.validate_python(frame)
    except ValidationError as exc:
        code = "invalid_room" if _names_room(exc) else "invalid_frame"
        # Locations start with the action's name (the union's tag); the field is what matters.
        raise BadFrame(code, describe(exc).replace(f"{action}.", "")) from None
    if isinstance(parsed, Message):
        try:
            json_object(parsed.data)
        except DataTooLarge as exc:
            raise BadFrame("frame_too_large", f"data {exc}") from None
        except ValueError as exc:
            raise BadFrame("invalid_frame", f"data {exc}") from None
    return parsed


def _names_room(error: ValidationError) -> bool:
    return any("room" in (str(p) for p in item["loc"]) for item in error.errors())
