"""A WebSocket test client speaking DESIGN.md section 4."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect

FRAME_WAIT = 5.0

Frame = dict[str, Any]


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.established: Frame = {}
        self.replayed: list[Frame] = []
        self.replay_complete: Frame = {}

    async def recv(self, timeout: float = FRAME_WAIT) -> Frame:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: Frame = orjson.loads(raw)
        return frame

    async def send(self, frame: Frame) -> None:
        await self.ws.send(orjson.dumps(frame).decode())

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
) -> AsyncIterator[Client]:
    params: dict[str, Any] = {"device_type": "test"}
    if path == "/ws/connect":
        params["user_id"] = user_id
    else:
        path = f"{path}/{user_id}"
    if since is not None:
        params["since"] = since
    async with connect(f"{base_url}{path}?{urlencode(params)}", open_timeout=10) as ws:
        client = Client(ws)
        if handshake:
            await client.handshake()
        yield client
