"""The edge's settings: the shared ones (``producers.settings.Settings``) and those of the
WebSocket edge alone, each read from the environment variable of its own name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from producers.preferences import parse_critical_types
from producers.settings import Settings, estimated_entropy_bits

SECRET_MIN_LENGTH = 32
# An estimate from the secret's own character frequencies: 40 times "a" has none; 32 random
# hex digits (128 bits) come out between 95 and 125.
SECRET_MIN_ENTROPY_BITS = 80
WELL_KNOWN_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", "dev", "test"}


class EdgeSettings(Settings):
    websocket_enabled: bool = True
    websocket_max_connections: int = Field(default=10_000, ge=1)
    websocket_heartbeat_interval: float = Field(default=30.0, gt=0)
    websocket_send_buffer: int = Field(
        default=512 * 1024,
        ge=1024,
        description="bytes queued for one socket before it counts as a slow consumer",
    )
    edge_report_interval: float = Field(
        default=2.0, gt=0, description="seconds between an edge's reports to the others"
    )
    replay_limit: int = Field(default=500, ge=1)
    edge_database_connections: int = Field(
        default=10,
        ge=1,
        le=1_000,
        description="PostgreSQL connections an edge process keeps for replays and REST calls",
    )
    edge_key_linger: float = Field(
        default=30.0,
        ge=0,
        description="seconds a user's or room's binding outlives its last local socket, for "
        "a quick return; 0: unbound at once",
    )
    edge_drain_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3_600,
        description="on SIGTERM, the window over which the edge closes its sockets with 1012, "
        "evenly spread, so that their clients reconnect elsewhere a few at a time; 0: all at "
        "once",
    )
    edge_catch_up_limit: int = Field(
        default=20_000,
        ge=1,
        description="deliveries an edge sends itself after a broker blip; past it, its "
        "sockets close with 1012 and their clients replay",
    )

    # The notification types no user preference mutes or holds back for quiet hours
    # (comma-separated catalog types; unset: system_alert,payment_failed; empty: none).
    notify_critical_types: str | None = None

    # Authentication of sockets and REST calls: HS256 with a shared secret, or RS256/ES256
    # with a public key (PEM) or a JWKS file from the identity provider.
    auth_jwt_secret: str | None = None
    auth_jwt_public_key_file: Path | None = None
    auth_jwt_jwks_file: Path | None = None
    auth_jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=list)
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    auth_jwt_max_lifetime: float = Field(
        default=86_400,
        ge=0,
        description="seconds a token may still be valid for when it is presented; 0: no limit",
    )
    # Origins (exact, or glob patterns such as https://*.example.com) allowed to open sockets
    # and call the REST API from a browser; a handshake without Origin is not a browser's.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Limits (docs/security.md, "Limits"; the OWASP WebSocket cheat sheet).
    websocket_max_connections_per_user: int = Field(default=10, ge=1)
    websocket_handshakes_per_second: float = Field(
        default=10.0, gt=0, description="per client address, with a burst of twice as many"
    )
    websocket_max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    websocket_client_frames_per_second: float = Field(
        default=20.0, gt=0, description="per socket, with a burst of twice as many"
    )
    websocket_max_rooms: int = Field(default=50, ge=1)
    websocket_compression: bool = Field(
        default=False, description="permessage-deflate; capped by websocket_max_frame_bytes"
    )
    http_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="largest REST request body; larger ones are refused with 413 unread",
    )
    http_request_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds a client has to send a whole request (a handshake: its head)",
    )
    # Addresses (or CIDR networks) of the reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed. None by default: the client address is the TCP peer.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The interactive API docs (/docs, /redoc, /openapi.json) describe the admin endpoints too;
    # off unless asked for (`notify up --dev` turns them on).
    api_docs: bool = False
    # Development mode (`notify up --dev`): the edge also serves the demo inbox at /demo and
    # mints a token for any user at /demo/token. Never in production.
    dev_mode: bool = False

    @field_validator("auth_jwt_algorithms", "allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _no_weak_secret(cls, value: str | None) -> str | None:
        if not value:  # unset, or set to nothing
            return None
        if (
            len(value) < SECRET_MIN_LENGTH
            or value.lower() in WELL_KNOWN_SECRETS
            or value in (value + value)[1:-1]  # a shorter string repeated
            or estimated_entropy_bits(value) < SECRET_MIN_ENTROPY_BITS
        ):
            raise ValueError(
                f"must be at least {SECRET_MIN_LENGTH} characters of random data, such as "
                "the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("notify_critical_types")
    @classmethod
    def _known_types(cls, value: str | None) -> str | None:
        parse_critical_types(value)  # an unknown type stops the process at start
        return value

    @property
    def critical_types(self) -> frozenset[str]:
        return parse_critical_types(self.notify_critical_types)

    @property
    def auth_configured(self) -> bool:
        return bool(
            self.auth_jwt_secret or self.auth_jwt_public_key_file or self.auth_jwt_jwks_file
        )


@lru_cache(maxsize=1)
def get_edge_settings() -> EdgeSettings:
    """The edge process's settings, read once from the environment."""
    return EdgeSettings()
