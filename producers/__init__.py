"""Producer SDK and the shared wire contract of the notification pipeline.

``from producers import notification_service`` gives a service configured from the
environment that connects on first use.
"""

from producers.catalog import CATALOG, Category, NotificationType, Priority
from producers.envelope import Envelope, EnvelopeError, parse_envelope
from producers.errors import NotifyError
from producers.publisher import Publisher
from producers.service import NotificationService

notification_service = NotificationService()

__all__ = [
    "CATALOG",
    "Category",
    "Envelope",
    "EnvelopeError",
    "NotificationService",
    "NotificationType",
    "NotifyError",
    "Priority",
    "Publisher",
    "notification_service",
    "parse_envelope",
]
