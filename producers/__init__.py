"""Producer SDK and the shared wire contract of the notification pipeline.

``from producers import notification_service`` gives a service configured from the
environment that connects on first use (creating it opens nothing). ``producers.outbox`` is
the transactional outbox; docs/events.md describes the whole contract.
"""

from producers.catalog import CATALOG, Category, NotificationPriority, NotificationType, Priority
from producers.envelope import Envelope, EnvelopeError, parse_envelope
from producers.errors import NotifyError, PublishError
from producers.publisher import Publisher, PublishTimeout
from producers.service import NotificationService

notification_service = NotificationService()

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
