"""The settings every process shares, read from the environment (docs/architecture.md,
"Settings and security"), and the helpers the processes' own settings use.

Every default works against the services of a local machine with no configuration at all:
PostgreSQL on 127.0.0.1:5432 with trust authentication and RabbitMQ on 127.0.0.1:5672.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/notifications"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class Settings(BaseSettings):
    """What the SDK and both processes read. Each process extends it with its own fields
    (``socket_edge.settings.EdgeSettings``, ``dispatcher.settings.DispatcherSettings``); every
    field is read from the environment variable of its own name, without a prefix."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # One broker URL, or the nodes of a cluster as a comma-separated list of URLs with the
    # same user, password and vhost (``amqp_urls``): a process connects to the first that
    # answers and fails over to another when it loses its node (``producers.broker``).
    amqp_url: str = DEFAULT_AMQP_URL

    # The dispatcher's queue is declared by every producer too (so that an event published
    # before any dispatcher ran is kept), with the same arguments the dispatcher declares it with.
    dispatcher_delivery_limit: int = Field(default=5, ge=1)
    # Both processes count unread notifications with it: the dispatcher in the projections
    # and the read syncs it routes, the edge in replays, history and catch-up.
    broadcast_unread_window: timedelta = timedelta(days=7)

    publish_timeout: float = Field(default=10.0, gt=0)

    @field_validator("broadcast_unread_window", mode="before")
    @classmethod
    def _short_duration(cls, value: object) -> object:
        """Accept ``7d``, ``12h``, ``30m``, ``45s`` beside what pydantic reads itself: plain
        seconds and ISO 8601 (``P7D``)."""
        if isinstance(value, str):
            duration = parse_duration(value)
            if duration is not None:
                return duration
        return value

    @field_validator("amqp_url")
    @classmethod
    def _broker_addresses(cls, value: str) -> str:
        amqp_urls(value)  # raises ValueError, which names the variable and the address
        return value

    @field_validator("database_url")
    @classmethod
    def _use_asyncpg(cls, value: str) -> str:
        return async_database_url(value)


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta | None:
    """``90d``, ``12h``, ``30m``, ``45s`` (a count, decimals allowed, and its unit) as a
    timedelta; None for anything else. The one grammar of short durations, for settings and
    command-line options alike."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return timedelta(**{_DURATION_UNITS[match[2]]: float(match[1])})


def estimated_entropy_bits(secret: str) -> float:
    """The secret's length times the Shannon entropy of its characters' frequencies: an upper
    bound on what it holds, low for anything repetitive."""
    counts = Counter(secret)
    total = len(secret)
    return -total * sum(n / total * math.log2(n / total) for n in counts.values())


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


AMQP_SCHEMES = ("amqp", "amqps")


def amqp_urls(value: str) -> list[str]:
    """AMQP_URL's broker addresses, in order: one URL, or several separated by commas.

    Each must be an ``amqp://`` or ``amqps://`` URL with a valid port, and all of them must
    name the same user, password and vhost (they are nodes of one cluster, not different
    brokers). Raises ValueError saying which address is wrong and why."""
    urls = [part.strip() for part in value.split(",")]
    if len(urls) > 1 and not all(urls):
        raise ValueError("an empty address in the comma-separated list")
    first: tuple[str | None, str | None, str] | None = None
    for url in urls:
        shown = redact(url)
        parts = urlsplit(url)
        if parts.scheme not in AMQP_SCHEMES:
            raise ValueError(f"{shown!r} is not an amqp:// or amqps:// URL")
        try:
            parts.port  # noqa: B018 - read for its validation
        except ValueError:
            raise ValueError(f"{shown!r} has an invalid port") from None
        if len(urls) > 1 and not parts.hostname:
            raise ValueError(f"{shown!r} names no host")
        same = (parts.username, parts.password, parts.path.rstrip("/") or "/")
        if first is None:
            first = same
        elif same != first:
            raise ValueError(
                f"{shown!r} differs from the first address in its user, password or vhost: "
                "the addresses must be nodes of one cluster with the same credentials and vhost"
            )
    return urls


def redact(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages; each URL of a
    comma-separated list (AMQP_URL's cluster nodes) alike."""
    if "," in url:
        return ",".join(redact(part) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The shared settings of a producer, read once from the environment."""
    return Settings()
