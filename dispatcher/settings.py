"""The dispatcher's settings: the shared ones (``producers.settings.Settings``) and those of
the dispatcher alone, each read from the environment variable of its own name."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from producers.settings import Settings


class DispatcherSettings(Settings):
    dispatcher_batch_size: int = Field(default=200, ge=1)
    # 0: a batch is what arrived while the previous one was written. Under load batches fill
    # by themselves; waiting for more only adds latency (docs/performance.md, "Dispatcher").
    dispatcher_batch_wait_ms: float = Field(default=0.0, ge=0)
    # The port of the dispatcher's /metrics (Prometheus); 0: not served. Several dispatchers
    # on one machine each need their own.
    dispatcher_metrics_port: int = Field(default=0, ge=0, le=65535)


@lru_cache(maxsize=1)
def get_dispatcher_settings() -> DispatcherSettings:
    """The dispatcher process's settings, read once from the environment."""
    return DispatcherSettings()
