"""The rules every untrusted input goes through, tried with generated inputs: whatever comes in
is either accepted within its bounds or refused with the module's own error, never anything
else (an exception that would become a 500, a 1011 or a traceback)."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import subprocess
import unicodedata
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.datastructures import QueryParams

from producers.envelope import (
    DATA_MAX_DEPTH,
    SEQ_MAX,
    DataTooLarge,
    Envelope,
    _action_url,
    _plain_text,
    is_identifier,
    json_object,
)
from socket_edge.actions import BadFrame, parse_action
from socket_edge.routes_ws import BadParameter, session_params
from socket_edge.settings import EdgeSettings

EXAMPLES = settings(max_examples=400, deadline=None, database=None)

# Characters that have broken parsers: digits other than ASCII ones, controls of both
# ranges, bidi controls, surrogates, slashes of both kinds, whitespace of several kinds.
TRICKY = "0123456789²٣١߁\x00\t\n\r\x0b\x1f\x7f\x85\x9f\u202e\u2066\u200f\ud800/\\ :@.%-_aZé"
tricky_text = st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40)


@EXAMPLES
@given(
    user_id=tricky_text,
    since=tricky_text | st.integers(min_value=-(2**80), max_value=2**80).map(str),
    label=tricky_text,
)
def test_handshake_parameters_are_accepted_within_bounds_or_named(
    user_id: str, since: str, label: str
) -> None:
    query = QueryParams({"user_id": user_id, "since": since, "device_type": label})
    for path in ("/ws/connect", f"/ws/notifications/{user_id}"):
        try:
            params = session_params(path, query)
        except BadParameter as bad:
            assert str(bad)
            continue
        if params is None:  # a path with a slash in the user id is not ours
            assert "/" in user_id
            continue
        assert is_identifier(params.user_id) and "\n" not in params.user_id
        assert params.since is not None and 0 <= params.since <= SEQ_MAX
        assert since.isascii() and since.isdigit()


def test_a_digit_python_would_not_parse_is_refused_by_name() -> None:
    for since in ("²", "٣", "1²", str(SEQ_MAX + 1), "-1", " 1", "1 "):
        with pytest.raises(BadParameter, match="since must be a seq"):
            session_params("/ws/connect", QueryParams({"user_id": "u", "since": since}))
    with pytest.raises(BadParameter, match="user_id must be"):
        session_params("/ws/connect", QueryParams({"user_id": "alice\n"}))


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from(TRICKY), max_size=10)
)


def nested(depth: int, leaf: object) -> object:
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"k": leaf}
    return leaf


@EXAMPLES
@given(
    action=st.sampled_from(["subscribe", "mark_all_read", "message", "mark_read", "ping"]),
    number=st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(max_size=5),
    depth=st.integers(min_value=0, max_value=400),
    leaf=json_leaves,
)
def test_client_frames_parse_within_bounds_or_raise_bad_frame(
    action: str, number: object, depth: int, leaf: object
) -> None:
    frame: dict[str, Any] = {
        "action": action,
        "room": "r",
        "since": number,
        "up_to_seq": number,
        "data": {"x": nested(depth, leaf)},
        "ids": [],
    }
    fields = {
        "subscribe": ("action", "room", "since"),
        "mark_all_read": ("action", "up_to_seq"),
        "message": ("action", "room", "data"),
        "mark_read": ("action", "ids"),
        "ping": ("action",),
    }[action]
    raw = json.dumps({k: frame[k] for k in fields}, allow_nan=True)
    try:
        parsed = parse_action(raw)
    except BadFrame as bad:
        assert bad.code and bad.message
        return
    for name in ("since", "up_to_seq"):
        value = getattr(parsed, name, None)
        assert value is None or (type(value) is int and 0 <= value <= SEQ_MAX)
    data = getattr(parsed, "data", None)
    if data is not None:
        assert depth + 1 <= DATA_MAX_DEPTH
        orjson.dumps(data)  # what is accepted can be relayed


def test_loose_values_are_not_taken_for_seqs() -> None:
    for since in ('"5"', "5.0", "true", str(2**70), "-1"):
        with pytest.raises(BadFrame):
            parse_action(f'{{"action":"subscribe","room":"r","since":{since}}}')
    assert parse_action('{"action":"subscribe","room":"r","since":5}').since == 5  # type: ignore[union-attr]


@EXAMPLES
@given(depth=st.integers(min_value=1, max_value=300), leaf=json_leaves)
def test_json_objects_are_bounded_in_depth_and_encodable(depth: int, leaf: object) -> None:
    value = {"x": nested(depth - 1, leaf)}
    try:
        json_object(value)
    except DataTooLarge:
        raise AssertionError("a small object is not too large") from None
    except ValueError:
        too_deep = depth > DATA_MAX_DEPTH
        unencodable = isinstance(leaf, int) and not -(2**63) <= leaf < 2**64
        surrogate = isinstance(leaf, str) and any("\ud800" <= c <= "\udfff" for c in leaf)
        assert too_deep or unencodable or surrogate
        return
    assert depth <= DATA_MAX_DEPTH
    orjson.dumps(value)


BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unsafe(char: str) -> bool:
    """Independent of the regular expression: what a title must never hold, by category."""
    category = unicodedata.category(char)
    return (category == "Cc" and char not in "\t\n\r") or category == "Cs" or char in BIDI_CONTROLS


@settings(max_examples=2000, deadline=None, database=None)
@given(text=st.text(alphabet=st.sampled_from(TRICKY), max_size=20) | st.text(max_size=20))
def test_plain_text_is_exactly_text_without_unsafe_characters(text: str) -> None:
    try:
        _plain_text(text)
    except ValueError:
        assert any(unsafe(c) for c in text)
    else:
        assert not any(unsafe(c) for c in text)


def test_titles_with_c1_controls_or_bidi_overrides_are_refused() -> None:
    base = {
        "event_id": "00000000-0000-4000-8000-000000000000",
        "schema_version": 1,
        "notification_type": "system_alert",
        "broadcast": True,
        "data": {},
    }
    for title in ("a\x85b", "pay \u202egnp.exe", "x\u2066y"):
        with pytest.raises(ValidationError, match="title"):
            Envelope.model_validate({**base, "title": title})
    hebrew = Envelope.model_validate({**base, "title": "סיור בירושלים\u200f"})
    assert hebrew.title is not None


# -- action_url, judged by a browser's own URL parser (the WHATWG URL of Node.js) ---------

BASE = "https://app.example/inbox/"
URL_ALPHABET = [*"/\\\t\n\r \x00\x0b\x1f\x7f\x85\u202e\u3000.:@?#%ab", "evil.example"]
SEEDS = range(8)


def candidates(seed: int, count: int = 600) -> list[str]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        parts = [rng.choice(URL_ALPHABET) for _ in range(rng.randint(1, 8))]
        prefix = rng.choice(["", "/", "//", "/\\", "https://", "https:", "HTTPS://", " /"])
        made.append(prefix + "".join(parts))
    return made


def browser_view(urls: list[str]) -> list[dict[str, str] | None]:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed to parse URLs as a browser does"
    script = (
        "const urls = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        f"const out = urls.map(u => {{ try {{ const p = new URL(u, {json.dumps(BASE)});"
        " return {origin: p.origin, protocol: p.protocol, username: p.username,"
        " hostname: p.hostname}; } catch (e) { return null; } });"
        "process.stdout.write(JSON.stringify(out));"
    )
    done = subprocess.run(
        [node, "-e", script], input=json.dumps(urls), capture_output=True, text=True, check=True
    )
    parsed: list[dict[str, str] | None] = json.loads(done.stdout)
    return parsed


@pytest.mark.parametrize("seed", SEEDS)
def test_an_accepted_action_url_never_leaves_the_app_in_a_browser(seed: int) -> None:
    accepted = []
    for url in candidates(seed):
        with contextlib.suppress(ValueError):
            accepted.append(_action_url(url))
    assert accepted, "the generator makes some valid URLs too"
    for url, view in zip(accepted, browser_view(accepted), strict=True):
        assert view is not None, url
        if url.startswith("/"):
            assert view["origin"] == "https://app.example", (url, view)
        else:
            assert view["protocol"] == "https:" and view["hostname"], (url, view)
            assert view["username"] == "", (url, view)


def test_the_reported_redirects_are_refused() -> None:
    for url in ("/\\evil.example/x", "/\t/evil.example", "//evil.example", "https://a@evil"):
        with pytest.raises(ValueError):
            _action_url(url)
    views = browser_view(["/\\evil.example/x", "/\t/evil.example"])
    assert all(v is not None and v["hostname"] == "evil.example" for v in views)


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret", ["a" * 40, "ab" * 20, "changeme" * 5, "0123456789" * 4, "x" * 31]
)
def test_weak_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="random data"):
        EdgeSettings(auth_jwt_secret=secret)


@pytest.mark.parametrize("seed", range(20))
def test_generated_secrets_are_accepted(seed: int) -> None:
    rng = random.Random(seed)
    hex_secret = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    urlsafe = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for _ in range(43)
    )
    for secret in (hex_secret, urlsafe):
        assert EdgeSettings(auth_jwt_secret=secret).auth_jwt_secret == secret
