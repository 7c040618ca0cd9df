"""Where a socket's outgoing frames go: straight onto the connection's transport when the
socket is served by the edge's own WebSocket protocol (``socket_edge.ws_protocol``) without
compression, through the ASGI ``send`` otherwise.

The transport path is the edge's fast path. A server-to-client WebSocket frame is not masked
(RFC 6455, section 5.1), so a notification encodes to the same bytes for every recipient:
``OutFrame.wire`` is built once per message and then written to each socket's transport with
one synchronous ``write`` call, without a task, an await or a copy per socket. The write buffer
of the transport is the socket's bounded outgoing buffer: past ``limit`` bytes the client is
not reading, and the write is refused so that the caller closes it (invariant 7).

The ASGI path serves any other server: one writer task per socket drains a queue bounded by
the same number of bytes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.frames import Frame, Opcode

from producers.waiting import cancel_and_wait
from socket_edge.ws_protocol import EdgeWebSocket

log = logging.getLogger("notify.edge")


class OutFrame:
    """One frame to send: its JSON text, and its wire bytes built on first use."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
        return self._wire

    def __len__(self) -> int:
        return len(self.text)


RAW_SEND_KEY = "notify.raw_send"


class Sink(Protocol):
    kind: str

    def write(self, frame: OutFrame) -> bool:
        """Queue a frame without waiting; False if the client is too far behind."""

    async def write_paced(self, frame: OutFrame) -> None:
        """Queue a frame, waiting while the client's buffer is full."""

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the client (the metrics' sampler)."""

    async def stop(self) -> None: ...


class TransportSink:
    """Writes pre-encoded frames straight to the transport of an ``EdgeWebSocket``."""

    kind = "transport"
    __slots__ = ("_limit", "_protocol", "_transport")

    def __init__(self, protocol: EdgeWebSocket, limit: int) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._limit = limit

    @classmethod
    def fits(cls, websocket: WebSocket) -> EdgeWebSocket | None:
        """The edge's protocol behind ``websocket``, if writing to it directly is safe: no
        extension negotiated (no compression). The server's own ``send`` is found in the scope
        (see ``routes_ws.SocketEndpoints``): the framework wraps the one the endpoint gets."""
        raw_send = websocket.scope.get(RAW_SEND_KEY, websocket._send)
        protocol = getattr(raw_send, "__self__", None)
        if not isinstance(protocol, EdgeWebSocket) or protocol.conn.extensions:
            return None
        return protocol

    def write(self, frame: OutFrame) -> bool:
        if not self._protocol.is_open():
            return True  # closing: the session's cleanup will follow
        if self._transport.get_write_buffer_size() > self._limit:
            return False
        self._transport.write(frame.wire)
        return True

    async def write_paced(self, frame: OutFrame) -> None:
        await self._protocol.wait_writable()
        if self._protocol.is_open():
            self._transport.write(frame.wire)

    def buffered(self) -> int:
        return int(self._transport.get_write_buffer_size())

    async def stop(self) -> None:
        return None


class AsgiSink:
    """One writer task per socket, draining a queue bounded in bytes through ASGI ``send``."""

    kind = "asgi"

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self._websocket = websocket
        self._limit = limit
        self._queued = 0
        self._queue: asyncio.Queue[OutFrame] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        self._writer = asyncio.create_task(self._write())

    def write(self, frame: OutFrame) -> bool:
        if self._queued > self._limit:
            return False
        self._queued += len(frame)
        self._queue.put_nowait(frame)
        if self._queued > self._limit:
            self._room.clear()
        return True

    async def write_paced(self, frame: OutFrame) -> None:
        await self._room.wait()
        self._queued += len(frame)
        self._queue.put_nowait(frame)
        if self._queued > self._limit:
            self._room.clear()

    def buffered(self) -> int:
        return self._queued

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                await self._websocket.send_text(frame.text)
                self._queued -= len(frame)
                if self._queued <= self._limit:
                    self._room.set()
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            log.debug("write to socket failed (%s)", exc)

    async def stop(self) -> None:
        await cancel_and_wait(self._writer)


def sink_for(websocket: WebSocket, limit: int) -> Sink:
    protocol = TransportSink.fits(websocket)
    if protocol is not None:
        return TransportSink(protocol, limit)
    return AsgiSink(websocket, limit)
