"""One client socket: its metadata, its lifecycle, and which frames it may still be sent.

A socket receives several streams, each named by its routing key: the user's own stream
(``user.<id>``, which also carries broadcasts) and one per subscribed room (``room.<name>``).
A stream is either HOLDING (a replay from Postgres is being sent: live frames are kept back)
or LIVE. The replay's snapshot covers every seq up to its high-water mark, so a live frame is
sent only if its seq is above the mark: whether it arrived during the replay (held, released at
the handover, in seq order and each seq once) or after it (a notification committed before the
snapshot whose live copy was still on its way). That is invariant 4, per stream.

The connection itself is OPEN until it is CLOSED, once, by whoever ends it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter

from starlette.websockets import WebSocket, WebSocketDisconnect

from producers import topology
from producers.logs import context
from socket_edge import metrics as edge_metrics
from socket_edge.sinks import OutFrame, Sink, sink_for

log = logging.getLogger("notify.edge")

CLOSE_TRY_AGAIN_LATER = 1013


class State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class IllegalTransition(RuntimeError):
    pass


class StreamState(enum.Enum):
    HOLDING = "holding"  # a replay is being sent: live frames wait in ``held``
    LIVE = "live"  # frames above ``high_water`` are sent as they come


_HOLDING = StreamState.HOLDING  # read once per frame and socket: a module global


@dataclass(slots=True)
class Stream:
    state: StreamState = StreamState.LIVE
    high_water: int = 0
    held: list[tuple[int, OutFrame]] = field(default_factory=list)

    @property
    def holding(self) -> bool:
        return self.state is StreamState.HOLDING


class Connection:
    # One per socket, so no instance dict (docs/performance.md, memory per connection).
    __slots__ = (
        "_closing",
        "_expiry",
        "_hold_limit",
        "_holding",
        "_sink",
        "_streams",
        "app_version",
        "close_code",
        "connected_at",
        "connection_id",
        "device_type",
        "last_seen",
        "registered",
        "remote_address",
        "state",
        "user_id",
        "user_key",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        user_id: str,
        *,
        device_type: str,
        app_version: str | None,
        send_buffer: int,
        hold_limit: int = 10_000,
        sink: Sink | None = None,
        holding: set[Connection] | None = None,
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.user_key = topology.user_key(user_id)
        self.connection_id = uuid.uuid4().hex
        self.device_type = device_type
        self.app_version = app_version
        client = websocket.client
        self.remote_address = f"{client.host}:{client.port}" if client else None
        self.connected_at = datetime.now(UTC)
        self.last_seen = self.connected_at
        self.state = State.OPEN
        self.close_code: int | None = None
        self._sink = sink or sink_for(websocket, send_buffer)
        self._hold_limit = hold_limit
        # The node's set of sockets with a stream in HOLDING: its count of held frames reads
        # these few instead of every socket.
        self._holding: set[Connection] = holding if holding is not None else set()
        self._streams: dict[str, Stream] = {}
        self.registered: set[str] = set()  # the registry keys this socket is a member of
        self._closing: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def close_at(self, deadline: float, code: int, reason: str) -> None:
        """Close the socket at ``deadline`` (wall-clock seconds): when its token expires."""
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.time())
        self._expiry = loop.call_later(delay, self._close_later, code, reason)

    def _close_later(self, code: int, reason: str) -> None:
        self._closing = asyncio.get_running_loop().create_task(self.close(code, reason))

    def __repr__(self) -> str:
        return f"<Connection {self.connection_id} user={self.user_id} {self.state.value}>"

    # -- streams ---------------------------------------------------------------------------

    @property
    def rooms(self) -> list[str]:
        prefix = len(topology.ROOM_PREFIX)
        return [key[prefix:] for key in self._streams if topology.is_room_key(key)]

    def has_stream(self, key: str) -> bool:
        return key in self._streams

    def hold(self, key: str, *, keep_high_water: bool = False) -> Stream:
        """Put a stream in HOLDING: its live frames wait for ``release``. A new stream starts
        at high-water 0; an existing one may keep its mark (a catch-up after a broker blip)."""
        previous = self._streams.get(key)
        high_water = previous.high_water if previous is not None and keep_high_water else 0
        stream = self._streams[key] = Stream(StreamState.HOLDING, high_water)
        if self.state is State.OPEN:
            self._holding.add(self)
        return stream

    def keep_held(self, key: str, high_water: int) -> Stream:
        """Raise a HOLDING stream's mark without releasing it (someone else will)."""
        stream = self._streams.get(key)
        if stream is None or not stream.holding:
            raise IllegalTransition(f"keep_held of {key} expects a HOLDING stream")
        stream.high_water = max(stream.high_water, high_water)
        return stream

    def filter_held(self, key: str, keep: Callable[[int, OutFrame], bool]) -> None:
        """Drop the frames a HOLDING stream holds that ``keep`` refuses (broadcasts its user's
        preferences hold back, decided once they are known)."""
        stream = self._streams.get(key)
        if stream is not None and stream.holding:
            stream.held = [(seq, frame) for seq, frame in stream.held if keep(seq, frame)]

    def holding(self, key: str) -> bool:
        stream = self._streams.get(key)
        return stream is not None and stream.holding

    def holds(self, key: str, stream: Stream) -> bool:
        """Whether ``stream`` (as ``hold`` returned it) is still this key's, and HOLDING."""
        return self._streams.get(key) is stream and stream.holding

    @property
    def writer(self) -> str:
        """How frames reach the socket: ``transport`` (the fast path) or ``asgi``."""
        return self._sink.kind

    @property
    def buffered_bytes(self) -> int:
        """Bytes written to the socket that the client has not taken yet."""
        return self._sink.buffered()

    @property
    def held_frames(self) -> int:
        return sum(len(s.held) for s in self._streams.values())

    def live_keys(self) -> list[str]:
        return [key for key, stream in self._streams.items() if not stream.holding]

    def open_live(self, key: str) -> None:
        """Start a stream LIVE with no replay: every frame from now on is sent."""
        self._streams[key] = Stream()
        self._holding_changed()

    def release(self, key: str, high_water: int) -> None:
        """End the replay of a stream: send the held frames newer than its snapshot, in seq
        order, each seq once (a catch-up adds frames read from Postgres to what arrived)."""
        stream = self._streams.get(key)
        if stream is None or not stream.holding:
            raise IllegalTransition(f"release of {key} expects a HOLDING stream")
        held, stream.held, stream.state = stream.held, [], StreamState.LIVE
        stream.high_water = max(stream.high_water, high_water)
        self._holding_changed()
        held.sort(key=itemgetter(0))
        previous = None
        for seq, frame in held:
            if seq != previous:
                self.deliver(key, seq, frame)
            previous = seq

    def drop(self, key: str) -> None:
        self._streams.pop(key, None)
        self._holding_changed()

    def _holding_changed(self) -> None:
        if not any(stream.state is _HOLDING for stream in self._streams.values()):
            self._holding.discard(self)

    # -- frames ----------------------------------------------------------------------------

    def deliver(self, key: str, seq: int, frame: OutFrame) -> bool:
        """A live frame of a stream, at its position ``seq`` in the log; True if it was sent
        (or held to be sent), False if this socket does not take it."""
        stream = self._streams.get(key)
        if stream is None or self.state is State.CLOSED:
            return False
        if stream.state is _HOLDING:
            if len(stream.held) >= self._hold_limit:
                self._overflow()
                return False
            stream.held.append((seq, frame))
            return True
        if seq > stream.high_water:
            self.write(frame)
            return True
        return False

    def send(self, frame: OutFrame) -> None:
        """Send a control frame (counted as such in the metrics) without waiting; a client
        too far behind is closed with 1013."""
        edge_metrics.shared().sent_control.inc()
        self.write(frame)

    def write(self, frame: OutFrame) -> None:
        """Send without waiting, uncounted (the caller counts its frames once for all the
        sockets it writes to); a client too far behind is closed with 1013."""
        if self.state is State.CLOSED:
            return
        if not self._sink.write(frame):
            self._overflow()

    async def send_paced(self, frame: OutFrame) -> None:
        """Send, waiting while the client's buffer is full (replays)."""
        if self.state is State.OPEN:
            await self._sink.write_paced(frame)

    def _overflow(self) -> None:
        if self._closing is not None:
            return
        log.warning(
            "closing %r: it does not read its frames (slow consumer)",
            self,
            extra=context(connection_id=self.connection_id),
        )
        edge_metrics.shared().slow_consumer_closes.inc()
        self._close_later(CLOSE_TRY_AGAIN_LATER, "slow consumer: reconnect to resume")

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket, once; safe from any state and from any task."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.close_code = code
        self._streams.clear()
        self._holding.discard(self)
        if self._expiry is not None:
            self._expiry.cancel()
        await self._sink.stop()
        # Already closed by the client or the server: nothing left to do.
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self.websocket.close(code, reason)
