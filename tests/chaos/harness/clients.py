"""WebSocket clients that come and go at random and keep a ledger of every frame they get.

Each client is one user and a member of one room. It connects to one of the edges (with
``since`` = the greatest seq it has seen on its own stream, or without, for the full unread
replay), subscribes to its room with ``since`` = the greatest room seq it has seen, stays a
random while, disconnects, and comes back. Every notification frame, live or replayed, is
noted with its connection and stream (``checker.Seen``), and each stream's handover mark
(``replay_complete.last_seq``, ``subscribed.last_seq``) is kept for the order check.

Sockets use a small receive buffer (``RECEIVE_BUFFER``) so that a client that stops reading
pushes back on the server within a few hundred kilobytes, as a phone on a bad network would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from tests.chaos.harness.checker import USER_STREAM, Seen, room_stream
from tests.support.tokens import token_for

log = logging.getLogger("notify.chaos")

RECEIVE_BUFFER = 64 * 1024
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
TOKEN_TTL = 4 * 3600.0
MEAN_LIFETIME = 20.0  # seconds a client stays connected, on average
MAX_LIFETIME = 60.0
P_SINCE = 0.7  # share of reconnects with ``since`` (the others get the full unread replay)
FINAL_READ_TIMEOUT = 60.0


class Ledger:
    """What all the clients saw, in arrival order per connection."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.marks: dict[tuple[int, str], int] = {}
        self.since: dict[int, int | None] = {}  # each connection's ``since`` (user stream)
        self.close_codes: Counter[str] = Counter()
        self.connect_failures: Counter[str] = Counter()
        self.truncated_replays = 0
        self.connections = 0
        self._ids: dict[str, str] = {}

    def next_connection(self) -> int:
        self.connections += 1
        return self.connections

    def intern(self, event_id: str) -> str:
        """One string object per event id, however many clients see it."""
        return self._ids.setdefault(event_id, event_id)


class ChaosClient:
    def __init__(
        self,
        user_id: str,
        room: str,
        ports: list[int],
        ledger: Ledger,
        rng: random.Random,
        *,
        cursor_from_live: bool = True,
        host: str = "127.0.0.1",
        open_socket: Callable[[], socket.socket] | None = None,
    ) -> None:
        """``host``: where the edges (or the proxy in front of them) listen, on ``ports``;
        ``open_socket``: makes the TCP socket of a connection (one of a client host's)."""
        self.host = host
        self.open_socket = open_socket or (
            lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        )
        self.user_id = user_id
        # True: ``since`` is the greatest seq seen, live frames included (what a real client
        # does). False: only the handover marks (``last_seq``) move it, as docs/websocket.md
        # words it; then a live frame that arrives out of seq order cannot be skipped.
        self.cursor_from_live = cursor_from_live
        self.room = room
        self.ports = ports
        self.ledger = ledger
        self.rng = rng
        self.token = token_for(user_id, rooms=[room], ttl=TOKEN_TTL)
        self.cursor_user: int | None = None
        self.cursor_room = 0
        self.port: int | None = None
        self.live = asyncio.Event()  # connected, the user replay done
        self.ended = asyncio.Event()  # the current session ended
        self.last_close: int | None = None
        self._ws: ClientConnection | None = None
        self._lifetime: asyncio.Timeout | None = None
        self._stalled = False

    # -- one session ----------------------------------------------------------------------

    async def _open(self, port: int, since: int | None) -> ClientConnection:
        params: dict[str, Any] = {"user_id": self.user_id, "device_type": "chaos",
                                  "token": self.token}  # fmt: skip
        if since is not None:
            params["since"] = since
        sock = self.open_socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setblocking(False)
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (self.host, port)), OPEN_TIMEOUT
            )
            return await connect(
                f"ws://{self.host}:{port}/ws/connect?{urlencode(params)}",
                sock=sock,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                max_queue=None,
                ping_interval=None,  # the server pings; a stalled client must not be dropped here
            )
        except BaseException:
            sock.close()
            raise

    def _on_frame(self, connection: int, raw: str | bytes) -> str | None:
        frame = orjson.loads(raw)
        kind = frame.get("type")
        if kind == "notification":
            room = frame.get("room")
            stream = room_stream(room) if room else USER_STREAM
            seq = int(frame["seq"])
            self.ledger.seen.append(
                Seen(self.user_id, connection, self.ledger.intern(frame["id"]), seq, stream,
                     bool(frame.get("replayed")), frame["notification_type"])
            )  # fmt: skip
            if self.cursor_from_live or frame.get("replayed"):
                if room:
                    self.cursor_room = max(self.cursor_room, seq)
                else:
                    self.cursor_user = max(self.cursor_user or 0, seq)
        elif kind == "replay_complete":
            data = frame["data"]
            last = int(data["last_seq"])
            self.ledger.marks[(connection, USER_STREAM)] = last
            self.cursor_user = max(self.cursor_user or 0, last)
            if data.get("truncated"):
                self.ledger.truncated_replays += 1
        elif kind == "subscribed":
            last = int(frame.get("last_seq") or 0)
            self.ledger.marks[(connection, room_stream(frame["room"]))] = last
            self.cursor_room = max(self.cursor_room, last)
        return kind if isinstance(kind, str) else None

    async def session(self, port: int, since: int | None, lifetime: float | None) -> int | None:
        """One connection until the server closes it or ``lifetime`` passes; its close code."""
        connection = self.ledger.next_connection()
        self.ledger.since[connection] = since
        self.port = port
        self.ended.clear()
        try:
            ws = await self._open(port, since)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self.ledger.connect_failures[type(exc).__name__] += 1
            self.ended.set()
            return None
        self._ws = ws
        code: int | None = None
        try:
            await ws.send(orjson.dumps({"action": "subscribe", "room": self.room,
                                        "since": self.cursor_room}).decode())  # fmt: skip
            async with asyncio.timeout(lifetime) as self._lifetime:
                if self._stalled:
                    self._lifetime.reschedule(None)
                async for raw in ws:
                    if self._on_frame(connection, raw) == "replay_complete":
                        self.live.set()
        except TimeoutError:
            pass  # the planned end of the session: close normally
        except WebSocketException:
            pass  # closed by the server or the network: the code says which
        finally:
            self.live.clear()
            self._lifetime = None
            self._ws = None
            with contextlib.suppress(WebSocketException, OSError, TimeoutError):
                await ws.close()
            code = ws.close_code
            self.last_close = code
            self.ledger.close_codes[str(code)] += 1
            self.ended.set()
        return code

    # -- the life of a client -------------------------------------------------------------

    def _next_since(self) -> int | None:
        if self.cursor_user is None or self.rng.random() >= P_SINCE:
            return None
        return self.cursor_user

    def _pick_port(self) -> int:
        return self.rng.choice(self.ports)

    async def run(self, stop: asyncio.Event, first_delay: float) -> None:
        """Connect, stay, leave, come back, until ``stop``; every wait is bounded."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), first_delay)
        while not stop.is_set():
            lifetime = min(MAX_LIFETIME, max(1.0, self.rng.expovariate(1 / MEAN_LIFETIME)))
            session = asyncio.create_task(
                self.session(self._pick_port(), self._next_since(), lifetime)
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({session, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not session.done():
                session.cancel()
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
            backoff = self.rng.uniform(0.1, 2.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)

    async def final_check_in(self) -> bool:
        """The last connection of the run: ``since`` from the last seen seq (or the full
        unread replay), the room since its last seen seq; read until both replays are done."""
        for attempt in range(3):
            port = self.ports[attempt % len(self.ports)]
            connection = self.ledger.next_connection()
            self.ledger.since[connection] = self.cursor_user
            try:
                ws = await self._open(port, self.cursor_user)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self.ledger.connect_failures[f"final {type(exc).__name__}"] += 1
                continue
            try:
                await ws.send(orjson.dumps({"action": "subscribe", "room": self.room,
                                            "since": self.cursor_room}).decode())  # fmt: skip
                pending = {"replay_complete", "subscribed"}
                async with asyncio.timeout(FINAL_READ_TIMEOUT):
                    async for raw in ws:
                        pending.discard(self._on_frame(connection, raw) or "")
                        if not pending:
                            return True
            except (TimeoutError, WebSocketException):
                self.ledger.connect_failures["final session lost"] += 1
            finally:
                with contextlib.suppress(WebSocketException, OSError, TimeoutError):
                    await ws.close()
        return False

    # -- the slow-consumer fault ----------------------------------------------------------

    def stall(self) -> bool:
        """Stop reading the current socket (its kernel buffer then fills); False if none."""
        ws = self._ws
        if ws is None:
            return False
        self._stalled = True
        if self._lifetime is not None:
            self._lifetime.reschedule(None)
        ws.transport.pause_reading()
        return True

    def resume(self) -> None:
        self._stalled = False
        ws = self._ws
        if ws is not None:
            ws.transport.resume_reading()
