"""Token verification and the policy on its claims."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from producers.errors import ConfigurationError
from producers.settings import Settings
from socket_edge.auth import Authenticator, AuthError, mint, new_secret, token_from

SECRET = new_secret()


def authenticator(**settings: object) -> Authenticator:
    return Authenticator(Settings(**settings))  # type: ignore[arg-type]


def test_a_valid_token_gives_the_user_its_rooms_and_role() -> None:
    principal = authenticator(auth_jwt_secret=SECRET).verify(
        mint(SECRET, "alice", rooms=["tour_*", "agency_1"], admin=True)
    )
    assert principal.user_id == "alice" and principal.admin
    assert principal.may_join("tour_456") and principal.may_join("agency_1")
    assert not principal.may_join("agency_2")
    assert principal.may_act_for("bob")  # an admin may


def test_without_a_key_the_edge_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="notify up --dev"):
        authenticator()


@pytest.mark.parametrize("secret", ["changeme", "short", "x" * 31])
def test_placeholder_and_short_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="32 characters"):
        Settings(auth_jwt_secret=secret)


def test_unsigned_and_foreign_tokens_are_refused() -> None:
    auth = authenticator(auth_jwt_secret=SECRET)
    claims = {"sub": "alice", "exp": int(time.time()) + 60}
    for token in (
        jwt.encode(claims, "", algorithm="none"),
        jwt.encode(claims, "y" * 48, algorithm="HS256"),
        jwt.encode(claims, SECRET, algorithm="HS512"),
        "not.a.token",
    ):
        with pytest.raises(AuthError) as refused:
            auth.verify(token)
        assert refused.value.status == 401


def test_es256_with_a_public_key_file(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(pem)
    auth = authenticator(auth_jwt_public_key_file=key_file)
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, private, algorithm="ES256")
    assert auth.verify(token).user_id == "alice"
    with pytest.raises(AuthError):  # an HS256 token signed with the public key is no good
        auth.verify(jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, "k" * 40))


def test_the_token_is_found_in_query_header_or_subprotocol() -> None:
    assert token_from({"token": "q"}, {}) == ("q", False)
    assert token_from({}, {"authorization": "Bearer h"}) == ("h", False)
    offered = {"sec-websocket-protocol": "notify.v1, bearer.s.t.u"}
    assert token_from({}, offered) == ("s.t.u", True)
    assert token_from({}, {}) == (None, False)
