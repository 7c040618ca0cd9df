"""Who is calling, and what they may do: JWT verification and the policy on its claims.

Tokens are JWTs (DESIGN.md section 6): ``sub`` is the user id, ``exp`` is required, ``rooms``
lists the room names or glob patterns the user may join, and ``role: admin`` opens the admin
API. HS256 uses AUTH_JWT_SECRET; RS256/ES256 use a PEM public key or a JWKS file. Only the
configured algorithms are accepted, so an unsigned token (``alg: none``) never is.

A token may come from the ``token`` query parameter, an ``Authorization: Bearer`` header, or,
for browsers that cannot set headers on a WebSocket, the ``Sec-WebSocket-Protocol`` header as
a ``bearer.<token>`` entry beside ``notify.v1``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import jwt
from jwt import PyJWKSet

from producers.errors import ConfigurationError
from producers.settings import Settings

SUBPROTOCOL = "notify.v1"
BEARER_SUBPROTOCOL_PREFIX = "bearer."
ADMIN_ROLE = "admin"
LEEWAY_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    rooms: tuple[str, ...]
    admin: bool
    expires_at: float

    def may_join(self, room: str) -> bool:
        return any(fnmatchcase(room, pattern) for pattern in self.rooms)

    def may_act_for(self, user_id: str) -> bool:
        return self.admin or self.user_id == user_id


class AuthError(Exception):
    """A refused call: ``status`` 401 (who are you?) or 403 (not you, not this)."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


def unauthenticated(code: str, reason: str) -> AuthError:
    return AuthError(401, code, reason)


def forbidden(code: str, reason: str) -> AuthError:
    return AuthError(403, code, reason)


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        if not settings.auth_configured:
            raise ConfigurationError(
                "no AUTH_JWT_SECRET (or AUTH_JWT_PUBLIC_KEY_FILE / AUTH_JWT_JWKS_FILE) is set: "
                "the edge will not serve sockets without authentication. Set one, or run "
                "`notify up --dev` for a local demo with a generated secret."
            )
        self._audience = settings.auth_jwt_audience
        self._issuer = settings.auth_jwt_issuer
        self._jwks: PyJWKSet | None = None
        self._key: Any = None
        if settings.auth_jwt_jwks_file is not None:
            self._jwks = PyJWKSet.from_json(settings.auth_jwt_jwks_file.read_text())
            default = ["RS256", "ES256"]
        elif settings.auth_jwt_public_key_file is not None:
            self._key = settings.auth_jwt_public_key_file.read_text()
            default = ["RS256", "ES256"]
        else:
            self._key = settings.auth_jwt_secret
            default = ["HS256"]
        self._algorithms = settings.auth_jwt_algorithms or default
        if "none" in (a.lower() for a in self._algorithms):
            raise ConfigurationError("AUTH_JWT_ALGORITHMS must not allow unsigned tokens")

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise unauthenticated("invalid_token", f"no key {kid!r} in the configured JWKS")

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise unauthenticated(
                "missing_token", "a token is required (query, header or subprotocol)"
            )
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("token_expired", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise unauthenticated("invalid_token", f"the token is not valid: {exc}") from None
        return principal_from(claims)


def principal_from(claims: Mapping[str, Any]) -> Principal:
    rooms = claims.get("rooms") or []
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise unauthenticated("invalid_token", "the rooms claim must be a list of strings")
    return Principal(
        user_id=str(claims["sub"]),
        rooms=tuple(rooms),
        admin=claims.get("role") == ADMIN_ROLE,
        expires_at=float(claims["exp"]),
    )


def token_from(query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[str | None, bool]:
    """The token of a request, and whether it came as a subprotocol (which the server must
    then answer with ``notify.v1``)."""
    if query.get("token"):
        return query["token"], False
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip(), False
    for offered in headers.get("sec-websocket-protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return offered[len(BEARER_SUBPROTOCOL_PREFIX) :], True
    return None, False


def mint(
    secret: str,
    user_id: str,
    *,
    rooms: list[str] | None = None,
    admin: bool = False,
    ttl: float = 3600,
) -> str:
    """An HS256 token for ``user_id``: for demos, tests and `notify token`."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + int(ttl)}
    if rooms:
        claims["rooms"] = rooms
    if admin:
        claims["role"] = ADMIN_ROLE
    return jwt.encode(claims, secret, algorithm="HS256")


def new_secret() -> str:
    return secrets.token_urlsafe(48)
