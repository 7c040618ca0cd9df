"""The limit: a bare ``websockets`` server fed by an aio-pika consumer.

No application around it: a socket registers under its user and its room (from the query
string), and every message of the feed is handed as it is to ``websockets.broadcast`` for the
sockets of its routing key (``room.<name>`` or ``user.<id>``). That is about as little work as
Python can do per frame, so it is the ceiling the edge is measured against.

    python -m tests.bench.peers.bare_limit serve --port 8002 --amqp URL [--reuse-port]
    python -m tests.bench.peers.bare_limit emit --amqp URL --kind room --count 50 --rate 0
    python -m tests.bench.peers.bare_limit emit --amqp URL --kind room --count 1 --gate
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from websockets.asyncio.server import ServerConnection, broadcast, serve

from tests.bench.peers.pacing import armed, paced, report, target

EXCHANGE = "bench.limit"
READY = '{"type":"ready"}'


class Hub:
    """Sockets by routing key."""

    def __init__(self) -> None:
        self.sockets: defaultdict[str, set[ServerConnection]] = defaultdict(set)

    async def handler(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        query = parse_qs(urlsplit(websocket.request.path).query)
        keys = [f"user.{u}" for u in query.get("user_id", [])]
        keys += [f"room.{r}" for r in query.get("room", [])]
        for key in keys:
            self.sockets[key].add(websocket)
        try:
            await websocket.send(READY)
            await websocket.wait_closed()
        finally:
            for key in keys:
                members = self.sockets[key]
                members.discard(websocket)
                if not members:
                    del self.sockets[key]

    def on_message(self, message: AbstractIncomingMessage) -> None:
        members = self.sockets.get(message.routing_key or "")
        if members:
            broadcast(members, message.body.decode())


async def run_server(port: int, amqp_url: str, reuse_port: bool) -> None:
    hub = Hub()
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")

    async def consume(message: AbstractIncomingMessage) -> None:
        hub.on_message(message)

    await queue.consume(consume, no_ack=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        hub.handler,
        "127.0.0.1",
        port,
        compression=None,
        reuse_port=reuse_port,
        backlog=4096,
    ):
        print(f"limit ready on port {port} (pid {os.getpid()})", flush=True)
        await stop.wait()
    await connection.close()


async def run_emitter(args: argparse.Namespace) -> None:
    connection = await aio_pika.connect(args.amqp)
    first = 0.0
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC)

        async def send(indexes: range) -> None:
            nonlocal first
            now = time.time()
            first = first or now
            publishes = []
            for i in indexes:
                to = target(args.kind, i, args.room, args.user_prefix, args.users)
                body = {"type": "notification", "data": {"n": i, "tag": args.tag, "sent_at": now}}
                publishes.append(
                    exchange.publish(
                        aio_pika.Message(json.dumps(body).encode()),
                        routing_key=f"{args.kind}.{to}",
                    )
                )
            await asyncio.gather(*publishes)

        if args.gate:
            await armed()
        seconds = await paced(args.count, args.rate, send)
        report(args.count, seconds, first)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve")
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--amqp", required=True)
    server.add_argument("--reuse-port", action="store_true")
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
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        if args.command == "serve":
            runner.run(run_server(args.port, args.amqp, args.reuse_port))
        else:
            runner.run(run_emitter(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
