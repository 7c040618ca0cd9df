"""The edge's own WebSocket protocol (``socket_edge.ws_protocol``) under a real uvicorn server,
with a real ``websockets`` client: what it owes any ASGI application, case by case."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from socket_edge.ws_protocol import EdgeWebSocket

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: App) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        ws=EdgeWebSocket,
        lifespan="off",
        log_config=None,
        access_log=False,
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


@pytest.mark.parametrize("seed", range(5))
async def test_fragmented_and_whole_messages_reach_the_application_whole_and_in_order(
    seed: int,
) -> None:
    rng = random.Random(seed)
    alphabet = "abcxyz é€🙂"
    async with serving(echo) as (url, _), connect(url + "/") as ws:
        for _ in range(30):
            pieces = [
                "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
                for _ in range(rng.randint(1, 5))
            ]
            if rng.random() < 0.5:
                await ws.send("".join(pieces))
            else:
                await ws.send(iter(pieces))  # one fragment per piece
            assert await ws.recv() == "".join(pieces)
            data = rng.randbytes(rng.randint(0, 300))
            await ws.send(data)
            assert await ws.recv() == data


async def test_the_headers_are_read_before_accepting_and_let_go_after() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        seen["before"] = dict(scope["headers"])
        seen["subprotocols"] = scope["subprotocols"]
        seen["query"] = scope["query_string"]
        seen["path"] = scope["path"]
        await send({"type": "websocket.accept", "subprotocol": "notify.v1"})
        seen["after"] = list(scope["headers"])
        await receive()

    async with (
        serving(app) as (url, _),
        connect(
            url + "/a%20b?x=1",
            subprotocols=[Subprotocol("other"), Subprotocol("notify.v1")],
            origin=Origin("https://app.example"),
        ) as ws,
    ):
        assert ws.subprotocol == "notify.v1"
    assert seen["before"][b"origin"] == b"https://app.example"
    assert seen["subprotocols"] == ["other", "notify.v1"]
    assert seen["query"] == b"x=1" and seen["path"] == "/a b"
    assert seen["after"] == []


async def test_a_denial_response_reaches_the_client_with_its_status_headers_and_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 429,
                "headers": [(b"retry-after", b"1"), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b'{"a":', "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"1}"})

    async with serving(app) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "/"):
                pass
    response = refused.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.body == b'{"a":1}'


@pytest.mark.parametrize("how", ["raises", "returns"])
async def test_an_application_that_neither_accepts_nor_denies_gets_a_500(how: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if how == "raises":
            raise RuntimeError("boom")

    async with serving(app) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "/"):
                pass
    assert refused.value.response.status_code == 500


async def test_a_close_before_accepting_is_a_403() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with serving(app) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url + "/"):
                pass
    assert refused.value.response.status_code == 403


async def test_closes_carry_their_code_and_reason_both_ways() -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        if message.get("text") == "close me":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            received.put_nowait(await receive())  # our own close, as ASGI says
        else:
            received.put_nowait(message)

    async with serving(app) as (url, _):
        async with connect(url + "/") as ws:
            await ws.send("close me")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4001 and ws.close_reason == "bye"
        assert (await received.get())["code"] == 4001
        async with connect(url + "/") as ws:
            await ws.close(4002, "client says bye")
        message = await asyncio.wait_for(received.get(), 10)
        assert message == {
            "type": "websocket.disconnect",
            "code": 4002,
            "reason": "client says bye",
        }


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007() -> None:
    async with serving(echo) as (url, _), connect(url + "/") as ws:
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1007


async def test_a_server_shutdown_closes_open_sockets_with_1012() -> None:
    async with serving(echo) as (url, server):
        sockets = [await connect(url + "/") for _ in range(5)]
        for ws in sockets:
            await ws.send("up")
            assert await ws.recv() == "up"
        server.should_exit = True
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1012


async def test_a_message_too_large_is_closed_with_1009() -> None:
    async with serving(echo) as (url, server):
        limit = server.config.ws_max_size
        async with connect(url + "/", max_size=None) as ws:
            await ws.send("x" * (limit + 1))
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
