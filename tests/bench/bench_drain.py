"""The drain on SIGTERM, measured (not collected by pytest): N sockets on one edge, a second
edge they reconnect to, the first one stopped with SIGTERM.

    python -m tests.bench.bench_drain --clients 10000 --windows 0,10 [--json PATH]

For each drain window (``EDGE_DRAIN_SECONDS``), two fresh edges in a RabbitMQ virtual host and a
database of the benchmark's own (both removed at the end): the draining one, with the clients
and this script, on CPU 0, the survivor alone on CPU 1. N clients connect to the draining edge
(200 handshakes in flight) and wait for ``replay_complete``; the edge gets SIGTERM; each client,
the moment its socket is closed, reconnects to the survivor with ``since`` = its cursor, at
once (no backoff: the worst case; a client whose handshake fails tries again after 0.5 to 1.5
s), and is back at its ``replay_complete``. Reported: the codes and the spread of the closes,
the survivor's completed handshakes per second (the busiest second, and the mean over the
reconnect), seconds from the signal until the last client is back, each client's time away
(close to back: p50, p99, max), failed attempts, and the draining edge's exit status and time.

The clients are one small asyncio protocol per socket (no WebSocket library), spread over
loopback source addresses 127.0.0.2-9; every process started is stopped by its PID; traffic
stays on 127.0.0.0/8 and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, async_database_url
from socket_edge.ws_protocol import DRAIN_MARGIN
from tests.bench.bench_edge import pin, tree
from tests.bench.loadclient import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    hs256_token,
    raise_open_files_limit,
)
from tests.support.processes import NotifyProcess, free_port
from tests.support.services import create_database, drop_database, own_vhost

SOURCES = [f"127.0.0.{2 + i}" for i in range(8)]
CONNECT_TIMEOUT = 60.0
DEADLINE = 300.0  # for every client to be back on the survivor
RETRIES = 20
LAST_SEQ = b'"last_seq":'


class Socket(asyncio.Protocol):
    """One client socket until it is closed: handshake, frames, pongs, the close code."""

    def __init__(self, request: bytes, seat: Seat) -> None:
        self.request = request
        self.seat = seat
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.handshaking = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before replay_complete"))
        if not self.gone.done():
            self.gone.set_result(1006)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if self.handshaking:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if buffer[9:12] != b"101":
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(f"HTTP {buffer[9:12].decode()}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.handshaking = False
            buffer = buffer[end + 4 :]
        pos = 0
        while len(buffer) - pos >= 2:
            length, start = buffer[pos + 1] & 0x7F, pos + 2
            if length == 126:
                if len(buffer) - pos < 4:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if len(buffer) - pos < 10:
                    break
                length, start = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), pos + 10
            if start + length > len(buffer):
                break
            opcode, payload = buffer[pos] & 0x0F, buffer[start : start + length]
            pos = start + length
            if opcode == OP_TEXT and b"replay_complete" in payload:
                tail = payload[payload.index(LAST_SEQ) + len(LAST_SEQ) :]
                self.seat.cursor = int(tail.split(b",")[0].split(b"}")[0])
                if not self.ready.done():
                    self.ready.set_result(None)
            elif opcode == OP_PING and self.transport is not None:
                self.transport.write(client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if not self.gone.done():
                    self.gone.set_result(code)
                if self.transport is not None:
                    self.transport.write(client_frame(OP_CLOSE, payload[:2]))
                    self.transport.close()
                return
        self.buffer = buffer[pos:]


class Seat:
    """One client: its user, its cursor, and the times of its close and of its return."""

    def __init__(self, user_id: str, index: int) -> None:
        self.user_id = user_id
        self.source = SOURCES[index % len(SOURCES)]
        self.cursor: int | None = None
        self.close_code: int | None = None
        self.closed_at = 0.0
        self.back_at = 0.0
        self.failed_attempts = 0
        self.socket: Socket | None = None

    def request(self, port: int, secret: str) -> bytes:
        token = hs256_token(secret, self.user_id, [], lifetime=3600)
        query = f"user_id={self.user_id}&token={token}"
        if self.cursor is not None:
            query += f"&since={self.cursor}"
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws/connect?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def connect(self, port: int, secret: str) -> bool:
        loop = asyncio.get_running_loop()
        request = self.request(port, secret)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, sock = await loop.create_connection(
                    lambda: Socket(request, self), "127.0.0.1", port, local_addr=(self.source, 0)
                )
                await sock.ready
        except (OSError, TimeoutError):
            self.failed_attempts += 1
            return False
        self.socket = sock
        return True

    async def roam(self, survivor: int, secret: str) -> None:
        """Wait for the close, then reconnect to the survivor until it works."""
        assert self.socket is not None
        self.close_code = await self.socket.gone
        self.closed_at = time.monotonic()
        for _ in range(RETRIES):
            if await self.connect(survivor, secret):
                self.back_at = time.monotonic()
                return
            await asyncio.sleep(random.uniform(0.5, 1.5))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def start_edge(env: dict[str, str], cpu: int) -> tuple[NotifyProcess, int]:
    port = free_port()
    edge = NotifyProcess(f"notify edge :{port}", ["edge", "--port", str(port)], env)
    await edge.start(" consuming ")
    pin(tree(edge.pid), {cpu})
    return edge, port


async def measure(
    window: float, clients: int, amqp_url: str, database_url: str, tag: str
) -> dict[str, Any]:
    secret = secrets.token_hex(24)
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "AUTH_JWT_SECRET": secret,
        "WEBSOCKET_MAX_CONNECTIONS": "20000",
        "WEBSOCKET_HANDSHAKES_PER_SECOND": "1000000",
        "EDGE_DRAIN_SECONDS": str(window),
        "LOG_LEVEL": "info",
    }
    draining, port = await start_edge(env, 0)
    survivor, survivor_port = await start_edge(env, 1)
    seats = [Seat(f"drain-{tag}-{window:g}-{i}", i) for i in range(clients)]
    roaming: list[asyncio.Task[None]] = []
    try:
        pending = iter(seats)

        async def worker() -> None:
            for seat in pending:
                await seat.connect(port, secret)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(200)))
        connected = [s for s in seats if s.socket is not None]
        connect_seconds = time.monotonic() - started
        roaming = [asyncio.create_task(s.roam(survivor_port, secret)) for s in connected]
        signalled = time.monotonic()
        os.kill(draining.pid, signal.SIGTERM)
        code = await draining.exited(timeout=window + DRAIN_MARGIN + 30)
        exit_seconds = time.monotonic() - signalled
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DEADLINE):
                await asyncio.gather(*roaming)
    finally:
        for task in roaming:
            task.cancel()
        await asyncio.gather(*roaming, return_exceptions=True)
        for seat in seats:
            if seat.socket is not None and seat.socket.transport is not None:
                seat.socket.transport.close()
        await draining.stop()
        await survivor.stop()
    back = [s for s in connected if s.back_at]
    closes = sorted(s.closed_at - signalled for s in connected if s.closed_at)
    returns = [s.back_at - signalled for s in back]
    buckets = Counter(int(r) for r in returns)
    last_back = max(returns, default=None)
    first_close = closes[0] if closes else 0.0
    return {
        "window_s": window,
        "clients": clients,
        "connected": len(connected),
        "connect_seconds": connect_seconds,
        "close_codes": dict(Counter(s.close_code for s in connected)),
        "first_close_s": closes[0] if closes else None,
        "last_close_s": closes[-1] if closes else None,
        "closes_busiest_second": max(Counter(int(c) for c in closes).values(), default=0),
        "draining_exit_code": code,
        "draining_exit_s": exit_seconds,
        "back": len(back),
        "survivor_handshakes_busiest_second": max(buckets.values(), default=0),
        "survivor_handshakes_mean_per_s": len(back) / max(1e-9, (last_back or 0) - first_close),
        "all_back_s": last_back,
        "away_p50_s": pct([s.back_at - s.closed_at for s in back], 50),
        "away_p99_s": pct([s.back_at - s.closed_at for s in back], 99),
        "away_max_s": max((s.back_at - s.closed_at for s in back), default=None),
        "failed_attempts": sum(s.failed_attempts for s in seats),
        "survivor_log_errors": [line for line in survivor.lines if "ERROR" in line][:5],
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| window | closes (first .. last, s) | busiest second of closes | survivor handshakes/s: "
        "busiest second, mean | all back after (s) | time away p50 / p99 / max (s) | failed "
        "attempts | draining edge: exit, after (s) |",
        "|--:|--|--:|--|--:|--|--:|--|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['window_s']:g} s | error: {r['error'][:200]} |")
            continue

        def f(value: Any, fmt: str = "{:.1f}") -> str:
            return "n/a" if value is None else fmt.format(value)

        lines.append(
            f"| {r['window_s']:g} s | {f(r['first_close_s'], '{:.2f}')} .. "
            f"{f(r['last_close_s'], '{:.2f}')} ({r['close_codes']}) | "
            f"{r['closes_busiest_second']:,} | {r['survivor_handshakes_busiest_second']:,}, "
            f"{r['survivor_handshakes_mean_per_s']:,.0f} | {f(r['all_back_s'])} | "
            f"{f(r['away_p50_s'], '{:.2f}')} / {f(r['away_p99_s'], '{:.2f}')} / "
            f"{f(r['away_max_s'], '{:.2f}')} | {r['failed_attempts']:,} | "
            f"{r['draining_exit_code']}, {r['draining_exit_s']:.1f} |"
        )
    return "\n".join(lines)


async def run(clients: int, windows: list[float]) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {0})
    raise_open_files_limit()
    tag = secrets.token_hex(3)
    rows = []
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    with own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)) as amqp_url:
        database_url = await create_database(db_base)
        try:
            for window in windows:
                print(f"-- drain window {window:g} s", file=sys.stderr, flush=True)
                try:
                    row = await measure(window, clients, amqp_url, database_url, tag)
                except (TimeoutError, RuntimeError, OSError) as exc:
                    row = {"window_s": window, "error": str(exc)[-2000:]}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
        finally:
            await drop_database(database_url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--windows", default="0,10", help="drain windows, seconds")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    windows = [float(w) for w in args.windows.split(",") if w]
    try:
        rows = asyncio.run(run(args.clients, windows))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
