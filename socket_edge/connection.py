"""One client socket: its metadata, its lifecycle, and its bounded outgoing buffer.

Lifecycle: ``REPLAYING`` (registered and bound; the replay from Postgres is being sent, live
frames are held back) -> ``LIVE`` -> ``CLOSED``. The replay's snapshot covers every seq up to
its high-water mark, so a live frame is sent only if its seq is above that mark: whether it
arrived during the replay (held, then released at the handover) or after it (a notification
committed before the snapshot whose live copy was still on its way).

Frames to the client go through one queue drained by one writer task per socket: a burst is
queued without an await per frame, order is kept, and a client that does not read fills its
queue and is closed with 1013 instead of holding memory for ever (invariant 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from datetime import UTC, datetime

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("notify.edge")

CLOSE_TRY_AGAIN_LATER = 1013


class State(enum.Enum):
    REPLAYING = "replaying"
    LIVE = "live"
    CLOSED = "closed"


class IllegalTransition(RuntimeError):
    pass


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        user_id: str,
        *,
        device_type: str,
        app_version: str | None,
        send_buffer: int,
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.connection_id = uuid.uuid4().hex
        self.device_type = device_type
        self.app_version = app_version
        client = websocket.client
        self.remote_address = f"{client.host}:{client.port}" if client else None
        self.connected_at = datetime.now(UTC)
        self.last_seen = self.connected_at
        self.state = State.REPLAYING
        self.high_water = 0  # the replay snapshot's greatest seq; live frames must exceed it
        self.rooms: set[str] = set()
        self.frames_sent = 0
        self._held: list[tuple[int, str]] = []
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=send_buffer)
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.connection_id} user={self.user_id} {self.state.value}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.connection_id}")

    def go_live(self, high_water: int) -> None:
        """End the replay: release held live frames newer than the replay's snapshot."""
        if self.state is not State.REPLAYING:
            raise IllegalTransition(f"go_live expects {State.REPLAYING}, not {self.state}")
        held, self._held = self._held, []
        self.high_water = high_water
        self.state = State.LIVE
        for seq, text in held:
            self.deliver(seq, text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (once) and stop the writer; safe from any state."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.close_code = code
        self._held.clear()
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        # Already closed by the client or the server: nothing left to do.
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.websocket.close(code, reason)

    # -- frames ----------------------------------------------------------------------------

    def deliver(self, seq: int, text: str) -> None:
        """A live notification frame routed to this socket."""
        if self.state is State.LIVE:
            if seq > self.high_water:
                self.send(text)
        elif self.state is State.REPLAYING:
            self._held.append((seq, text))

    def send(self, text: str) -> None:
        """Queue a frame without waiting; a full queue means the client is not reading."""
        if self.state is State.CLOSED:
            return
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("closing %r: %d frames unread (slow consumer)", self, self._outbox.maxsize)
            asyncio.get_running_loop().create_task(
                self.close(CLOSE_TRY_AGAIN_LATER, "slow consumer: reconnect to resume")
            )

    async def send_waiting(self, text: str) -> None:
        """Queue a frame, waiting for room: used for the replay, which the writer paces."""
        if self.state is not State.CLOSED:
            await self._outbox.put(text)

    async def flushed(self) -> None:
        """Wait until every queued frame has been written to the socket."""
        await self._outbox.join()

    async def _write(self) -> None:
        websocket = self.websocket
        outbox = self._outbox
        try:
            while True:
                text = await outbox.get()
                if text is None:
                    return
                await websocket.send_text(text)
                self.frames_sent += 1
                outbox.task_done()
        except (WebSocketDisconnect, OSError, RuntimeError) as exc:
            log.debug("%r: write failed (%s)", self, exc)
