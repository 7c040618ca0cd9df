"""Bad actors against a real edge with its default limits: each one refused with a clear code,
nobody reads what is not theirs, and nothing a client sends crashes a session."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from producers import topology
from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess, start_edge
from tests.support.tokens import SECRET, admin_headers, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

LIMITS = (
    "WEBSOCKET_HANDSHAKES_PER_SECOND",
    "WEBSOCKET_CLIENT_FRAMES_PER_SECOND",
)


@pytest.fixture(scope="module")
async def strict_edge(process_env: dict[str, str]) -> AsyncIterator[tuple[NotifyProcess, str]]:
    """An edge with the default limits, and origins restricted to one site."""
    env = {k: v for k, v in process_env.items() if k not in LIMITS}
    env["ALLOWED_ORIGINS"] = "https://app.example.com,https://*.tours.example"
    proc, port = await start_edge(env)
    yield proc, f"127.0.0.1:{port}"
    await proc.stop()


@pytest.fixture
def ws_url(strict_edge: tuple[NotifyProcess, str]) -> str:
    return f"ws://{strict_edge[1]}"


@pytest.fixture
def http_url(strict_edge: tuple[NotifyProcess, str]) -> str:
    return f"http://{strict_edge[1]}"


async def refused(ws_url: str, user_id: str, **options: object) -> tuple[int, dict[str, str]]:
    with pytest.raises(InvalidStatus) as caught:
        async with ws_client(ws_url, user_id, **options):  # type: ignore[arg-type]
            pass
    response = caught.value.response
    return response.status_code, orjson.loads(response.body or b"{}")


def forged(claims: dict[str, object], key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def unsigned(claims: dict[str, object]) -> str:
    return jwt.encode(claims, "", algorithm="none")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("another_users_token", (403, "wrong_user")),
        ("no_token", (401, "missing_token")),
        ("expired", (401, "token_expired")),
        ("wrong_signature", (401, "invalid_token")),
        ("alg_none", (401, "invalid_token")),
        ("no_exp", (401, "invalid_token")),
    ],
)
async def test_a_socket_needs_a_valid_token_of_its_own_user(
    ws_url: str, user_id: str, case: str, expected: tuple[int, str]
) -> None:
    now = int(time.time())
    token = {
        "another_users_token": token_for("someone-else"),
        "no_token": "",
        "expired": forged({"sub": user_id, "exp": now - 60}),
        "wrong_signature": forged({"sub": user_id, "exp": now + 60}, key="x" * 48),
        "alg_none": unsigned({"sub": user_id, "exp": now + 60}),
        "no_exp": forged({"sub": user_id}),
    }[case]
    status, body = await refused(ws_url, user_id, token=token)
    assert (status, body["error"]) == expected
    assert body["message"]


async def test_tokens_are_taken_from_the_header_and_the_subprotocol(
    ws_url: str, user_id: str
) -> None:
    bearer = {"Authorization": f"Bearer {token_for(user_id)}"}
    async with ws_client(ws_url, user_id, token="", headers=bearer) as client:
        assert client.replay_complete["type"] == "replay_complete"
    protocols = ["notify.v1", f"bearer.{token_for(user_id)}"]
    async with ws_client(ws_url, user_id, token="", subprotocols=protocols) as client:
        assert client.ws.subprotocol == "notify.v1"


async def test_a_socket_is_closed_when_its_token_expires(ws_url: str, user_id: str) -> None:
    async with ws_client(ws_url, user_id, token=token_for(user_id, ttl=2)) as client:
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv(timeout=15)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "token expired")


async def test_rooms_are_joined_only_as_the_token_allows(ws_url: str, user_id: str) -> None:
    async with ws_client(ws_url, user_id, rooms=["tour_42", "agency_*"]) as client:
        _, ok = await client.subscribe("tour_42")
        assert ok["type"] == "subscribed"
        _, ok = await client.subscribe("agency_rome")
        assert ok["type"] == "subscribed"
        await client.send({"action": "subscribe", "room": "tour_43"})
        error = await client.expect("error")
        assert error["code"] == "forbidden_room"
        await client.send({"action": "message", "room": "tour_43", "data": {}})
        assert (await client.expect("error"))["code"] == "not_subscribed"
        await client.nothing_more()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://evil.example.net", False),
        ("https://app.example.com", True),
        ("https://rome.tours.example", True),
        ("http://app.example.com", False),
    ],
)
async def test_handshakes_from_foreign_origins_are_refused(
    ws_url: str, user_id: str, origin: str, allowed: bool
) -> None:
    if allowed:
        async with ws_client(ws_url, user_id, headers={"Origin": origin}) as client:
            assert client.replay_complete["type"] == "replay_complete"
    else:
        status, body = await refused(ws_url, user_id, headers={"Origin": origin})
        assert (status, body["error"]) == (403, "forbidden_origin")


async def test_the_rest_api_checks_who_calls(http_url: str, user_id: str) -> None:
    async with httpx.AsyncClient(base_url=http_url) as http:
        mine = {"Authorization": f"Bearer {token_for(user_id)}"}
        theirs = {"Authorization": f"Bearer {token_for('someone-else')}"}
        body = {"title": "Hi", "message": "everyone"}
        assert (await http.post("/ws/broadcast", json=body)).status_code == 401
        assert (await http.post("/ws/broadcast", json=body, headers=mine)).status_code == 403
        assert (await http.get("/ws/stats", headers=mine)).status_code == 403
        assert (await http.get("/ws/stats", headers=admin_headers())).status_code == 200
        history = f"/api/users/{user_id}/notifications"
        assert (await http.get(history, headers=mine)).status_code == 200
        assert (await http.get(history, headers=theirs)).status_code == 403
        assert (await http.get(history)).status_code == 401
        assert (await http.get(history, headers=admin_headers())).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        cors = await http.options(
            "/ws/stats",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
        )
        assert cors.headers["access-control-allow-origin"] == "https://app.example.com"
        stats = (await http.get("/ws/stats", headers=admin_headers())).json()
    assert stats["refusals"]["admin_only"] >= 2
    assert stats["refusals"]["wrong_user"] >= 1


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(ws_url: str, user_id: str) -> None:
    async with ws_client(ws_url, user_id) as client:
        await client.ws.send("x" * (1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_client_flooding_frames_is_warned_then_closed_with_1008(
    ws_url: str, user_id: str
) -> None:
    async with ws_client(ws_url, user_id) as client:
        codes: list[str] = []

        async def read_until_closed() -> ConnectionClosed:
            try:
                while True:
                    frame = await client.recv(timeout=10)
                    if frame["type"] == "error":
                        codes.append(frame["code"])
            except ConnectionClosed as closed:
                return closed

        reader = asyncio.create_task(read_until_closed())
        with contextlib.suppress(ConnectionClosed):  # it may be closed before the last one
            for _ in range(1000):  # 1,000 frames in about a second
                await client.ws.send('{"action":"ping"}')
                await asyncio.sleep(0.001)  # pacing the flood, and letting the reader read
        closed = await reader
    assert codes == ["rate_limited"]
    assert closed.rcvd is not None and closed.rcvd.code == 1008


async def test_the_eleventh_socket_of_a_user_is_closed_with_1013(ws_url: str, user_id: str) -> None:
    opened = []
    try:
        for _ in range(10):
            context = ws_client(ws_url, user_id)
            opened.append(context)
            await context.__aenter__()
        async with ws_client(ws_url, user_id, handshake=False) as eleventh:
            with pytest.raises(ConnectionClosed) as closed:
                await eleventh.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    finally:
        for context in opened:
            await context.__aexit__(None, None, None)


async def test_a_handshake_flood_from_one_address_is_refused_with_429(
    process_env: dict[str, str], user_id: str
) -> None:
    # An edge of its own: the flood empties its address's bucket, which would refuse the
    # next test's handshakes for a moment.
    edge, port = await start_edge({k: v for k, v in process_env.items() if k not in LIMITS})
    url = f"ws://127.0.0.1:{port}/ws/connect?user_id={user_id}&token={token_for(user_id)}"
    statuses: list[int] = []

    async def knock() -> None:
        try:
            async with connect(url):
                statuses.append(101)
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)

    try:
        await asyncio.gather(*(knock() for _ in range(100)))
    finally:
        await edge.stop()
    assert 429 in statuses
    assert statuses.count(101) <= 2 * 10 + 10  # the burst, and what refilled meanwhile


async def test_nobody_receives_another_users_notifications(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    ws_url: str,
    user_id: str,
) -> None:
    other = f"b-{uuid.uuid4().hex[:8]}"
    async with watch_deliveries(amqp, topology.user_key(other), topology.user_key(user_id)) as d:
        theirs = await service.notify(
            "payment_received",
            user_id=other,
            data={"booking_id": "b1", "amount": 10, "payment_method": "card"},
        )
        await d.wait_for(theirs)
        async with ws_client(ws_url, user_id) as mine:
            assert mine.mine == []
            ours = await service.notify(
                "tour_started", user_id=user_id, data={"booking_id": "b", "tour_name": "T"}
            )
            assert (await mine.notification())["id"] == str(ours)
            await mine.nothing_more()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_a_client_that_never_reads_is_closed_and_replayed_in_full_later(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """Invariant 7: 5,000 notifications (about 10 MB) to a socket that reads nothing."""
    env = {**process_env, "WEBSOCKET_SEND_BUFFER": "65536", "REPLAY_LIMIT": "10000"}
    edge, port = await start_edge(env)
    try:
        _, writer = await raw_socket_that_never_reads(port, user_id)
        before = rss_kib(edge.pid)
        envelopes = [
            service.build("agent_response", user_id=user_id,
                          data={"agent_name": "planner", "response": "x" * 2000,
                                "execution_time_ms": i})
            for i in range(5000)
        ]  # fmt: skip
        async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
            await service.publisher.publish_many(envelopes)
            await deliveries.wait_for(envelopes[-1].event_id, timeout=120)
        await edge.wait_for_line("slow consumer")
        grown = rss_kib(edge.pid) - before
        assert grown < 64 * 1024, f"edge RSS grew by {grown} KiB"
        writer.close()

        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            assert [f["id"] for f in client.mine] == [str(e.event_id) for e in envelopes]
            assert client.replay_complete["data"]["truncated"] is False
    finally:
        await edge.stop()


async def raw_socket_that_never_reads(
    port: int, user_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake on a socket with the smallest receive buffer, then silence."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws/connect?user_id={user_id}&token={token_for(user_id)} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b"101" in await reader.readline()
    return reader, writer
