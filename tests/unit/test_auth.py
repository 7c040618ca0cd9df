"""Token verification and the policy on its claims."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from producers.errors import ConfigurationError
from socket_edge.auth import (
    Authenticator,
    AuthError,
    mint,
    new_secret,
    token_from,
    unverified_header,
)
from socket_edge.settings import EdgeSettings

SECRET = new_secret()


def authenticator(**settings: object) -> Authenticator:
    return Authenticator(EdgeSettings(**settings))  # type: ignore[arg-type]


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
        EdgeSettings(auth_jwt_secret=secret)


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


# -- every malformed or confused token is a 401, in every key mode --------------------------

ALGORITHMS = ["HS256", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA", "none", "XX", ""]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_modes(tmp: Path) -> dict[str, Authenticator]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp / "rsa.pem"
    pem.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwks = tmp / "jwks.json"
    jwks.write_text(
        json.dumps(
            {
                "keys": [
                    {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1"},
                    {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1"},
                ]
            }
        )
    )
    return {
        "secret": authenticator(auth_jwt_secret=SECRET),
        "public_key": authenticator(auth_jwt_public_key_file=pem),
        "public_key_any_alg": authenticator(
            auth_jwt_public_key_file=pem, auth_jwt_algorithms="RS256,ES256,HS256,PS256"
        ),
        "jwks": authenticator(auth_jwt_jwks_file=jwks),
    }


@pytest.fixture(scope="module")
def modes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Authenticator]:
    return key_modes(tmp_path_factory.mktemp("keys"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(ALGORITHMS) | json_values},
    optional={"kid": st.sampled_from(["r1", "e1", "zz"]) | json_values, "typ": json_values},
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.just("alice") | json_values,
        "exp": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
        "iat": json_values,
        "nbf": json_values,
        "aud": json_values,
        "rooms": json_values,
    },
)


@settings(max_examples=300, deadline=None, database=None)
@given(header=headers, payload=claims, signature=st.binary(max_size=300))
def test_any_token_is_verified_or_refused_with_401(
    modes: dict[str, Authenticator], header: dict[str, Any], payload: dict[str, Any],
    signature: bytes,
) -> None:  # fmt: skip
    token = ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature))
    )
    for auth in modes.values():
        try:
            auth.verify(token)
        except AuthError as refused:
            assert refused.status == 401 and refused.code in ("invalid_token", "token_expired")


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "PS256", "HS256", "EdDSA"])
def test_a_header_naming_another_algorithm_than_the_keys_is_refused(
    modes: dict[str, Authenticator], algorithm: str
) -> None:
    header = b64(json.dumps({"alg": algorithm, "typ": "JWT", "kid": "r1"}).encode())
    payload = b64(json.dumps({"sub": "alice", "exp": int(time.time()) + 60}).encode())
    token = f"{header}.{payload}.{b64(b'junk' * 16)}"
    for auth in modes.values():
        with pytest.raises(AuthError) as refused:
            auth.verify(token)
        assert (refused.value.status, refused.value.code) == (401, "invalid_token")


def test_a_token_that_lives_too_long_is_refused() -> None:
    auth = authenticator(auth_jwt_secret=SECRET, auth_jwt_max_lifetime=3600)
    assert auth.verify(mint(SECRET, "alice", ttl=3000)).user_id == "alice"
    with pytest.raises(AuthError, match="AUTH_JWT_MAX_LIFETIME"):
        auth.verify(mint(SECRET, "alice", ttl=7200))
    unlimited = authenticator(auth_jwt_secret=SECRET, auth_jwt_max_lifetime=0)
    assert unlimited.verify(mint(SECRET, "alice", ttl=10**9)).user_id == "alice"


def test_a_key_that_cannot_verify_the_configured_algorithms_stops_the_start(
    tmp_path: Path,
) -> None:
    pem = tmp_path / "ec.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="AUTH_JWT_ALGORITHMS"):
        authenticator(auth_jwt_public_key_file=pem, auth_jwt_algorithms="RS256")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


segments = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(_b64),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), st.text(max_size=8)).map(
        lambda d: _b64(json.dumps(d).encode())
    ),
)


@settings(max_examples=400, derandomize=True)
@given(head=segments, rest=st.text(max_size=40))
def test_the_header_read_to_choose_a_key_is_the_one_pyjwt_reads(head: str, rest: str) -> None:
    """Wherever PyJWT reads a header, the edge's own reading (which only chooses the key;
    PyJWT verifies the whole token after) reads the same one; anything else is a DecodeError."""
    token = f"{head}.{rest}"
    try:
        expected: Any = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        expected = None
    try:
        ours: Any = unverified_header(token)
    except jwt.DecodeError:
        ours = None
    if expected is not None:
        assert ours == expected
