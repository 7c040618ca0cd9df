"""The dispatcher's settings: the shared ones (``producers.settings.Settings``) and those of
the dispatcher alone, each read from the environment variable of its own name."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator

from producers.preferences import parse_critical_types
from producers.settings import Settings


class DispatcherSettings(Settings):
    dispatcher_batch_size: int = Field(default=200, ge=1)
    # 0: a batch is what arrived while the previous one was written. Under load batches fill
    # by themselves; waiting for more only adds latency (docs/performance.md, "Dispatcher").
    dispatcher_batch_wait_ms: float = Field(default=0.0, ge=0)
    # The port of the dispatcher's /metrics (Prometheus); 0: not served. Several dispatchers
    # on one machine each need their own.
    dispatcher_metrics_port: int = Field(default=0, ge=0, le=65535)
    # The scheduler's poll of notification_schedule for due notifications, at most this often
    # (seconds): a scheduled notification is released at most this long after its time.
    schedule_poll_seconds: float = Field(default=0.25, gt=0, le=60)
    # The notification types no preference mutes nor holds back (comma-separated; unset: the
    # default of producers.preferences, empty: none).
    notify_critical_types: str | None = None

    @field_validator("notify_critical_types")
    @classmethod
    def _known_types(cls, value: str | None) -> str | None:
        parse_critical_types(value)  # a typo must stop the process, not unlock a mute
        return value

    @property
    def critical_types(self) -> frozenset[str]:
        """The operator's critical types (``NOTIFY_CRITICAL_TYPES``)."""
        return parse_critical_types(self.notify_critical_types)


@lru_cache(maxsize=1)
def get_dispatcher_settings() -> DispatcherSettings:
    """The dispatcher process's settings, read once from the environment."""
    return DispatcherSettings()
