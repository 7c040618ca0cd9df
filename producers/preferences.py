"""What each user lets reach them: mutes by category or type, quiet hours in their own time
zone, and the types the operator marks critical, which nothing mutes.

Pure decisions, no I/O. The dispatcher applies them to personal notifications when it routes
them (and a rebuild applies them again from the log, with the same answer, since the moment
it decides at is the time the event was logged); the edge applies them to broadcasts for the
users it holds, and the read queries (``dispatcher.queries``) apply the mutes to broadcasts
in SQL. docs/websocket.md, "Preferences", is the user-facing description.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import datetime, time
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from producers.catalog import CATALOG, Category, NotificationType, Priority

CRITICAL_TYPES_ENV = "NOTIFY_CRITICAL_TYPES"
DEFAULT_CRITICAL_TYPES = (NotificationType.SYSTEM_ALERT, NotificationType.PAYMENT_FAILED)

_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class Suppression(StrEnum):
    """Why a notification was kept from a user's sockets
    (``notification_recipients.suppressed``)."""

    MUTED = "muted"  # stored only: not pushed, not replayed, not counted
    QUIET = "quiet"  # stored and counted, not pushed live; replayed with "quiet": true


def _clock(value: str) -> str:
    if _CLOCK.fullmatch(value) is None:
        raise ValueError("must be a time of day as HH:MM, from 00:00 to 23:59")
    return value


def _zone(value: str) -> str:
    if not zone_exists(value):
        raise ValueError("must be an IANA time zone such as Europe/Berlin")
    return value


@lru_cache(maxsize=1024)  # bounded: the names come from users
def zone_exists(name: str) -> bool:
    if not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


Clock = Annotated[str, AfterValidator(_clock)]
ZoneName = Annotated[str, Field(max_length=64), AfterValidator(_zone)]


class QuietHours(BaseModel):
    """A daily window of local wall-clock time in ``time_zone``; ``start`` after ``end`` crosses
    midnight (22:00-07:00). A DST change moves the window in UTC, never in local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Clock
    end: Clock
    time_zone: ZoneName

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end must differ")
        return self

    def contains(self, moment: datetime) -> bool:
        start, end, zone = _window(self.start, self.end, self.time_zone)
        local = moment.astimezone(zone).time()
        if start < end:
            return start <= local < end
        return local >= start or local < end

    @property
    def key(self) -> tuple[str, str, str]:
        return self.start, self.end, self.time_zone


@lru_cache(maxsize=4096)
def _window(start: str, end: str, zone: str) -> tuple[time, time, ZoneInfo]:
    """A window's bounds and zone, parsed once (an edge decides every broadcast for each of its
    users with quiet hours)."""
    return time.fromisoformat(start), time.fromisoformat(end), ZoneInfo(zone)


def _unique(values: list[Any]) -> list[Any]:
    return sorted(set(values))


class Preferences(BaseModel):
    """One user's preferences, replaced whole by each ``notification.preferences`` event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    muted_categories: Annotated[list[Category], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=len(Category)
    )
    muted_types: Annotated[list[NotificationType], AfterValidator(_unique)] = Field(
        default_factory=list, max_length=len(NotificationType)
    )
    quiet_hours: QuietHours | None = None

    def check_critical(self, critical: Iterable[str]) -> None:
        """Raise ValueError if a critical type is muted by name (its category may be muted:
        the critical type still comes)."""
        locked = sorted(set(critical) & {t.value for t in self.muted_types})
        if locked:
            raise ValueError(
                f"muted_types: {', '.join(locked)} cannot be muted: the operator marks them "
                "critical"
            )

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def key(self) -> tuple[object, ...]:
        """Equal for equal preferences, and hashable: users with the same preferences share
        one decision per notification."""
        quiet = None if self.quiet_hours is None else self.quiet_hours.key
        return tuple(self.muted_categories), tuple(self.muted_types), quiet


NO_PREFERENCES = Preferences()


def preferences_of(document: object) -> Preferences:
    """The preferences a projection row holds (``{}`` when the user never set any). A document
    this version cannot read counts as no preferences rather than failing a delivery."""
    if not document:
        return NO_PREFERENCES
    try:
        return Preferences.model_validate(document)
    except ValueError:
        return NO_PREFERENCES


def decide(
    preferences: Preferences,
    notification_type: str,
    category: str,
    priority: str,
    at: datetime,
    critical: frozenset[str],
) -> Suppression | None:
    """Whether ``preferences`` keep a notification from the user's sockets at ``at``: None to
    deliver it. A critical type always comes; a muted category or type is muted; inside quiet
    hours everything but an urgent notification is quiet."""
    if notification_type in critical:
        return None
    if category in preferences.muted_categories or notification_type in preferences.muted_types:
        return Suppression.MUTED
    quiet = preferences.quiet_hours
    if quiet is not None and priority != Priority.URGENT and quiet.contains(at):
        return Suppression.QUIET
    return None


def parse_critical_types(value: str | None) -> frozenset[str]:
    """``NOTIFY_CRITICAL_TYPES``: comma-separated catalog types; unset means the default, and an
    empty value means none. An unknown type is an error (a typo must not unlock a mute)."""
    if value is None:
        return frozenset(t.value for t in DEFAULT_CRITICAL_TYPES)
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in CATALOG]
    if unknown:
        raise ValueError(
            f"{CRITICAL_TYPES_ENV}: unknown notification type(s) {', '.join(sorted(unknown))}"
        )
    return frozenset(names)


def critical_types() -> frozenset[str]:
    """The operator's critical types, from the environment."""
    return parse_critical_types(os.environ.get(CRITICAL_TYPES_ENV))


def catalog_for(critical: frozenset[str]) -> dict[str, Any]:
    """What a preferences screen needs to draw itself: the categories, and each type with its
    category and whether it is locked."""
    return {
        "critical_types": sorted(critical),
        "categories": [c.value for c in Category],
        "types": [
            {"type": t.value, "category": entry.category.value, "critical": t.value in critical}
            for t, entry in CATALOG.items()
        ],
    }
