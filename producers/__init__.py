"""Producer SDK and the shared wire contract of the notification pipeline.

``from producers import notification_service`` gives a service configured from the
environment that connects on first use (creating it opens nothing). ``producers.outbox`` is
the transactional outbox; docs/events.md describes the whole contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producers.catalog import CATALOG, Category, NotificationPriority, NotificationType, Priority
from producers.envelope import Envelope, EnvelopeError, parse_envelope
from producers.errors import NotifyError, PublishError

if TYPE_CHECKING:
    from producers.publisher import Publisher, PublishTimeout
    from producers.service import NotificationService

    notification_service: NotificationService

# The publishing side (aio-pika) is imported when first asked for, so that the contract
# (catalog, envelope, settings, topology) imports without the broker client and without side
# effects: ``import producers.settings`` loads no AMQP library and builds no service.
_LAZY = {
    "Publisher": ("producers.publisher", "Publisher"),
    "PublishTimeout": ("producers.publisher", "PublishTimeout"),
    "NotificationService": ("producers.service", "NotificationService"),
}


def __getattr__(name: str) -> Any:
    if name == "notification_service":
        from producers.service import NotificationService

        service = globals()["notification_service"] = NotificationService()
        return service
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'producers' has no attribute {name!r}")


__all__ = [
    "CATALOG",
    "Category",
    "Envelope",
    "EnvelopeError",
    "NotificationPriority",
    "NotificationService",
    "NotificationType",
    "NotifyError",
    "Priority",
    "PublishError",
    "PublishTimeout",
    "Publisher",
    "notification_service",
    "parse_envelope",
]
