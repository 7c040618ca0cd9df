"""The static types of the methods ``NotificationService`` makes from the catalog.

Generated from producers.catalog by ``python -m producers.service --regenerate``: edit the
catalog, not this file."""

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Unpack

from producers.catalog import Priority
from producers.service import Money, Options, When

class CatalogMethods:
    """The methods of the catalog's types, one per type."""

    async def notify_booking_created(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        tour_date: date | str,
        total_amount: Money,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``booking_created`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category booking, default priority medium, data ``BookingCreated`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_booking_confirmed(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        confirmation_code: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``booking_confirmed`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category booking, default priority high, data ``BookingConfirmed`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_booking_cancelled(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        reason: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``booking_cancelled`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category booking, default priority high, data ``BookingCancelled`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_payment_received(
        self,
        user_id: str,
        booking_id: str,
        amount: Money,
        payment_method: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``payment_received`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category payment, default priority high, data ``PaymentReceived`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_payment_failed(
        self,
        user_id: str,
        booking_id: str,
        amount: Money,
        reason: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``payment_failed`` notification to the user ``user_id``; return its event_id
        once the broker has confirmed it.

        Category payment, default priority urgent, data ``PaymentFailed`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_refund_processed(
        self,
        user_id: str,
        booking_id: str,
        amount: Money,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``refund_processed`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category payment, default priority high, data ``RefundProcessed`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_tour_starting_soon(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        start_time: When,
        meeting_point: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``tour_starting_soon`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category tour, default priority urgent, data ``TourStartingSoon`` (producers.catalog).
        It links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_tour_started(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``tour_started`` notification to the user ``user_id``; return its event_id
        once the broker has confirmed it.

        Category tour, default priority high, data ``TourStarted`` (producers.catalog). It links
        to ``/bookings/{booking_id}``. The keyword options title, message, priority, action_url,
        occurred_at and event_id override the catalog's defaults; deliver_at schedules it for
        later.
        """

    async def notify_tour_completed(
        self,
        user_id: str,
        booking_id: str,
        tour_name: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``tour_completed`` notification to the user ``user_id``; return its event_id
        once the broker has confirmed it.

        Category tour, default priority medium, data ``TourCompleted`` (producers.catalog). It
        links to ``/bookings/{booking_id}``. The keyword options title, message, priority,
        action_url, occurred_at and event_id override the catalog's defaults; deliver_at
        schedules it for later.
        """

    async def notify_new_commission(
        self,
        agent_id: str,
        booking_id: str,
        commission_amount: Money,
        tier: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``new_commission`` notification to the agent ``agent_id`` (the agent's user
        id); return its event_id once the broker has confirmed it.

        Category agent, default priority high, data ``NewCommission`` (producers.catalog). The
        keyword options title, message, priority, action_url, occurred_at and event_id override
        the catalog's defaults; deliver_at schedules it for later.
        """

    async def notify_tier_upgraded(
        self,
        agent_id: str,
        old_tier: str,
        new_tier: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``tier_upgraded`` notification to the agent ``agent_id`` (the agent's user
        id); return its event_id once the broker has confirmed it.

        Category agent, default priority high, data ``TierUpgraded`` (producers.catalog). The
        keyword options title, message, priority, action_url, occurred_at and event_id override
        the catalog's defaults; deliver_at schedules it for later.
        """

    async def notify_chat_message(
        self,
        user_id: str,
        conversation_id: str,
        sender_id: str,
        preview: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``chat_message`` notification to the user ``user_id``; return its event_id
        once the broker has confirmed it.

        Category chat, default priority medium, data ``ChatMessage`` (producers.catalog). It
        links to ``/conversations/{conversation_id}``. The keyword options title, message,
        priority, action_url, occurred_at and event_id override the catalog's defaults;
        deliver_at schedules it for later.
        """

    async def notify_chat_read(
        self,
        user_id: str,
        conversation_id: str,
        reader_id: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``chat_read`` notification to the user ``user_id``; return its event_id once
        the broker has confirmed it.

        Category chat, default priority low, data ``ChatRead`` (producers.catalog). The keyword
        options title, message, priority, action_url, occurred_at and event_id override the
        catalog's defaults; deliver_at schedules it for later.
        """

    async def broadcast_system_message(
        self,
        title: str,
        message: str,
        priority: Priority | str = Priority.HIGH,
        *,
        data: Mapping[str, Any] | None = None,
        action_url: str | None = None,
        deliver_at: datetime | None = None,
    ) -> uuid.UUID:
        """Publish one ``system_alert`` notification to everybody; return its event_id once the
        broker has confirmed it.

        Category system, default priority high, data ``SystemAlert`` (producers.catalog). The
        caller writes the title and message; ``data`` is free-form.
        """

    async def notify_maintenance_scheduled(
        self,
        starts_at: When,
        ends_at: When | None = None,
        *,
        room: str | None = None,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``maintenance_scheduled`` notification to the users in ``room``, or to
        everybody without one; return its event_id once the broker has confirmed it.

        Category system, default priority high, data ``MaintenanceScheduled``
        (producers.catalog). The keyword options title, message, priority, action_url,
        occurred_at and event_id override the catalog's defaults; deliver_at schedules it for
        later.
        """

    async def notify_agent_response(
        self,
        user_id: str,
        agent_name: str,
        response: Any,
        execution_time: float,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``agent_response`` notification to the user ``user_id``; return its event_id
        once the broker has confirmed it.

        Category ai_agent, default priority medium, data ``AgentResponse`` (producers.catalog).
        ``execution_time`` is the data's ``execution_time_ms``. The keyword options title,
        message, priority, action_url, occurred_at and event_id override the catalog's defaults;
        deliver_at schedules it for later.
        """

    async def notify_workflow_completed(
        self,
        user_id: str,
        workflow_id: str,
        status: str,
        **options: Unpack[Options],
    ) -> uuid.UUID:
        """Publish one ``workflow_completed`` notification to the user ``user_id``; return its
        event_id once the broker has confirmed it.

        Category ai_agent, default priority medium, data ``WorkflowCompleted``
        (producers.catalog). The keyword options title, message, priority, action_url,
        occurred_at and event_id override the catalog's defaults; deliver_at schedules it for
        later.
        """
