"""The peer: python-socketio 5 (``AsyncServer`` with ``AsyncAioPikaManager``) under uvicorn.

A client names its user and room in the query string and joins ``user:<id>`` and
``room:<name>`` on connect. A write-only ``AsyncAioPikaManager`` in another process emits
``notification`` events to a room or a user's room; every server consumes them from the
manager's fanout exchange and emits them to its local sockets.

    python -m tests.bench.peers.socketio_peer serve --port 8001 --amqp URL [--workers 2]
    python -m tests.bench.peers.socketio_peer emit --amqp URL --kind room --count 50 --rate 0
    python -m tests.bench.peers.socketio_peer emit --amqp URL --kind room --count 1 --gate

Runs only in the bench virtualenv, where python-socketio is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from typing import Any
from urllib.parse import parse_qs

import socketio  # type: ignore[import-not-found, unused-ignore]
import uvicorn

from tests.bench.peers.pacing import armed, paced, report, target

CHANNEL = "bench.socketio"
AMQP_ENV = "BENCH_PEER_AMQP_URL"


def create_app() -> Any:
    """The ASGI app (a factory, so that ``--workers`` can import it in each process)."""
    manager = socketio.AsyncAioPikaManager(os.environ[AMQP_ENV], channel=CHANNEL)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, transports=["websocket"])

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        for user in query.get("user_id", []):
            await sio.enter_room(sid, f"user:{user}")
        for room in query.get("room", []):
            await sio.enter_room(sid, f"room:{room}")

    sio.on("connect", connect)
    return socketio.ASGIApp(sio)


def serve(port: int, amqp_url: str, workers: int) -> None:
    os.environ[AMQP_ENV] = amqp_url
    uvicorn.run(
        "tests.bench.peers.socketio_peer:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        # The same server settings as the edge: sans-I/O websockets, no compression.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        access_log=False,
        backlog=4096,
        log_level="info",
    )


async def run_emitter(args: argparse.Namespace) -> None:
    manager = socketio.AsyncAioPikaManager(args.amqp, channel=CHANNEL, write_only=True)
    first = 0.0

    async def send(indexes: range) -> None:
        nonlocal first
        now = time.time()
        first = first or now
        emits = []
        for i in indexes:
            to = target(args.kind, i, args.room, args.user_prefix, args.users)
            emits.append(
                manager.emit(
                    "notification",
                    {"n": i, "tag": args.tag, "sent_at": now},
                    room=f"{args.kind}:{to}",
                )
            )
        await asyncio.gather(*emits)

    if args.gate:
        await armed()
    seconds = await paced(args.count, args.rate, send)
    report(args.count, seconds, first)
    if manager.publisher_connection is not None:
        await manager.publisher_connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--amqp", required=True)
    server.add_argument("--workers", type=int, default=1)
    emitter = commands.add_parser("emit")
    emitter.add_argument("--amqp", required=True)
    emitter.add_argument("--kind", choices=("room", "user"), required=True)
    emitter.add_argument("--room", default="bench-room")
    emitter.add_argument("--user-prefix", default="bench-u")
    emitter.add_argument("--users", type=int, default=1)
    emitter.add_argument("--count", type=int, required=True)
    emitter.add_argument("--rate", type=float, default=0.0)
    emitter.add_argument("--tag", default="", help="marks this phase's messages")
    emitter.add_argument("--gate", action="store_true", help="publish on a line on stdin")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.amqp, args.workers)
        return
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(run_emitter(args))


if __name__ == "__main__":
    main()
