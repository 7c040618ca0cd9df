"""A WebSocket load client that holds tens of thousands of connections from one process.

Not the ``websockets`` library per connection: one small ``asyncio.Protocol`` per socket that
does the opening handshake, parses the server's (unmasked) frames, answers pings with masked
pongs and closes when the server does. It speaks three dialects with the same workload:

- ``ours``: ``/ws/connect?user_id=U&token=JWT``; ready at ``replay_complete``, or, with a
  room, after ``{"action":"subscribe"}`` is answered by ``subscribed``;
- ``socketio``: Engine.IO 4 over a WebSocket (``/socket.io/?EIO=4&transport=websocket``),
  namespace connect ``40``, ping ``2`` answered by ``3``, events ``42["name",{...}]``; the
  server joins the rooms named in the query string on connect;
- ``bare``: one plain JSON text frame per message; ready at ``{"type":"ready"}``.

Every notification carries its publish time as ``"sent_at": <epoch seconds>`` somewhere in its
frame; the client records publish-to-receipt latency for each one, and counts frames.

Connections are spread over several loopback source addresses (127.0.0.2, 127.0.0.3, ...) so
that the ephemeral ports of one address do not run out, and the process raises its open-files
soft limit to the hard limit. It is driven by ``bench_edge`` over stdin/stdout, one JSON
object a line::

    python -m tests.bench.loadclient --port 8000 --dialect ours --connections 10000 ...
    -> {"event": "connected", "ready": 10000, "failed": 0, ...}
    <- {"cmd": "reset", "tag": T} | {"cmd": "wait", "count": N, "timeout": S} | {"cmd": "stats"}
    <- {"cmd": "quit"}

With ``--track`` (the storm row) every client also keeps, across its connections, its cursor
(the greatest ``seq`` it has seen, ``replay_complete.last_seq`` to begin with), its room's
cursor, and how many notifications of the current tag it got (and how many of them
replayed), for these commands::

    <- {"cmd": "drop", "timeout": S}   every socket closes at once, from the client side
    -> {"event": "dropped", "closed": N, "seconds": ...}
    <- {"cmd": "reconnect", "resume": true, "timeout": S, "deadline": S, "concurrency": C}
    -> {"event": "reconnecting"}        every client connects again in the background; ours
                                        with ``since=<cursor>`` and subscribes with ``since``
    <- {"cmd": "progress"}           -> {"event": "progress", "live": N, "done": false, ...}
    <- {"cmd": "reconnected", "timeout": S}
    -> {"event": "reconnected", "ready": N, "failed": N, "seconds": ...}
    <- {"cmd": "delivery", "timeout": S, "settle": S, "published_at": T}
    -> {"event": "delivery", "missed": N, "duplicates": N, "replayed": N, ...}

Only loopback addresses are accepted as targets, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import resource
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

SENT_AT = re.compile(rb'"sent_at":\s*([0-9.]+)')
SEQ = re.compile(rb'"seq":\s*([0-9]+)')
ROOM_FRAME = re.compile(rb'"room":\s*"')
REPLAYED = re.compile(rb'"replayed":\s*true')
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DIALECTS = ("ours", "socketio", "bare")


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def hs256_token(secret: str, user_id: str, rooms: list[str], lifetime: float) -> str:
    """A JWT signed with HS256 (what the edge expects), built with the standard library."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    claims = {"sub": user_id, "exp": int(time.time() + lifetime), "rooms": rooms}
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), header + b"." + body, hashlib.sha256).digest()
    return (header + b"." + body + b"." + b64(signature)).decode()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client-to-server frame (RFC 6455 section 5.3)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    if not payload:
        return header + mask
    key = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    return header + mask + masked


class Stats:
    """What every socket of the process received, shared by all of them."""

    def __init__(self, track: bool = False) -> None:
        self.track = track
        self.reset()

    def reset(self, tag: str | None = None) -> None:
        # Only notifications carrying this tag count: frames of an earlier phase that a
        # system is still working off are counted apart, as stale.
        self.tag = tag.encode() if tag else None
        self.stale = 0
        self.frames = 0
        self.notifications = 0
        self.latencies_ms = array("d")
        self.first_recv = 0.0
        self.last_recv = 0.0
        self.closed_by_server: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.cpu_at_reset = time.process_time()
        self.reset_at = time.time()
        self.reached: asyncio.Event | None = None
        self.target = 0
        self.reached_clients = 0  # clients with at least one notification of the tag
        self.all_reached: asyncio.Event | None = None
        self.clients_target = 0

    def client_reached(self) -> None:
        self.reached_clients += 1
        if self.all_reached is not None and self.reached_clients >= self.clients_target:
            self.all_reached.set()

    def record(self, now: float, sent_at: float) -> None:
        self.notifications += 1
        self.latencies_ms.append((now - sent_at) * 1000.0)
        if not self.first_recv:
            self.first_recv = now
        self.last_recv = now
        if self.reached is not None and self.notifications >= self.target:
            self.reached.set()

    def summary(self, open_sockets: int) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else None

        elapsed = max(1e-9, time.time() - self.reset_at)
        return {
            "event": "stats",
            "frames": self.frames,
            "notifications": self.notifications,
            "stale": self.stale,
            "first_recv": self.first_recv or None,
            "last_recv": self.last_recv or None,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": ordered[-1] if ordered else None,
            "open": open_sockets,
            "closed_by_server": {str(k): v for k, v in self.closed_by_server.items()},
            "errors": dict(self.errors),
            "cpu_share": (time.process_time() - self.cpu_at_reset) / elapsed,
        }


class Seat:
    """One user of the load, across its connections (``--track``): its cursors, and how many
    notifications of the current tag it got, live or replayed."""

    __slots__ = ("cursor", "hits", "ready_at", "replayed", "room_cursor", "user_id")

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.cursor: int | None = None  # the greatest seq seen outside the room
        self.room_cursor: int | None = None  # the room's
        self.hits = 0
        self.replayed = 0
        self.ready_at = 0.0  # wall clock of the latest connection's readiness

    def seen(self, payload: bytes, hit: bool, stats: Stats) -> None:
        """A notification frame: move a cursor to its seq; count it if it has the tag."""
        match = SEQ.search(payload)
        if match is not None:
            seq = int(match[1])
            if ROOM_FRAME.search(payload) is not None:
                self.room_cursor = max(self.room_cursor or 0, seq)
            else:
                self.cursor = max(self.cursor or 0, seq)
        if hit:
            self.hits += 1
            if REPLAYED.search(payload) is not None:
                self.replayed += 1
            if self.hits == 1:
                stats.client_reached()

    def high_water(self, last_seq: int) -> None:
        """``replay_complete.last_seq``: the log's greatest seq when the replay was read. The
        first one is also where the room's cursor starts: the room was joined after it."""
        self.cursor = max(self.cursor or 0, last_seq)
        if self.room_cursor is None:
            self.room_cursor = last_seq


class Dialect:
    """How one protocol says hello, says it is ready, and wraps a notification."""

    name = "base"

    def __init__(self, room: str | None) -> None:
        self.room = room

    def path(self, user_id: str, token: str | None, since: int | None = None) -> str:
        """The handshake's path; ``since`` (a cursor to resume from) only where the protocol
        has one."""
        raise NotImplementedError

    def on_text(self, client: WsClient, payload: bytes) -> None:
        """A text frame that is not a notification (no ``sent_at``)."""


class Ours(Dialect):
    name = "ours"

    def path(self, user_id: str, token: str | None, since: int | None = None) -> str:
        query = {"user_id": user_id, "device_type": "bench"}
        if token is not None:
            query["token"] = token
        if since is not None:
            query["since"] = str(since)
        return "/ws/connect?" + urlencode(query)

    def on_text(self, client: WsClient, payload: bytes) -> None:
        if client.ready.done():
            return
        frame = json.loads(payload)
        kind = frame.get("type")
        if kind == "replay_complete":
            if client.stats.track:
                client.seat.high_water(int(frame["data"]["last_seq"]))
            if self.room is None:
                client.set_ready()
            else:
                subscribe: dict[str, Any] = {"action": "subscribe", "room": self.room}
                if client.resume and client.seat.room_cursor is not None:
                    subscribe["since"] = client.seat.room_cursor
                client.send_text(json.dumps(subscribe).encode())
        elif kind == "subscribed" and frame.get("room") == self.room:
            last_seq = frame.get("last_seq")
            if client.stats.track and last_seq is not None:
                seat = client.seat
                seat.room_cursor = max(seat.room_cursor or 0, int(last_seq))
            client.set_ready()
        elif kind == "error":
            client.fail(f"error frame: {frame.get('code')}")


class SocketIo(Dialect):
    name = "socketio"

    def path(self, user_id: str, token: str | None, since: int | None = None) -> str:
        query = {"EIO": "4", "transport": "websocket", "user_id": user_id}
        if self.room is not None:
            query["room"] = self.room
        return "/socket.io/?" + urlencode(query)

    def on_text(self, client: WsClient, payload: bytes) -> None:
        if payload == b"2":
            client.send_text(b"3")
        elif payload.startswith(b"0{"):
            client.send_text(b"40")
        elif payload.startswith(b"40"):
            client.set_ready()
        elif payload.startswith(b"44"):
            client.fail("namespace connect refused")


class Bare(Dialect):
    name = "bare"

    def path(self, user_id: str, token: str | None, since: int | None = None) -> str:
        query = {"user_id": user_id}
        if self.room is not None:
            query["room"] = self.room
        return "/?" + urlencode(query)

    def on_text(self, client: WsClient, payload: bytes) -> None:
        if b'"ready"' in payload:
            client.set_ready()


def dialect_for(name: str, room: str | None) -> Dialect:
    return {"ours": Ours, "socketio": SocketIo, "bare": Bare}[name](room)


class WsClient(asyncio.Protocol):
    """One client socket: handshake, then frames, all in ``data_received``."""

    __slots__ = (
        "_buffer",
        "_handshaking",
        "_request",
        "dialect",
        "ready",
        "resume",
        "seat",
        "stats",
        "transport",
    )

    def __init__(
        self, request: bytes, dialect: Dialect, stats: Stats, seat: Seat, resume: bool = False
    ) -> None:
        self._request = request
        self.dialect = dialect
        self.stats = stats
        self.seat = seat
        self.resume = resume  # a reconnect: subscribe with the room's cursor
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = b""
        self._handshaking = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(f"connection lost: {exc}" if exc else "connection closed")
        self.transport = None

    def set_ready(self) -> None:
        if not self.ready.done():
            self.seat.ready_at = time.time()
            self.ready.set_result(None)

    def fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_TEXT, payload))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if self._handshaking:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")].split(b" ", 2)
            if len(status) < 2 or status[1] != b"101":
                code = status[1].decode(errors="replace") if len(status) > 1 else "?"
                self.fail(f"handshake refused: HTTP {code}")
                assert self.transport is not None
                self.transport.close()
                return
            self._handshaking = False
            buffer = buffer[end + 4 :]
        now = time.time()
        stats = self.stats
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            length, start = b1 & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
            end = start + length
            if end > size:
                break
            pos = end
            stats.frames += 1
            opcode = b0 & 0x0F
            payload = buffer[start:end]
            if opcode == OP_TEXT:
                match = SENT_AT.search(payload)
                if match is not None:
                    hit = stats.tag is None or stats.tag in payload
                    if hit:
                        stats.record(now, float(match[1]))
                    else:
                        stats.stale += 1
                    if stats.track:
                        self.seat.seen(payload, hit, stats)
                else:
                    self.dialect.on_text(self, payload)
            elif opcode == OP_PING:
                assert self.transport is not None
                self.transport.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                stats.closed_by_server[close_code] += 1
                self.fail(f"closed by the server with {close_code}")
                self.close()
                self._buffer = b""
                return
        self._buffer = buffer[pos:] if pos < size else b""


class LoadClient:
    """Many ``WsClient`` sockets against one server, sharing one ``Stats``."""

    def __init__(
        self,
        host: str,
        port: int,
        dialect: Dialect,
        sources: list[str],
        secret: str | None,
        track: bool = False,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise SystemExit(f"refusing a non-loopback target {host}: load stays on 127.0.0.0/8")
        self.host = host
        self.port = port
        self.dialect = dialect
        self.sources = sources
        self.secret = secret
        self.stats = Stats(track)
        self.seats: list[Seat] = []
        self.clients: list[WsClient] = []
        self.failures: Counter[str] = Counter()
        self.reconnecting: asyncio.Task[float] | None = None

    def request(self, user_id: str, since: int | None = None) -> bytes:
        token = None
        if self.secret is not None:
            rooms = [self.dialect.room] if self.dialect.room else []
            token = hs256_token(self.secret, user_id, rooms, lifetime=3600)
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET {self.dialect.path(user_id, token, since)} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def connect_one(self, index: int, seat: Seat, timeout: float, resume: bool) -> None:
        loop = asyncio.get_running_loop()
        source = self.sources[index % len(self.sources)]
        request = self.request(seat.user_id, seat.cursor if resume else None)

        def factory() -> WsClient:
            return WsClient(request, self.dialect, self.stats, seat, resume)

        try:
            async with asyncio.timeout(timeout):
                _transport, client = await loop.create_connection(
                    factory, self.host, self.port, local_addr=(source, 0)
                )
                try:
                    await client.ready
                except BaseException:
                    client.close()
                    raise
            self.clients.append(client)
        except TimeoutError:
            self.failures["timeout"] += 1
        except (OSError, ConnectionError) as exc:
            self.failures[str(exc)[:80]] += 1

    async def connect(
        self,
        seats: list[Seat],
        concurrency: int,
        timeout: float,
        deadline: float,
        resume: bool = False,
    ) -> None:
        """Open one socket per seat, ``concurrency`` handshakes in flight at most; with
        ``resume``, from the seat's cursors."""
        pending = iter(enumerate(seats))

        async def worker() -> None:
            for index, seat in pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.failures["connect phase deadline"] += 1
                    continue
                await self.connect_one(index, seat, min(timeout, left), resume)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    @property
    def open_sockets(self) -> int:
        return sum(1 for c in self.clients if c.transport is not None)

    async def wait_for(self, count: int, timeout: float) -> None:
        """Until ``count`` notifications arrived since the last reset, or ``timeout``."""
        stats = self.stats
        stats.target = count
        stats.reached = asyncio.Event()
        if stats.notifications >= count:
            stats.reached.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await stats.reached.wait()
        stats.reached = None

    def close_all(self) -> None:
        for client in self.clients:
            client.close()

    def reset(self, tag: str | None) -> None:
        self.stats.reset(tag)
        for seat in self.seats:
            seat.hits = seat.replayed = 0

    async def drop(self, timeout: float) -> dict[str, Any]:
        """Close every socket at once (a close frame, then the TCP close), and wait, at most
        ``timeout``, until they are all gone."""
        started = time.monotonic()
        clients, self.clients = self.clients, []
        for client in clients:
            client.close()
        for _ in range(max(1, int(timeout / 0.02))):
            if all(c.transport is None for c in clients):
                break
            await asyncio.sleep(0.02)
        return {
            "event": "dropped",
            "dropped": len(clients),
            "still_open": sum(1 for c in clients if c.transport is not None),
            "seconds": time.monotonic() - started,
        }

    def reconnect(self, resume: bool, concurrency: int, timeout: float, deadline: float) -> None:
        """Connect every seat again, in the background; ``progress`` and ``reconnected`` tell
        how far it got."""
        self.failures = Counter()
        for seat in self.seats:
            seat.ready_at = 0.0
        started = time.monotonic()

        async def run() -> float:
            await self.connect(self.seats, concurrency, timeout, started + deadline, resume)
            return time.monotonic() - started

        self.reconnecting = asyncio.create_task(run())

    def progress(self) -> dict[str, Any]:
        task = self.reconnecting
        return {
            "event": "progress",
            "live": len(self.clients),
            "failed": sum(self.failures.values()),
            "done": task is None or task.done(),
        }

    async def reconnected(self, timeout: float) -> dict[str, Any]:
        seconds = None
        if self.reconnecting is not None:
            with contextlib.suppress(TimeoutError):
                seconds = await asyncio.wait_for(asyncio.shield(self.reconnecting), timeout)
        return {
            "event": "reconnected",
            "ready": len(self.clients),
            "failed": sum(self.failures.values()),
            "failures": dict(self.failures.most_common(5)),
            "seconds": seconds,
            "last_ready": max((seat.ready_at for seat in self.seats), default=0.0) or None,
        }

    async def delivery(
        self, timeout: float, settle: float, published_at: float | None
    ) -> dict[str, Any]:
        """Wait, at most ``timeout``, until every seat got a notification of the tag, then
        ``settle`` seconds more for any second copy; count who got none, and the extra
        copies."""
        stats, seats = self.stats, self.seats
        stats.clients_target = len(seats)
        stats.all_reached = asyncio.Event()
        if stats.reached_clients >= len(seats):
            stats.all_reached.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await stats.all_reached.wait()
        stats.all_reached = None
        await asyncio.sleep(settle)
        got = sum(1 for seat in seats if seat.hits)
        return {
            "event": "delivery",
            "clients": len(seats),
            "got": got,
            "missed": len(seats) - got,
            "duplicates": sum(seat.hits - 1 for seat in seats if seat.hits > 1),
            "replayed": sum(seat.replayed for seat in seats),
            "live": sum(seat.hits - seat.replayed for seat in seats),
            "ready_at_publish": None
            if published_at is None
            else sum(1 for seat in seats if 0 < seat.ready_at <= published_at),
            "stale": stats.stale,
            "last_recv": stats.last_recv or None,
            "open": self.open_sockets,
        }


def pin_to(cpus: set[int]) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus)


async def serve_commands(client: LoadClient, emit: Callable[[dict[str, Any]], None]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command.get("cmd")
        if name == "reset":
            client.reset(command.get("tag"))
            emit({"event": "reset"})
        elif name == "wait":
            await client.wait_for(int(command["count"]), float(command["timeout"]))
            emit(client.stats.summary(client.open_sockets))
        elif name == "stats":
            emit(client.stats.summary(client.open_sockets))
        elif name == "drop":
            emit(await client.drop(float(command.get("timeout", 10))))
        elif name == "reconnect":
            client.reconnect(
                bool(command.get("resume", True)),
                int(command.get("concurrency", 200)),
                float(command.get("timeout", 60)),
                float(command.get("deadline", 600)),
            )
            emit({"event": "reconnecting"})
        elif name == "progress":
            emit(client.progress())
        elif name == "reconnected":
            emit(await client.reconnected(float(command["timeout"])))
        elif name == "delivery":
            published_at = command.get("published_at")
            emit(
                await client.delivery(
                    float(command["timeout"]),
                    float(command.get("settle", 1.0)),
                    None if published_at is None else float(published_at),
                )
            )
        elif name == "quit":
            break
    if client.reconnecting is not None:
        client.reconnecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await client.reconnecting
    client.close_all()
    await asyncio.sleep(0.2)  # let the close frames leave before the process exits


async def main_async(args: argparse.Namespace) -> None:
    def emit(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    limit = raise_open_files_limit()
    sources = [f"127.0.0.{2 + i}" for i in range(args.sources)]
    client = LoadClient(
        args.host, args.port, dialect_for(args.dialect, args.room), sources, args.secret, args.track
    )
    client.seats = [
        Seat(f"{args.user_prefix}{args.user_start + i}") for i in range(args.connections)
    ]
    started = time.monotonic()
    await client.connect(
        client.seats, args.concurrency, args.connect_timeout, started + args.connect_deadline
    )
    emit(
        {
            "event": "connected",
            "ready": len(client.clients),
            "failed": sum(client.failures.values()),
            "failures": dict(client.failures.most_common(5)),
            "seconds": time.monotonic() - started,
            "nofile": limit,
        }
    )
    await serve_commands(client, emit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dialect", choices=DIALECTS, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--user-prefix", default="bench-u")
    parser.add_argument("--user-start", type=int, default=0)
    parser.add_argument("--room", help="join this room on connect")
    parser.add_argument("--secret", help="HS256 secret: sign a token per user (ours)")
    parser.add_argument("--sources", type=int, default=8, help="loopback source addresses")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="per socket")
    parser.add_argument("--connect-deadline", type=float, default=600.0, help="all sockets")
    parser.add_argument("--cpu", type=int, action="append", help="pin to this CPU")
    parser.add_argument(
        "--track", action="store_true", help="keep each client's cursors and tagged copies"
    )
    args = parser.parse_args()
    if args.cpu:
        pin_to(set(args.cpu))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
