"""One settings class for every process, read from the environment (DESIGN.md section 6).

Every default works against the services of a local machine with no configuration at all:
PostgreSQL on 127.0.0.1:5432 with trust authentication and RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/notifications"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    amqp_url: str = DEFAULT_AMQP_URL

    websocket_enabled: bool = True
    websocket_max_connections: int = Field(default=10_000, ge=1)
    websocket_heartbeat_interval: float = Field(default=30.0, gt=0)
    websocket_send_buffer: int = Field(
        default=1_000, ge=1, description="frames queued for one socket before it counts as slow"
    )
    replay_limit: int = Field(default=500, ge=1)
    broadcast_unread_window: timedelta = timedelta(days=7)

    auth_jwt_secret: str | None = None
    allowed_origins: list[str] = Field(default_factory=list)

    dispatcher_batch_size: int = Field(default=200, ge=1)
    dispatcher_batch_wait_ms: float = Field(default=10.0, ge=0)
    dispatcher_delivery_limit: int = Field(default=5, ge=1)

    publish_timeout: float = Field(default=10.0, gt=0)

    @field_validator("broadcast_unread_window", mode="before")
    @classmethod
    def _short_duration(cls, value: object) -> object:
        """Accept ``7d``, ``12h``, ``30m``, ``45s`` or plain seconds beside ISO 8601."""
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", value)
            if match:
                unit = {"d": "days", "h": "hours", "m": "minutes"}.get(match[2], "seconds")
                return timedelta(**{unit: float(match[1])})
        return value

    @field_validator("database_url")
    @classmethod
    def _use_asyncpg(cls, value: str) -> str:
        return async_database_url(value)


def async_database_url(url: str) -> str:
    """Accept the usual ``postgresql://`` spelling and select the asyncpg driver."""
    for prefix in (
        "postgresql://",
        "postgres://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
