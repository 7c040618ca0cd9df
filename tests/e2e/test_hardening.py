"""Each bad input once found to reach an unhandled exception, or a default once found unsafe
behind a proxy, against real edges: refused with a clear answer, and never a 500, a 1011 or a
traceback in the edge's log (checked when each edge stops)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed, InvalidStatus

from producers import topology
from producers.envelope import SEQ_MAX
from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess, start_edge
from tests.support.raw import upgrade_request
from tests.support.tokens import admin_headers, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

BEYOND_64_BITS = 2**70
EOF_WAIT = 20.0


def assert_quiet(edge: NotifyProcess) -> None:
    """No traceback, no ERROR line, no 1011 in what the edge printed."""
    noisy = [
        line
        for line in edge.lines
        if "Traceback" in line
        or " ERROR " in line
        or "1011" in line
        or "failed" in line
        # Refused handshakes are counted in /ws/stats, not logged one line each.
        or "connection rejected" in line
    ]
    assert not noisy, "\n".join(edge.lines)


EdgeStarter = Callable[..., Awaitable[tuple[NotifyProcess, int]]]


@pytest.fixture(scope="module")
async def edges(process_env: dict[str, str]) -> AsyncIterator[EdgeStarter]:
    """Starts edges for this module's tests; each one's log is checked when it stops."""
    started: list[NotifyProcess] = []

    async def start(**env: str) -> tuple[NotifyProcess, int]:
        proc, port = await start_edge({**process_env, **env})
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        await proc.stop()
    for proc in started:
        assert_quiet(proc)


@pytest.fixture(scope="module")
async def edge(edges: EdgeStarter) -> tuple[NotifyProcess, int]:
    return await edges()


async def raw_exchange(port: int, request: bytes, read_all: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if read_all:
            return await asyncio.wait_for(reader.read(), EOF_WAIT)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), EOF_WAIT)
    finally:
        writer.close()


def status_and_body(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, orjson.loads(body) if body.startswith(b"{") else {}


# -- 1, 3: handshake parameters -------------------------------------------------------------


@pytest.mark.parametrize("since", ["%C2%B2", "%D9%A3", str(BEYOND_64_BITS), str(SEQ_MAX + 1)])
@pytest.mark.parametrize("path", ["/ws/connect?user_id={user}&", "/ws/notifications/{user}?"])
async def test_a_since_that_is_no_seq_is_refused_with_400_before_anything_else(
    edge: tuple[NotifyProcess, int], user_id: str, since: str, path: str
) -> None:
    # No token at all: the parameters are checked first, and must not crash either.
    target = path.format(user=user_id) + f"since={since}"
    status, body = status_and_body(await raw_exchange(edge[1], upgrade_request(target)))
    assert (status, body["error"]) == (400, "invalid_parameter")
    assert "since must be a seq" in body["message"]


async def test_a_user_id_with_a_trailing_newline_is_refused(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    for target in (f"/ws/connect?user_id={user_id}%0A", f"/ws/notifications/{user_id}%0A"):
        status, body = status_and_body(await raw_exchange(edge[1], upgrade_request(target)))
        assert (status, body["error"]) == (400, "invalid_parameter")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge[1]}") as http:
        response = await http.get(f"/api/users/{user_id}%0A/notifications", headers=admin_headers())
    assert response.status_code == 422


# -- 3, 4: frames with integers beyond 64 bits and deep nesting -----------------------------


async def test_frames_with_huge_integers_or_deep_nesting_get_error_frames(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    deep = "[" * 300 + "]" * 300
    frames = [
        f'{{"action":"subscribe","room":"r1","since":{BEYOND_64_BITS}}}',
        f'{{"action":"subscribe","room":"r1","since":"{BEYOND_64_BITS}"}}',
        f'{{"action":"mark_all_read","up_to_seq":{BEYOND_64_BITS}}}',
        f'{{"action":"mark_all_read","up_to_seq":{SEQ_MAX + 1}}}',
        '{"action":"mark_all_read","up_to_seq":5.0}',
        f'{{"action":"message","room":"r1","data":{{"x":{deep}}}}}',
        '{"action":"message","room":"r1","data":' + "[" * 2000 + "]" * 2000 + "}",
    ]
    async with ws_client(f"ws://127.0.0.1:{edge[1]}", user_id) as client:
        await client.subscribe("r1")
        for frame in frames:
            await client.ws.send(frame)
            error = await client.expect("error")
            assert error["code"] in ("invalid_frame", "invalid_json"), (frame[:80], error)
        await client.send({"action": "ping"})
        assert (await client.expect("pong"))["type"] == "pong"


async def test_rest_seqs_beyond_the_log_are_refused_with_422(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    mine = {"Authorization": f"Bearer {token_for(user_id)}"}
    base = f"/api/users/{user_id}/notifications"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge[1]}") as http:
        for before in (BEYOND_64_BITS, SEQ_MAX + 1, -1):
            response = await http.get(f"{base}?before_seq={before}", headers=mine)
            assert response.status_code == 422
            assert response.json()["error"] == "invalid_request"
            assert "before_seq" in response.json()["message"]
        for body in (
            {"all": True, "up_to_seq": BEYOND_64_BITS},
            {"all": True, "up_to_seq": "5"},
            {"all": "yes"},
        ):
            response = await http.post(f"{base}/read", json=body, headers=mine)
            assert response.status_code == 422, body
        assert (await http.get(f"{base}?before_seq={SEQ_MAX}", headers=mine)).status_code == 200


async def test_a_broadcast_with_unencodable_or_deep_data_is_refused_with_422(
    edge: tuple[NotifyProcess, int],
) -> None:
    deep: Any = {}
    for _ in range(100):
        deep = {"x": deep}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge[1]}") as http:
        for data in (deep, {"big": BEYOND_64_BITS}):
            # Sent as the JSON text, so that the edge's own parser meets the huge integer.
            content = json.dumps({"title": "t", "message": "m", "data": data})
            response = await http.post(
                "/ws/broadcast",
                content=content,
                headers={**admin_headers(), "Content-Type": "application/json"},
            )
            assert response.status_code == 422, response.text
        response = await http.post(
            "/ws/broadcast",
            content='{"title": "\\ud800", "message": "m"}',
            headers={**admin_headers(), "Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text


# -- 2: confused tokens in public-key mode --------------------------------------------------


async def test_a_token_naming_another_algorithm_is_a_401_in_public_key_mode(
    edges: EdgeStarter, tmp_path: Path, user_id: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "idp.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    _, port = await edges(AUTH_JWT_SECRET="", AUTH_JWT_PUBLIC_KEY_FILE=str(pem))

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = b64(json.dumps({"sub": user_id, "exp": int(time.time()) + 60}).encode())
    tokens = [
        f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{claims}.{b64(b'junk' * 20)}"
        for alg in ("ES256", "ES512", "PS256", "HS256", "EdDSA", "RS256")
    ]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for token in tokens:
            with pytest.raises(InvalidStatus) as refused:
                async with ws_client(f"ws://127.0.0.1:{port}", user_id, token=token):
                    pass
            assert refused.value.response.status_code == 401
            for path in (f"/api/users/{user_id}/notifications", "/ws/stats"):
                response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 401
                assert response.json()["error"] == "invalid_token"


async def test_a_token_living_longer_than_the_maximum_is_refused(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(
            f"ws://127.0.0.1:{edge[1]}", user_id, token=token_for(user_id, ttl=3 * 86_400)
        ):
            pass
    assert refused.value.response.status_code == 401
    assert b"AUTH_JWT_MAX_LIFETIME" in (refused.value.response.body or b"")


# -- 5: bodies are capped and not read before the caller is known ---------------------------


async def test_a_large_body_is_refused_before_it_is_sent(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    """The 413 (or the 401) arrives while the client has sent a kilobyte of a body it
    announced as 21 MB: the edge did not wait for, read or buffer the rest."""
    port = edge[1]
    target = f"/api/users/{user_id}/notifications/read"
    bearer = f"Authorization: Bearer {token_for(user_id)}\r\n"
    for auth in ("", bearer):
        head = (
            f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {21 * 1024 * 1024}\r\n{auth}\r\n"
        ).encode()
        status, body = status_and_body(await raw_exchange(port, head + b"x" * 1024))
        assert (status, body["error"]) == (413, "body_too_large")
    # Chunked, so that no Content-Length gives it away: refused once past the limit.
    chunk = b"x" * 24 * 1024
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
    head = (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n"
    ).encode()
    status, body = status_and_body(
        await raw_exchange(port, head + bearer.encode() + b"\r\n" + chunked)
    )
    assert (status, body["error"]) == (413, "body_too_large")
    # Without a token, no byte of the body is needed for the answer: it is the token's.
    status, body = status_and_body(await raw_exchange(port, head + b"\r\n"))
    assert (status, body["error"]) == (401, "missing_token")


# -- 6: X-Forwarded-For only from trusted proxies --------------------------------------------


async def handshake_statuses(port: int, user_id: str, count: int, header: str) -> list[int]:
    token = token_for(user_id)
    statuses = []
    for i in range(count):
        extra = f"{header}: 198.51.100.{i % 250}\r\n"
        target = f"/ws/connect?user_id={user_id}&token={token}"
        head = await raw_exchange(port, upgrade_request(target, extra), read_all=False)
        statuses.append(int(head.split()[1]))
    return statuses


async def test_forwarded_headers_are_ignored_unless_the_peer_is_a_trusted_proxy(
    edges: EdgeStarter, user_id: str
) -> None:
    limits = {"WEBSOCKET_HANDSHAKES_PER_SECOND": "2"}  # a burst of 4
    _, untrusting = await edges(**limits)
    statuses = await handshake_statuses(untrusting, user_id, 12, "X-Forwarded-For")
    assert statuses.count(429) >= 6, statuses  # one bucket: the TCP peer's

    _, trusting = await edges(**limits, TRUSTED_PROXIES="127.0.0.1")
    statuses = await handshake_statuses(trusting, user_id, 12, "X-Forwarded-For")
    assert 429 not in statuses, statuses  # a bucket per forwarded client address
    async with (
        ws_client(
            f"ws://127.0.0.1:{trusting}", user_id, headers={"X-Forwarded-For": "203.0.113.9"}
        ),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{trusting}") as http,
    ):
        listed = (
            await http.get(f"/ws/users/{user_id}/connections", headers=admin_headers())
        ).json()
    assert [c["remote_address"].split(":")[0] for c in listed["connections"]] == ["203.0.113.9"]


# -- 7: slowloris ---------------------------------------------------------------------------


async def test_connections_that_never_finish_a_request_are_closed(
    edges: EdgeStarter,
) -> None:
    _, port = await edges(HTTP_REQUEST_TIMEOUT="1")
    partial = [b"GET /ws/conn", b"GET /ws/connect?user_id=u HTTP/1.1\r\nHost: x\r\n", b""]
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    started = time.monotonic()
    try:
        for i, (_, writer) in enumerate(streams):
            writer.write(partial[i % len(partial)])
        # Each is closed by the edge: the read ends (EOF) instead of waiting for ever.
        ends = await asyncio.gather(
            *(asyncio.wait_for(reader.read(), EOF_WAIT) for reader, _ in streams)
        )
    finally:
        for _, writer in streams:
            writer.close()
    assert all(end == b"" for end in ends)
    assert time.monotonic() - started < EOF_WAIT
    # A trickled head (a byte at a time) is closed as well: the deadline is not renewed.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        closed = asyncio.ensure_future(reader.read())
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.wait([closed], timeout=0.1)
        assert await asyncio.wait_for(closed, EOF_WAIT) == b""
    finally:
        writer.close()
    # A request that arrives whole is answered as before.
    response = await raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", False)
    assert response.startswith(b"HTTP/1.1 200")


# -- 8: open redirects through action_url ---------------------------------------------------


@pytest.mark.parametrize(
    "action_url", ["/\\evil.example/x", "/\t/evil.example", "//evil.example", "https://a@evil.x"]
)
async def test_an_action_url_a_browser_would_take_elsewhere_is_refused(
    edge: tuple[NotifyProcess, int], action_url: str
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge[1]}") as http:
        body = {"title": "t", "message": "m", "action_url": action_url}
        response = await http.post("/ws/broadcast", json=body, headers=admin_headers())
    assert response.status_code == 422
    assert "action_url" in response.json()["message"]


# -- 9: invalid UTF-8 -----------------------------------------------------------------------


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def test_a_text_frame_that_is_not_utf8_closes_with_1007_in_one_line(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    proc, port = edge
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(f"/ws/connect?user_id={user_id}&token={token_for(user_id)}"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        after = len(proc.lines)
        writer.write(masked_frame(0x1, b"\xff\xfe\xfd"))
        received = await asyncio.wait_for(reader.read(), EOF_WAIT)
    finally:
        writer.close()
    close = received[received.rindex(b"\x88") :]  # the close frame ends the stream
    assert struct.unpack("!H", close[2:4])[0] == 1007
    line = await proc.wait_for_line("not UTF-8", after=after)
    assert " INFO " in line


# -- 10: API docs, one error shape ----------------------------------------------------------


async def test_api_docs_are_off_and_every_refusal_has_one_shape(
    edge: tuple[NotifyProcess, int], user_id: str
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge[1]}") as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404
        responses = [
            await http.get("/nowhere"),
            await http.get("/api/users/x/notifications"),
            await http.delete("/healthz"),
            await http.get(
                f"/api/users/{user_id}/notifications?limit=echoed-value", headers=admin_headers()
            ),
            await http.post("/ws/broadcast", content=b"{", headers=admin_headers()),
        ]
    for response in responses:
        assert "echoed-value" not in response.text  # what a client sent is not sent back
        body = response.json()
        assert response.status_code >= 400 and set(body) >= {"error", "message"}, body
        assert isinstance(body["error"], str) and isinstance(body["message"], str)


# -- a client that goes away in the middle of its replay ------------------------------------


async def test_a_client_leaving_during_its_replay_is_not_a_server_error(
    edge: tuple[NotifyProcess, int],
    service: NotificationService,
    amqp: AbstractRobustConnection,
    user_id: str,
) -> None:
    proc, port = edge
    envelopes = [
        service.build(
            "agent_response",
            user_id=user_id,
            data={"agent_name": "a", "response": "x" * 1000, "execution_time_ms": i},
        )
        for i in range(400)
    ]
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        await service.publisher.publish_many(envelopes)
        await deliveries.wait_for(envelopes[-1].event_id, timeout=60)
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(f"/ws/connect?user_id={user_id}&token={token_for(user_id)}"))
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(4096)  # the replay has begun
        writer.transport.abort()  # no close frame: the TCP connection is reset
    async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
        assert len(client.mine) == 400
    with pytest.raises(ConnectionClosed):
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            await client.ws.close(1001)
            await client.recv()
    assert_quiet(proc)
