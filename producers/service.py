"""``NotificationService``: the seed's typed API for domain services.

Each method builds an event and validates it before anything is sent, so a wrong field raises
a pydantic ValidationError naming it; then it publishes the event with a broker confirm and
returns its event_id. Every method takes the optional keyword arguments of ``Options`` to
override the catalog's defaults (title, message, priority, action_url) or to fix the event_id
(to make a retry of the caller idempotent).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

from producers.catalog import CATALOG, NotificationType, Priority
from producers.envelope import SCHEMA_VERSION, Envelope, new_event_id
from producers.messages import event_fields
from producers.publisher import Publisher
from producers.settings import Settings

Money = Decimal | float | int | str
When = datetime | str


class Options(TypedDict, total=False):
    title: str
    message: str
    priority: Priority | str
    action_url: str | None
    occurred_at: datetime
    event_id: uuid.UUID


def _given(data: dict[str, Any]) -> dict[str, Any]:
    """The data without the optional fields the caller left out (None), as a producer writing
    the JSON by hand would omit them."""
    return {key: value for key, value in data.items() if value is not None}


def _booking_url(booking_id: str) -> str:
    return f"/bookings/{quote(booking_id, safe='')}"


class NotificationService:
    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        producer: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.publisher = publisher or Publisher(settings)
        self.producer = producer

    def build(
        self,
        notification_type: NotificationType | str,
        *,
        user_id: str | None = None,
        room: str | None = None,
        broadcast: bool = False,
        data: Mapping[str, Any] | None = None,
        title: str | None = None,
        message: str | None = None,
        priority: Priority | str | None = None,
        action_url: str | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope:
        """A validated envelope; raises pydantic.ValidationError naming the bad field."""
        data = dict(data or {})
        if notification_type in CATALOG:
            # Validated on its own first, so that an error names the data field itself
            # (``tour_date``) under the type's model (``BookingCreated``).
            CATALOG[NotificationType(notification_type)].parse_data(data)
        return Envelope.model_validate(
            {
                "event_id": event_id or new_event_id(),
                "schema_version": SCHEMA_VERSION,
                "notification_type": notification_type,
                "priority": priority,
                "user_id": user_id,
                "room": room,
                "broadcast": broadcast,
                "title": title,
                "message": message,
                "data": data,
                "action_url": action_url,
                "occurred_at": occurred_at,
                "producer": self.producer,
            }
        )

    async def notify(self, notification_type: NotificationType | str, **fields: Any) -> uuid.UUID:
        """Build and publish one notification of any catalog type; return its event_id."""
        envelope = await self.publisher.publish(self.build(notification_type, **fields))
        return envelope.event_id

    async def publish_many(self, envelopes: Iterable[Envelope]) -> list[uuid.UUID]:
        """Publish built envelopes as one batch; return their event_ids once all are confirmed."""
        return [e.event_id for e in await self.publisher.publish_many(list(envelopes))]

    async def _to_user(
        self,
        notification_type: NotificationType,
        user_id: str,
        data: dict[str, Any],
        options: Options,
        action_url: str | None = None,
    ) -> uuid.UUID:
        fields: dict[str, Any] = {"action_url": action_url, **options}
        return await self.notify(notification_type, user_id=user_id, data=_given(data), **fields)

    # Booking

    async def notify_booking_created(
        self, user_id: str, booking_id: str, tour_name: str, tour_date: date | str,
        total_amount: Money, **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "tour_name": tour_name, "tour_date": tour_date,
                "total_amount": total_amount}  # fmt: skip
        return await self._to_user(
            NotificationType.BOOKING_CREATED, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_booking_confirmed(
        self, user_id: str, booking_id: str, tour_name: str,
        confirmation_code: str | None = None, **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "tour_name": tour_name,
                "confirmation_code": confirmation_code}  # fmt: skip
        return await self._to_user(
            NotificationType.BOOKING_CONFIRMED, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_booking_cancelled(
        self, user_id: str, booking_id: str, tour_name: str, reason: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "tour_name": tour_name, "reason": reason}
        return await self._to_user(
            NotificationType.BOOKING_CANCELLED, user_id, data, options, _booking_url(booking_id)
        )

    # Payment

    async def notify_payment_received(
        self, user_id: str, booking_id: str, amount: Money, payment_method: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "amount": amount, "payment_method": payment_method}
        return await self._to_user(
            NotificationType.PAYMENT_RECEIVED, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_payment_failed(
        self, user_id: str, booking_id: str, amount: Money, reason: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "amount": amount, "reason": reason}
        return await self._to_user(
            NotificationType.PAYMENT_FAILED, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_refund_processed(
        self, user_id: str, booking_id: str, amount: Money, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"booking_id": booking_id, "amount": amount}
        return await self._to_user(
            NotificationType.REFUND_PROCESSED, user_id, data, options, _booking_url(booking_id)
        )

    # Tour

    async def notify_tour_starting_soon(
        self, user_id: str, booking_id: str, tour_name: str, start_time: When,
        meeting_point: str, **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "tour_name": tour_name, "start_time": start_time,
                "meeting_point": meeting_point}  # fmt: skip
        return await self._to_user(
            NotificationType.TOUR_STARTING_SOON, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_tour_started(
        self, user_id: str, booking_id: str, tour_name: str, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"booking_id": booking_id, "tour_name": tour_name}
        return await self._to_user(
            NotificationType.TOUR_STARTED, user_id, data, options, _booking_url(booking_id)
        )

    async def notify_tour_completed(
        self, user_id: str, booking_id: str, tour_name: str, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"booking_id": booking_id, "tour_name": tour_name}
        return await self._to_user(
            NotificationType.TOUR_COMPLETED, user_id, data, options, _booking_url(booking_id)
        )

    # Agent

    async def notify_new_commission(
        self, agent_id: str, booking_id: str, commission_amount: Money, tier: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"booking_id": booking_id, "commission_amount": commission_amount, "tier": tier}
        return await self._to_user(NotificationType.NEW_COMMISSION, agent_id, data, options)

    async def notify_tier_upgraded(
        self, agent_id: str, old_tier: str, new_tier: str, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"old_tier": old_tier, "new_tier": new_tier}
        return await self._to_user(NotificationType.TIER_UPGRADED, agent_id, data, options)

    # Chat

    async def notify_chat_message(
        self, user_id: str, conversation_id: str, sender_id: str, preview: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        data = {"conversation_id": conversation_id, "sender_id": sender_id, "preview": preview}
        url = f"/conversations/{quote(conversation_id, safe='')}"
        return await self._to_user(NotificationType.CHAT_MESSAGE, user_id, data, options, url)

    async def notify_chat_read(
        self, user_id: str, conversation_id: str, reader_id: str, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"conversation_id": conversation_id, "reader_id": reader_id}
        return await self._to_user(NotificationType.CHAT_READ, user_id, data, options)

    # System

    async def broadcast_system_message(
        self, title: str, message: str, priority: Priority | str = Priority.HIGH,
        *, data: Mapping[str, Any] | None = None, action_url: str | None = None,
    ) -> uuid.UUID:  # fmt: skip
        """A ``system_alert`` to everybody."""
        return await self.notify(
            NotificationType.SYSTEM_ALERT, broadcast=True, title=title, message=message,
            priority=priority, data=data, action_url=action_url,
        )  # fmt: skip

    async def notify_maintenance_scheduled(
        self, starts_at: When, ends_at: When | None = None, *, room: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        """To everybody, or to one room (the users of one product, say)."""
        audience: dict[str, Any] = {"room": room} if room else {"broadcast": True}
        data = _given({"starts_at": starts_at, "ends_at": ends_at})
        fields: dict[str, Any] = {**audience, **options}
        return await self.notify(NotificationType.MAINTENANCE_SCHEDULED, data=data, **fields)

    # AI agents

    async def notify_agent_response(
        self, user_id: str, agent_name: str, response: Any, execution_time: float,
        **options: Unpack[Options],
    ) -> uuid.UUID:  # fmt: skip
        """``execution_time`` is in milliseconds, as the seed's ``execution_time_ms``."""
        data = {"agent_name": agent_name, "response": response,
                "execution_time_ms": execution_time}  # fmt: skip
        return await self._to_user(NotificationType.AGENT_RESPONSE, user_id, data, options)

    async def notify_workflow_completed(
        self, user_id: str, workflow_id: str, status: str, **options: Unpack[Options]
    ) -> uuid.UUID:
        data = {"workflow_id": workflow_id, "status": status}
        return await self._to_user(NotificationType.WORKFLOW_COMPLETED, user_id, data, options)

    # The seed's connection-manager calls, which here publish events (producers.messages)

    async def send_personal_message(self, message: Mapping[str, Any], user_id: str) -> uuid.UUID:
        return await self.notify(user_id=user_id, **event_fields(message))

    async def broadcast(self, message: Mapping[str, Any]) -> uuid.UUID:
        return await self.notify(broadcast=True, **event_fields(message))

    async def broadcast_to_room(self, message: Mapping[str, Any], room: str) -> uuid.UUID:
        return await self.notify(room=room, **event_fields(message))

    async def close(self) -> None:
        await self.publisher.close()
