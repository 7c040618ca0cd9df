"""Who is calling, and what they may do: JWT verification and the policy on its claims.

Tokens are JWTs (docs/security.md): ``sub`` is the user id, ``exp`` is required, ``rooms``
lists the room names or glob patterns the user may join, and ``role: admin`` opens the admin
API. HS256 uses AUTH_JWT_SECRET; RS256/ES256 use a PEM public key or a JWKS file. Only the
configured algorithms are accepted, so an unsigned token (``alg: none``) never is.

A token may come from the ``token`` query parameter, an ``Authorization: Bearer`` header, or,
for browsers that cannot set headers on a WebSocket, the ``Sec-WebSocket-Protocol`` header as
a ``bearer.<token>`` entry beside ``notify.v1``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import PyJWKSet

from producers.errors import ConfigurationError
from socket_edge.settings import EdgeSettings

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


TOKEN_MAX = 8192  # characters; a real access token is a few hundred


def _algorithms_of(key: Any) -> frozenset[str]:
    """The JWS algorithms a key of this type can verify: a token whose header names another
    one is refused before any verification is attempted."""
    if isinstance(key, str | bytes):
        return frozenset({"HS256", "HS384", "HS512"})
    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        algorithm = by_curve.get(key.curve.name)
        return frozenset({algorithm} if algorithm else ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


@dataclass(frozen=True, slots=True)
class _Key:
    key: Any
    key_id: str | None
    algorithms: frozenset[str]


class Authenticator:
    """Verifies tokens. Every way a token can be wrong (not a JWT, a header naming an
    algorithm its key cannot verify, a bad signature, a missing, expired or over-long lifetime,
    a malformed claim) ends in one place: ``AuthError`` with status 401."""

    def __init__(self, settings: EdgeSettings) -> None:
        if not settings.auth_configured:
            raise ConfigurationError(
                "no AUTH_JWT_SECRET (or AUTH_JWT_PUBLIC_KEY_FILE / AUTH_JWT_JWKS_FILE) is set: "
                "the edge will not serve sockets without authentication. Set one, or run "
                "`notify up --dev` for a local demo with a generated secret."
            )
        self._audience = settings.auth_jwt_audience
        self._issuer = settings.auth_jwt_issuer
        self._max_lifetime = settings.auth_jwt_max_lifetime
        if settings.auth_jwt_jwks_file is not None:
            jwks = PyJWKSet.from_json(settings.auth_jwt_jwks_file.read_text())
            candidates = [(k.key, k.key_id) for k in jwks.keys]
            default = ["RS256", "ES256"]
            source = "AUTH_JWT_JWKS_FILE"
        elif settings.auth_jwt_public_key_file is not None:
            pem = settings.auth_jwt_public_key_file.read_bytes()
            try:
                public_key = serialization.load_pem_public_key(pem)
            except ValueError as exc:
                raise ConfigurationError(
                    f"AUTH_JWT_PUBLIC_KEY_FILE is not a PEM public key: {exc}"
                ) from None
            candidates = [(public_key, None)]
            default = ["RS256", "ES256"]
            source = "AUTH_JWT_PUBLIC_KEY_FILE"
        else:
            candidates = [(settings.auth_jwt_secret, None)]
            default = ["HS256"]
            source = "AUTH_JWT_SECRET"
        configured = settings.auth_jwt_algorithms or default
        if "none" in (a.lower() for a in configured):
            raise ConfigurationError("AUTH_JWT_ALGORITHMS must not allow unsigned tokens")
        self._keys = [
            _Key(key, key_id, _algorithms_of(key) & frozenset(configured))
            for key, key_id in candidates
        ]
        self._keys = [k for k in self._keys if k.algorithms]
        if not self._keys:
            raise ConfigurationError(
                f"no key of {source} can verify the algorithms {', '.join(configured)}: "
                "set AUTH_JWT_ALGORITHMS to those of the key"
            )

    def _key_for(self, header: Mapping[str, Any]) -> _Key:
        """The key that verifies a token with this header: its ``kid`` (when the JWKS has
        several keys) and an algorithm that key can verify."""
        algorithm, kid = header.get("alg"), header.get("kid")
        for key in self._keys:
            if kid is not None and key.key_id is not None and key.key_id != kid:
                continue
            if algorithm in key.algorithms:
                return key
        raise unauthenticated(
            "invalid_token", "the token is not valid: no configured key for its alg and kid"
        )

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise unauthenticated(
                "missing_token", "a token is required (query, header or subprotocol)"
            )
        if len(token) > TOKEN_MAX:
            raise unauthenticated("invalid_token", f"the token is longer than {TOKEN_MAX}")
        try:
            key = self._key_for(unverified_header(token))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=sorted(key.algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"]},
            )
            principal = principal_from(claims)
        except jwt.ExpiredSignatureError:
            raise unauthenticated("token_expired", "the token has expired") from None
        except jwt.PyJWTError as exc:
            raise unauthenticated("invalid_token", f"the token is not valid: {exc}") from None
        except (TypeError, ValueError, ArithmeticError):
            # A header or claim of a type the verifier did not expect (a number where a
            # string belongs, an exp too large for a timestamp): no token of ours.
            raise unauthenticated("invalid_token", "the token is not valid") from None
        if self._max_lifetime and principal.expires_at - time.time() > self._max_lifetime:
            raise unauthenticated(
                "invalid_token",
                f"the token lives longer than {self._max_lifetime:g} s from now "
                "(AUTH_JWT_MAX_LIFETIME)",
            )
        return principal


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def unverified_header(token: str) -> Mapping[str, Any]:
    """The header of a compact JWS, only to choose the key that verifies it (``jwt.decode``
    then checks the whole token, header included). PyJWT's own reading of it checks every
    character of every segment in Python, which was a tenth of a handshake's CPU."""
    head, dot, _ = token.partition(".")
    if not dot or _SEGMENT.fullmatch(head) is None or len(head) % 4 == 1:
        raise jwt.DecodeError("not a compact JWS")
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, UnicodeDecodeError):
        raise jwt.DecodeError("the header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise jwt.DecodeError("the header is not a JSON object")
    return header


def principal_from(claims: Mapping[str, Any]) -> Principal:
    rooms = claims.get("rooms") or []
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise unauthenticated("invalid_token", "the rooms claim must be a list of strings")
    sub, exp = claims["sub"], claims["exp"]
    if not isinstance(sub, str) or not isinstance(exp, int | float) or isinstance(exp, bool):
        raise unauthenticated("invalid_token", "sub must be a string and exp a number")
    return Principal(
        user_id=sub,
        rooms=tuple(rooms),
        admin=claims.get("role") == ADMIN_ROLE,
        expires_at=float(exp),
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
