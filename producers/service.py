"""``NotificationService``: the seed's typed API for domain services.

Each method builds an envelope (validated before anything is sent, so a wrong field raises a
ValidationError naming it), publishes it with a broker confirm and returns its event_id.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from producers.catalog import NotificationType, Priority
from producers.envelope import SCHEMA_VERSION, Envelope, new_event_id
from producers.publisher import Publisher
from producers.settings import Settings


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
        data: dict[str, Any] | None = None,
        title: str | None = None,
        message: str | None = None,
        priority: Priority | str | None = None,
        action_url: str | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> Envelope:
        """A validated envelope; raises pydantic.ValidationError naming the bad field."""
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
                "data": data or {},
                "action_url": action_url,
                "occurred_at": occurred_at,
                "producer": self.producer,
            }
        )

    async def notify(self, notification_type: NotificationType | str, **fields: Any) -> uuid.UUID:
        """Build and publish one notification of any catalog type; return its event_id."""
        envelope = await self.publisher.publish(self.build(notification_type, **fields))
        return envelope.event_id

    async def notify_booking_created(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        tour_date: date | str,
        total_amount: Decimal | float | str,
        **extra: Any,
    ) -> uuid.UUID:
        return await self.notify(
            NotificationType.BOOKING_CREATED,
            user_id=user_id,
            action_url=f"/bookings/{booking_id}",
            data={
                "booking_id": booking_id,
                "tour_name": tour_name,
                "tour_date": tour_date,
                "total_amount": total_amount,
            },
            **extra,
        )

    async def close(self) -> None:
        await self.publisher.close()
