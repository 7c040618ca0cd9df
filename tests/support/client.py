"""A WebSocket test client speaking the protocol of docs/websocket.md."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.support.tokens import token_for

FRAME_WAIT = 5.0

Frame = dict[str, Any]


BROADCAST_TYPE = "system_alert"


def personal(frames: list[Frame]) -> list[Frame]:
    """The frames that are not admin broadcasts: those reach every user of the session, so a
    test that counts one user's notifications leaves them out."""
    return [f for f in frames if f.get("notification_type") != BROADCAST_TYPE]


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.established: Frame = {}
        self.replayed: list[Frame] = []  # see ``mine`` for the user's own
        self.replay_complete: Frame = {}

    async def recv(self, timeout: float = FRAME_WAIT) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: Frame = orjson.loads(raw)
        return frame

    async def send(self, frame: Frame) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

    @property
    def mine(self) -> list[Frame]:
        """The replayed frames but broadcasts."""
        return personal(self.replayed)

    async def handshake(self) -> None:
        """Read ``connection_established``, the replay and ``replay_complete``."""
        self.established = await self.recv()
        assert self.established["type"] == "connection_established", self.established
        while True:
            frame = await self.recv()
            if frame["type"] == "replay_complete":
                self.replay_complete = frame
                return
            assert frame["type"] == "notification" and frame.get("replayed") is True, frame
            self.replayed.append(frame)

    async def subscribe(self, room: str, since: int | None = None) -> tuple[list[Frame], Frame]:
        """Subscribe; return the room's replayed frames and the ``subscribed`` frame."""
        action: Frame = {"action": "subscribe", "room": room}
        if since is not None:
            action["since"] = since
        await self.send(action)
        replayed: list[Frame] = []
        while True:
            frame = await self.recv()
            if frame["type"] == "subscribed":
                assert frame["room"] == room, frame
                return replayed, frame
            assert frame["type"] == "notification" and frame.get("replayed"), frame
            replayed.append(frame)

    async def expect(self, frame_type: str, timeout: float = FRAME_WAIT) -> Frame:
        frame = await self.recv(timeout)
        assert frame["type"] == frame_type, frame
        return frame

    async def nothing_more(self) -> None:
        """Prove that no frame is pending: a ping's pong must be the very next frame."""
        await self.send({"action": "ping"})
        assert await self.recv() == {"type": "pong"}

    async def notification(self, timeout: float = FRAME_WAIT) -> Frame:
        frame = await self.recv(timeout)
        assert frame["type"] == "notification", frame
        return frame


@asynccontextmanager
async def ws_client(
    base_url: str,
    user_id: str,
    *,
    since: int | None = None,
    path: str = "/ws/connect",
    handshake: bool = True,
    token: str | None = None,
    rooms: list[str] | None = None,
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[Client]:
    """A connected client; by default with a valid token for ``user_id`` allowing any room
    (``token=""`` sends none)."""
    params: dict[str, Any] = {"device_type": "test"}
    if token is None:
        token = token_for(user_id, rooms)
    if token:
        params["token"] = token
    if path == "/ws/connect":
        params["user_id"] = user_id
    else:
        path = f"{path}/{user_id}"
    if since is not None:
        params["since"] = since
    async with connect(
        f"{base_url}{path}?{urlencode(params)}",
        open_timeout=10,
        # Never stop reading: a test client must not push back on the server by accident
        # (the slow-consumer tests use raw sockets for that).
        max_queue=None,
        additional_headers=headers,
        subprotocols=subprotocols,  # type: ignore[arg-type]
    ) as ws:
        client = Client(ws)
        if handshake:
            await client.handshake()
        yield client
