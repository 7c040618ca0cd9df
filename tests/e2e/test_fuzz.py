"""Generated inputs against a real edge of this module's own, on every surface a client has:
the handshake (path, query, headers), every REST endpoint (path, query, body, token) and every
client action. The properties: no 5xx, no close with 1011, every refusal in the documented
shape, a socket that still answers ping, and no traceback or ERROR line in the edge's log
(checked when the edge stops). Bounded in count, and seeded: the same inputs on every run."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from producers.envelope import SEQ_MAX
from tests.support.client import ws_client
from tests.support.processes import NotifyProcess, start_edge
from tests.support.raw import upgrade_request
from tests.support.tokens import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

FRAMES = 10_000
BATCH = 100
ACTIONS = ["ping", "subscribe", "unsubscribe", "message", "mark_read", "mark_all_read"]
REPLIES = {"error", "pong", "subscribed", "unsubscribed", "read", "notification", "message"}
HANDSHAKE_STATUSES = {101, 400, 401, 403, 404, 429}
# Refused by the HTTP server itself before the edge sees the request (a malformed handshake,
# a request line or headers over its limits): plain text, not the edge's JSON.
SERVER_REFUSALS = {400, 414, 431}
WAIT = 10.0


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Characters that have broken parsers before: non-ASCII digits, controls of both ranges, bidi
# controls, slashes of both kinds, percent signs, whitespace.
TRICKY = "0123456789²٣\x00\t\n\r\x1f\x7f\x85\u202e/\\ %:@.-_aZé"
tricky = st.text(alphabet=st.sampled_from(TRICKY), max_size=30) | st.text(max_size=30)
huge_ints = st.integers(min_value=-(2**80), max_value=2**80)
numbers = st.sampled_from([0, 1, SEQ_MAX, SEQ_MAX + 1, 2**64, -1]) | huge_ints
number_texts = numbers.map(str) | tricky | st.sampled_from(["1e3", "0x10", "+1", " 1", "1.0"])

json_values = st.recursive(
    st.none() | st.booleans() | huge_ints | st.floats(allow_nan=False) | tricky,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
deep_json = st.integers(min_value=1, max_value=600).map(lambda n: "[" * n + "]" * n)


@pytest.fixture(scope="module")
async def fuzz_edge(process_env: dict[str, str]) -> AsyncIterator[tuple[NotifyProcess, int]]:
    proc, port = await start_edge(process_env)
    yield proc, port
    await proc.stop()
    noisy = [line for line in proc.lines if "Traceback" in line or " ERROR " in line]
    assert not noisy, "\n".join(proc.lines)
    assert not [line for line in proc.lines if "1011" in line], "\n".join(proc.lines)


@pytest.fixture
def fuzz_url(fuzz_edge: tuple[NotifyProcess, int]) -> str:
    return f"ws://127.0.0.1:{fuzz_edge[1]}"


# -- the handshake ---------------------------------------------------------------------------

USER = "fuzz-user"
tokens = st.sampled_from(["valid", "other", "admin", "expired", "junk", "none", "long", "alg_none"])


def token_of(kind: str) -> str:
    now = int(time.time())
    return {
        "valid": token_for(USER),
        "other": token_for("someone-else"),
        "admin": token_for("ops", admin=True),
        "expired": token_for(USER, ttl=-60),
        "junk": "a.b.c",
        "none": "",
        "long": "x" * 20_000,
        "alg_none": ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in ({"alg": "none"}, {"sub": USER, "exp": now + 60})
        )
        + ".",
    }[kind]


query_values = st.dictionaries(
    st.sampled_from(["user_id", "since", "device_type", "app_version", "token", "x"]) | tricky,
    tricky | number_texts,
    max_size=6,
)
handshake_headers = st.dictionaries(
    st.sampled_from(["Origin", "Authorization", "Sec-WebSocket-Protocol", "X-Forwarded-For"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    max_size=3,
)


@fuzz(300)
@seed(20261203)
@given(
    path_user=st.none() | tricky,
    query=query_values,
    token=tokens,
    headers=handshake_headers,
    raw_query=st.binary(max_size=40),
)
async def test_any_handshake_is_answered_with_101_or_a_refusal(
    fuzz_edge: tuple[NotifyProcess, int],
    path_user: str | None,
    query: dict[str, str],
    token: str,
    headers: dict[str, str],
    raw_query: bytes,
) -> None:
    if path_user is None:
        query.setdefault("user_id", USER)
        path = "/ws/connect"
    else:
        path = "/ws/notifications/" + quote(path_user, safe="")
    query.setdefault("token", token_of(token))
    target = f"{path}?{urlencode(query)}&{quote(raw_query)}"
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = upgrade_request(target, extra)
    reader, writer = await asyncio.open_connection("127.0.0.1", fuzz_edge[1])
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        status = int(head.split()[1])
        assert status in HANDSHAKE_STATUSES | SERVER_REFUSALS, head
        fields = dict(
            line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
        )
        if fields.get(b"content-type") == b"application/json":
            body = orjson.loads(await reader.readexactly(int(fields[b"content-length"])))
            assert set(body) == {"error", "message"}, body
        else:
            assert status in SERVER_REFUSALS or status == 101, head
    finally:
        writer.close()


# -- the REST API ----------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/ws/stats"),
    ("GET", "/ws/rooms"),
    ("GET", "/ws/users/{id}/connections"),
    ("POST", "/ws/rooms/{id}/broadcast"),
    ("GET", "/api/users/{id}/notifications"),
    ("GET", "/api/users/{id}/notifications/unread-count"),
    ("POST", "/api/users/{id}/notifications/read"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
rest_query = st.dictionaries(
    st.sampled_from(["status", "limit", "before_seq", "token", "x"]),
    number_texts | st.sampled_from(["unread", "read", "all"]),
    max_size=4,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "ids": st.lists(st.uuids().map(str) | tricky, max_size=3) | json_values,
            "all": st.booleans() | json_values,
            "up_to_seq": numbers | json_values,
            "title": tricky | json_values,
            "message": tricky | json_values,
            "priority": st.sampled_from(["low", "high", "urgent"]) | json_values,
            "action_url": tricky | st.sampled_from(["/a", "/\\evil", "https://x"]),
            "data": json_values,
        },
    ).map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    deep_json.map(str.encode),
    st.binary(max_size=200),
)


@fuzz(500)
@seed(20261203)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    path_id=st.sampled_from([USER, "room-1"]) | tricky,
    query=rest_query,
    body=bodies,
    token=tokens,
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
)
async def test_any_rest_call_is_answered_without_a_server_error(
    fuzz_edge: tuple[NotifyProcess, int],
    endpoint: tuple[str, str],
    path_id: str,
    query: dict[str, str],
    body: bytes,
    token: str,
    content_type: str,
) -> None:
    method, template = endpoint
    path = template.replace("{id}", quote(path_id, safe="") or "x")
    headers = {"Authorization": f"Bearer {token_of(token)}"} if token != "none" else {}
    if content_type:
        headers["Content-Type"] = content_type
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fuzz_edge[1]}") as http:
        response = await http.request(
            method,
            path,
            params=query,
            content=body if method == "POST" else None,
            headers=headers,
        )
    assert response.status_code < 500 or (path == "/readyz" and response.status_code == 503)
    if response.status_code >= 400 and path != "/readyz":
        answer = response.json()
        assert isinstance(answer["error"], str) and isinstance(answer["message"], str)


@pytest.mark.broadcasts
@fuzz(100)
@seed(20261203)
@given(body=bodies)
async def test_any_admin_broadcast_body_is_answered_without_a_server_error(
    fuzz_edge: tuple[NotifyProcess, int], body: bytes
) -> None:
    headers = {"Authorization": f"Bearer {token_of('admin')}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{fuzz_edge[1]}") as http:
        response = await http.post("/ws/broadcast", content=body, headers=headers)
    assert response.status_code in (202, 400, 413, 422), response.text
    if response.status_code != 202:
        assert set(response.json()) >= {"error", "message"}


# -- client actions --------------------------------------------------------------------------

room_names = st.from_regex(r"[A-Za-z0-9_.:@-]{1,20}", fullmatch=True) | tricky
actions = st.fixed_dictionaries(
    {"action": st.sampled_from(ACTIONS) | st.text(max_size=12) | json_values},
    optional={
        "room": room_names | json_values,
        "since": numbers | json_values | number_texts,
        "ids": st.lists(st.uuids().map(str) | st.text(max_size=36), max_size=5) | json_values,
        "data": json_values,
        "up_to_seq": numbers | json_values | number_texts,
        "extra": json_values,
    },
)
client_frames = st.one_of(
    actions.map(json.dumps),
    json_values.map(json.dumps),
    deep_json.map(lambda nested: f'{{"action":"message","room":"r","data":{{"x":{nested}}}}}'),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@fuzz(FRAMES // BATCH)
@seed(20261130)  # the same frames on every run
@given(batch=st.lists(client_frames, min_size=BATCH, max_size=BATCH))
async def test_random_frames_get_errors_or_valid_replies_and_the_socket_survives(
    fuzz_url: str, batch: list[str | bytes]
) -> None:
    user_id = f"fz-{uuid.uuid4().hex[:10]}"
    async with ws_client(fuzz_url, user_id) as client:
        await client.subscribe("r")
        for frame in batch:
            await client.ws.send(frame)
        await client.send({"action": "ping"})
        while True:  # every answer is an error or a reply, up to the pong
            reply: dict[str, Any] = await client.recv()
            kind = reply.get("type")
            assert kind in REPLIES, reply
            if kind == "error":
                assert reply["code"] and reply["message"], reply
            if kind == "pong":
                break
