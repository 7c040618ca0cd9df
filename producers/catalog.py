"""The notification catalog (DESIGN.md section 3): every type, its category, its default
priority, the typed shape of its ``data`` and the title and message it gets when the producer
gives none.

This module is the one definition of the catalog; the envelope, the SDK and the dispatcher all
read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer

# Money travels as a JSON number; amounts are validated as Decimal so that "12.50" and 12.5
# are both accepted and never pass through binary floating point on the way in.
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


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


class EventData(BaseModel):
    """Base of every type's ``data``: the listed fields are typed, extra fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)


class BookingCreated(EventData):
    booking_id: str
    tour_name: str
    tour_date: date
    total_amount: Amount


class BookingConfirmed(EventData):
    booking_id: str
    tour_name: str
    confirmation_code: str | None = None


class BookingCancelled(EventData):
    booking_id: str
    tour_name: str
    reason: str | None = None


class PaymentReceived(EventData):
    booking_id: str
    amount: Amount
    payment_method: str


class PaymentFailed(EventData):
    booking_id: str
    amount: Amount
    reason: str | None = None


class RefundProcessed(EventData):
    booking_id: str
    amount: Amount


class TourStartingSoon(EventData):
    booking_id: str
    tour_name: str
    start_time: AwareDatetime
    meeting_point: str


class TourStarted(EventData):
    booking_id: str
    tour_name: str


class TourCompleted(EventData):
    booking_id: str
    tour_name: str


class NewCommission(EventData):
    booking_id: str
    commission_amount: Amount
    tier: str


class TierUpgraded(EventData):
    old_tier: str
    new_tier: str


class ChatMessage(EventData):
    conversation_id: str
    sender_id: str
    preview: str


class ChatRead(EventData):
    conversation_id: str
    reader_id: str


class SystemAlert(EventData):
    """Free-form: any fields."""


class MaintenanceScheduled(EventData):
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None


class AgentResponse(EventData):
    agent_name: str
    response: Any
    execution_time_ms: float


class WorkflowCompleted(EventData):
    workflow_id: str
    status: str


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _with_reason(text: str, reason: str | None) -> str:
    return f"{text}: {reason}" if reason else text


def _preview(value: Any, limit: int = 140) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    notification_type: NotificationType
    category: Category
    priority: Priority
    data_model: type[EventData]
    title: Callable[[Any], str]
    message: Callable[[Any], str]

    def parse_data(self, data: dict[str, Any]) -> EventData:
        return self.data_model.model_validate(data)


def _entry(
    type_: NotificationType,
    category: Category,
    priority: Priority,
    model: type[EventData],
    title: Callable[[Any], str],
    message: Callable[[Any], str],
) -> CatalogEntry:
    return CatalogEntry(type_, category, priority, model, title, message)


T, C, P = NotificationType, Category, Priority

CATALOG: dict[NotificationType, CatalogEntry] = {
    e.notification_type: e
    for e in (
        _entry(T.BOOKING_CREATED, C.BOOKING, P.MEDIUM, BookingCreated,
               lambda d: "Booking Created",
               lambda d: f"Your booking for '{d.tour_name}' on {d.tour_date.isoformat()} "
                         f"has been created"),
        _entry(T.BOOKING_CONFIRMED, C.BOOKING, P.HIGH, BookingConfirmed,
               lambda d: "Booking Confirmed!",
               lambda d: f"Your booking for '{d.tour_name}' is confirmed"),
        _entry(T.BOOKING_CANCELLED, C.BOOKING, P.HIGH, BookingCancelled,
               lambda d: "Booking Cancelled",
               lambda d: _with_reason(f"Your booking for '{d.tour_name}' has been cancelled",
                                      d.reason)),
        _entry(T.PAYMENT_RECEIVED, C.PAYMENT, P.HIGH, PaymentReceived,
               lambda d: "Payment Received",
               lambda d: f"We received your payment of {_money(d.amount)} "
                         f"by {d.payment_method}"),
        _entry(T.PAYMENT_FAILED, C.PAYMENT, P.URGENT, PaymentFailed,
               lambda d: "Payment Failed",
               lambda d: _with_reason(f"Your payment of {_money(d.amount)} for booking "
                                      f"{d.booking_id} failed", d.reason)),
        _entry(T.REFUND_PROCESSED, C.PAYMENT, P.HIGH, RefundProcessed,
               lambda d: "Refund Processed",
               lambda d: f"Your refund of {_money(d.amount)} for booking {d.booking_id} "
                         f"has been processed"),
        _entry(T.TOUR_STARTING_SOON, C.TOUR, P.URGENT, TourStartingSoon,
               lambda d: "Tour Starting Soon",
               lambda d: f"'{d.tour_name}' starts at {_when(d.start_time)}. "
                         f"Meeting point: {d.meeting_point}"),
        _entry(T.TOUR_STARTED, C.TOUR, P.HIGH, TourStarted,
               lambda d: "Tour Started",
               lambda d: f"'{d.tour_name}' has started. Enjoy!"),
        _entry(T.TOUR_COMPLETED, C.TOUR, P.MEDIUM, TourCompleted,
               lambda d: "Tour Completed",
               lambda d: f"Thank you for joining '{d.tour_name}'"),
        _entry(T.NEW_COMMISSION, C.AGENT, P.HIGH, NewCommission,
               lambda d: "New Commission Earned",
               lambda d: f"You earned {_money(d.commission_amount)} on booking "
                         f"{d.booking_id} ({d.tier} tier)"),
        _entry(T.TIER_UPGRADED, C.AGENT, P.HIGH, TierUpgraded,
               lambda d: "Tier Upgraded!",
               lambda d: f"Congratulations! You moved from {d.old_tier} to {d.new_tier}"),
        _entry(T.CHAT_MESSAGE, C.CHAT, P.MEDIUM, ChatMessage,
               lambda d: "New Message",
               lambda d: _preview(d.preview)),
        _entry(T.CHAT_READ, C.CHAT, P.LOW, ChatRead,
               lambda d: "Message Read",
               lambda d: "Your message has been read"),
        _entry(T.SYSTEM_ALERT, C.SYSTEM, P.HIGH, SystemAlert,
               lambda d: "System Alert",
               lambda d: "System alert"),
        _entry(T.MAINTENANCE_SCHEDULED, C.SYSTEM, P.HIGH, MaintenanceScheduled,
               lambda d: "Maintenance Scheduled",
               lambda d: f"Scheduled maintenance from {_when(d.starts_at)}"
                         + (f" to {_when(d.ends_at)}" if d.ends_at else "")),
        _entry(T.AGENT_RESPONSE, C.AI_AGENT, P.MEDIUM, AgentResponse,
               lambda d: f"{d.agent_name} responded",
               lambda d: _preview(d.response)),
        _entry(T.WORKFLOW_COMPLETED, C.AI_AGENT, P.MEDIUM, WorkflowCompleted,
               lambda d: "Workflow Completed",
               lambda d: f"Workflow {d.workflow_id} finished: {d.status}"),
    )
}  # fmt: skip
