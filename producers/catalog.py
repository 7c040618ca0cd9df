"""The notification catalog (docs/events.md, "The catalog"): every type, its category, its default
priority, the typed shape of its ``data`` and the title and message it gets when the producer
gives none.

This module is the one definition of the catalog; the envelope, the SDK, the published JSON
Schema and the dispatcher all read it. Each data model renders its own default texts
(``default_title`` / ``default_message``) and carries one example, which the JSON Schema, the
documentation and the tests reuse. Each entry also says who its SDK method sends to and what
link it carries (``SdkMethod``): ``NotificationService`` makes its ``notify_*`` methods from
that, and ``producers/sdk_methods.pyi`` gives them their static types (docs/events.md, "Adding
a type", tells how to regenerate it).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from string import Formatter
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)


def _date_of(value: object) -> object:
    # A booking's tour date often comes from a datetime column; its calendar day is meant.
    return value.date() if isinstance(value, datetime) else value


# Money travels as a JSON number; amounts are validated as Decimal so that "12.50" and 12.5
# are both accepted and never pass through binary floating point on the way in.
Amount = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False, description="a non-negative amount, e.g. 250.00"),
    PlainSerializer(float, return_type=float, when_used="json"),
]
Day = Annotated[date, BeforeValidator(_date_of), Field(description="ISO 8601 date, 2026-02-15")]
Moment = Annotated[AwareDatetime, Field(description="ISO 8601 date-time with a time zone")]
Name = Annotated[str, Field(min_length=1)]


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# The seed's name for the same enum, so code written against it keeps working.
NotificationPriority = Priority


class Category(StrEnum):
    BOOKING = "booking"
    PAYMENT = "payment"
    TOUR = "tour"
    AGENT = "agent"
    CHAT = "chat"
    SYSTEM = "system"
    AI_AGENT = "ai_agent"


class NotificationType(StrEnum):
    BOOKING_CREATED = "booking_created"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_CANCELLED = "booking_cancelled"
    PAYMENT_RECEIVED = "payment_received"
    PAYMENT_FAILED = "payment_failed"
    REFUND_PROCESSED = "refund_processed"
    TOUR_STARTING_SOON = "tour_starting_soon"
    TOUR_STARTED = "tour_started"
    TOUR_COMPLETED = "tour_completed"
    NEW_COMMISSION = "new_commission"
    TIER_UPGRADED = "tier_upgraded"
    CHAT_MESSAGE = "chat_message"
    CHAT_READ = "chat_read"
    SYSTEM_ALERT = "system_alert"
    MAINTENANCE_SCHEDULED = "maintenance_scheduled"
    AGENT_RESPONSE = "agent_response"
    WORKFLOW_COMPLETED = "workflow_completed"


def _example(**fields: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [fields]})


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _with_reason(text: str, reason: str | None) -> str:
    return f"{text}: {reason}" if reason else text


def _preview(value: Any, limit: int = 140) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EventData(BaseModel):
    """Base of every type's ``data``: the listed fields are typed, extra fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @abstractmethod
    def default_title(self) -> str:
        """The title a notification of this type gets when the producer gives none."""

    @abstractmethod
    def default_message(self) -> str:
        """The message a notification of this type gets when the producer gives none."""


class BookingCreated(EventData):
    model_config = _example(
        booking_id="b-1042", tour_name="Jerusalem Day Tour", tour_date="2026-02-15",
        total_amount=250.0,
    )  # fmt: skip
    booking_id: Name
    tour_name: Name
    tour_date: Day
    total_amount: Amount

    def default_title(self) -> str:
        return "Booking Created"

    def default_message(self) -> str:
        day = self.tour_date.isoformat()
        return f"Your booking for '{self.tour_name}' on {day} has been created"


class BookingConfirmed(EventData):
    model_config = _example(
        booking_id="b-1042", tour_name="Jerusalem Day Tour", confirmation_code="JDT-7Q2"
    )
    booking_id: Name
    tour_name: Name
    confirmation_code: str | None = None

    def default_title(self) -> str:
        return "Booking Confirmed!"

    def default_message(self) -> str:
        return f"Your booking for '{self.tour_name}' is confirmed"


class BookingCancelled(EventData):
    model_config = _example(
        booking_id="b-1042", tour_name="Jerusalem Day Tour", reason="cancelled by the customer"
    )
    booking_id: Name
    tour_name: Name
    reason: str | None = None

    def default_title(self) -> str:
        return "Booking Cancelled"

    def default_message(self) -> str:
        return _with_reason(f"Your booking for '{self.tour_name}' has been cancelled", self.reason)


class PaymentReceived(EventData):
    model_config = _example(booking_id="b-1042", amount=250.0, payment_method="Credit Card")
    booking_id: Name
    amount: Amount
    payment_method: Name

    def default_title(self) -> str:
        return "Payment Received"

    def default_message(self) -> str:
        return f"We received your payment of {_money(self.amount)} by {self.payment_method}"


class PaymentFailed(EventData):
    model_config = _example(booking_id="b-1042", amount=250.0, reason="card declined")
    booking_id: Name
    amount: Amount
    reason: str | None = None

    def default_title(self) -> str:
        return "Payment Failed"

    def default_message(self) -> str:
        text = f"Your payment of {_money(self.amount)} for booking {self.booking_id} failed"
        return _with_reason(text, self.reason)


class RefundProcessed(EventData):
    model_config = _example(booking_id="b-1042", amount=250.0)
    booking_id: Name
    amount: Amount

    def default_title(self) -> str:
        return "Refund Processed"

    def default_message(self) -> str:
        amount = _money(self.amount)
        return f"Your refund of {amount} for booking {self.booking_id} has been processed"


class TourStartingSoon(EventData):
    model_config = _example(
        booking_id="b-1042", tour_name="Jerusalem Day Tour",
        start_time="2026-02-15T08:00:00+02:00", meeting_point="Jaffa Gate",
    )  # fmt: skip
    booking_id: Name
    tour_name: Name
    start_time: Moment
    meeting_point: Name

    def default_title(self) -> str:
        return "Tour Starting Soon"

    def default_message(self) -> str:
        return (
            f"'{self.tour_name}' starts at {_when(self.start_time)}. "
            f"Meeting point: {self.meeting_point}"
        )


class TourStarted(EventData):
    model_config = _example(booking_id="b-1042", tour_name="Jerusalem Day Tour")
    booking_id: Name
    tour_name: Name

    def default_title(self) -> str:
        return "Tour Started"

    def default_message(self) -> str:
        return f"'{self.tour_name}' has started. Enjoy!"


class TourCompleted(EventData):
    model_config = _example(booking_id="b-1042", tour_name="Jerusalem Day Tour")
    booking_id: Name
    tour_name: Name

    def default_title(self) -> str:
        return "Tour Completed"

    def default_message(self) -> str:
        return f"Thank you for joining '{self.tour_name}'"


class NewCommission(EventData):
    model_config = _example(booking_id="b-1042", commission_amount=25.0, tier="Gold")
    booking_id: Name
    commission_amount: Amount
    tier: Name

    def default_title(self) -> str:
        return "New Commission Earned"

    def default_message(self) -> str:
        return (
            f"You earned {_money(self.commission_amount)} on booking {self.booking_id} "
            f"({self.tier} tier)"
        )


class TierUpgraded(EventData):
    model_config = _example(old_tier="Silver", new_tier="Gold")
    old_tier: Name
    new_tier: Name

    def default_title(self) -> str:
        return "Tier Upgraded!"

    def default_message(self) -> str:
        return f"Congratulations! You moved from {self.old_tier} to {self.new_tier}"


class ChatMessage(EventData):
    model_config = _example(
        conversation_id="c-77", sender_id="guide-12", preview="See you at Jaffa Gate at 8!"
    )
    conversation_id: Name
    sender_id: Name
    preview: str

    def default_title(self) -> str:
        return "New Message"

    def default_message(self) -> str:
        return _preview(self.preview)


class ChatRead(EventData):
    model_config = _example(conversation_id="c-77", reader_id="guide-12")
    conversation_id: Name
    reader_id: Name

    def default_title(self) -> str:
        return "Message Read"

    def default_message(self) -> str:
        return "Your message has been read"


class SystemAlert(EventData):
    """Free-form: any fields."""

    model_config = _example(component="payments", status="degraded")

    def default_title(self) -> str:
        return "System Alert"

    def default_message(self) -> str:
        return "System alert"


class MaintenanceScheduled(EventData):
    model_config = _example(starts_at="2026-02-16T02:00:00+00:00", ends_at="2026-02-16T03:00:00Z")
    starts_at: Moment
    ends_at: Moment | None = None

    def default_title(self) -> str:
        return "Maintenance Scheduled"

    def default_message(self) -> str:
        until = f" to {_when(self.ends_at)}" if self.ends_at else ""
        return f"Scheduled maintenance from {_when(self.starts_at)}{until}"


class AgentResponse(EventData):
    model_config = _example(
        agent_name="itinerary_planner", response="Day 1: Old City walk; Day 2: Dead Sea",
        execution_time_ms=1840.5,
    )  # fmt: skip
    agent_name: Name
    response: Any = Field(description="any JSON value: the agent's answer")
    execution_time_ms: float = Field(ge=0, allow_inf_nan=False)

    def default_title(self) -> str:
        return f"{self.agent_name} responded"

    def default_message(self) -> str:
        return _preview(self.response)


class WorkflowCompleted(EventData):
    model_config = _example(workflow_id="wf-301", status="succeeded")
    workflow_id: Name
    status: Name

    def default_title(self) -> str:
        return "Workflow Completed"

    def default_message(self) -> str:
        return f"Workflow {self.workflow_id} finished: {self.status}"


class Audience(StrEnum):
    """Who a type's SDK method sends to, and so the parameter that names the recipient."""

    USER = "user_id"
    """One user: the first parameter, ``user_id``."""
    AGENT = "agent_id"
    """One agent, by the agent's user id: the first parameter, ``agent_id``."""
    BROADCAST = "broadcast"
    """Everybody: no recipient parameter."""
    ROOM_OR_BROADCAST = "room"
    """One room if the keyword-only ``room`` is given, else everybody."""


@dataclass(frozen=True, slots=True)
class SdkMethod:
    """What ``NotificationService``'s method for a type needs beside the data model.

    The method is named ``notify_<type>`` unless ``name`` says otherwise. Its parameters are the
    recipient (``audience``), then the data model's fields in their declared order, required
    ones first and optional ones (default None) after; ``parameters`` renames some of them
    (data field -> parameter name). ``action_url`` is a template over the data fields, e.g.
    ``/bookings/{booking_id}``, whose values are URL-quoted.

    An ``announcement`` is written by the caller: its method starts ``(title, message,
    priority=<the type's default priority>)``, takes further data as one keyword ``data``
    mapping, and of the options only ``action_url``.
    """

    audience: Audience
    action_url: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    announcement: bool = False

    def url_fields(self) -> list[str]:
        if self.action_url is None:
            return []
        return [name for _, name, _, _ in Formatter().parse(self.action_url) if name is not None]

    def url_for(self, data: Mapping[str, Any]) -> str | None:
        """The action_url of an event with this data: the template, its values URL-quoted."""
        if self.action_url is None:
            return None
        quoted = {name: quote(str(data[name]), safe="") for name in self.url_fields()}
        return self.action_url.format_map(quoted)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    notification_type: NotificationType
    category: Category
    priority: Priority
    data_model: type[EventData]
    sdk: SdkMethod

    def __post_init__(self) -> None:
        fields = self.data_model.model_fields
        unknown = [
            name for name in (*self.sdk.parameters, *self.sdk.url_fields()) if name not in fields
        ]
        if unknown:
            raise ValueError(
                f"{self.notification_type}: the SDK method names {unknown}, "
                f"which {self.data_model.__name__} does not have"
            )

    @property
    def method_name(self) -> str:
        """The name of ``NotificationService``'s method for this type."""
        return self.sdk.name or f"notify_{self.notification_type}"

    def parse_data(self, data: dict[str, Any]) -> EventData:
        return self.data_model.model_validate(data)

    def title(self, data: EventData) -> str:
        return data.default_title()

    def message(self, data: EventData) -> str:
        return data.default_message()

    @property
    def example_data(self) -> dict[str, Any]:
        extra = self.data_model.model_config.get("json_schema_extra")
        assert isinstance(extra, dict)
        examples = extra["examples"]
        assert isinstance(examples, list)
        example = examples[0]
        assert isinstance(example, dict)
        return dict(example)


T, C, P, A = NotificationType, Category, Priority, Audience

# Who each type's SDK method sends to, and the link its notifications carry.
TO_USER, TO_AGENT = SdkMethod(A.USER), SdkMethod(A.AGENT)
BOOKING_LINK = SdkMethod(A.USER, action_url="/bookings/{booking_id}")
CHAT_LINK = SdkMethod(A.USER, action_url="/conversations/{conversation_id}")
ANNOUNCEMENT = SdkMethod(A.BROADCAST, name="broadcast_system_message", announcement=True)
ROOM_OR_ALL = SdkMethod(A.ROOM_OR_BROADCAST)
AGENT_ANSWER = SdkMethod(A.USER, parameters={"execution_time_ms": "execution_time"})

CATALOG: dict[NotificationType, CatalogEntry] = {
    e.notification_type: e
    for e in (
        CatalogEntry(T.BOOKING_CREATED, C.BOOKING, P.MEDIUM, BookingCreated, BOOKING_LINK),
        CatalogEntry(T.BOOKING_CONFIRMED, C.BOOKING, P.HIGH, BookingConfirmed, BOOKING_LINK),
        CatalogEntry(T.BOOKING_CANCELLED, C.BOOKING, P.HIGH, BookingCancelled, BOOKING_LINK),
        CatalogEntry(T.PAYMENT_RECEIVED, C.PAYMENT, P.HIGH, PaymentReceived, BOOKING_LINK),
        CatalogEntry(T.PAYMENT_FAILED, C.PAYMENT, P.URGENT, PaymentFailed, BOOKING_LINK),
        CatalogEntry(T.REFUND_PROCESSED, C.PAYMENT, P.HIGH, RefundProcessed, BOOKING_LINK),
        CatalogEntry(T.TOUR_STARTING_SOON, C.TOUR, P.URGENT, TourStartingSoon, BOOKING_LINK),
        CatalogEntry(T.TOUR_STARTED, C.TOUR, P.HIGH, TourStarted, BOOKING_LINK),
        CatalogEntry(T.TOUR_COMPLETED, C.TOUR, P.MEDIUM, TourCompleted, BOOKING_LINK),
        CatalogEntry(T.NEW_COMMISSION, C.AGENT, P.HIGH, NewCommission, TO_AGENT),
        CatalogEntry(T.TIER_UPGRADED, C.AGENT, P.HIGH, TierUpgraded, TO_AGENT),
        CatalogEntry(T.CHAT_MESSAGE, C.CHAT, P.MEDIUM, ChatMessage, CHAT_LINK),
        CatalogEntry(T.CHAT_READ, C.CHAT, P.LOW, ChatRead, TO_USER),
        CatalogEntry(T.SYSTEM_ALERT, C.SYSTEM, P.HIGH, SystemAlert, ANNOUNCEMENT),
        CatalogEntry(T.MAINTENANCE_SCHEDULED, C.SYSTEM, P.HIGH, MaintenanceScheduled, ROOM_OR_ALL),
        CatalogEntry(T.AGENT_RESPONSE, C.AI_AGENT, P.MEDIUM, AgentResponse, AGENT_ANSWER),
        CatalogEntry(T.WORKFLOW_COMPLETED, C.AI_AGENT, P.MEDIUM, WorkflowCompleted, TO_USER),
    )
}
