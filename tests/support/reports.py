"""Watching the edges' node reports on their fanout exchange: a test awaits the report that
shows what it expects instead of polling an endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType

from producers import topology

Reports = dict[str, dict[str, Any]]


async def wait_for_reports(
    amqp: AbstractRobustConnection, done: Callable[[Reports], bool], timeout: float = 15.0
) -> Reports:
    """Collect each node's latest report until ``done(reports)`` holds."""
    seen: Reports = {}
    finished = asyncio.Event()
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        topology.EDGE_STATS_EXCHANGE, ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange)

    async def on_report(message: AbstractIncomingMessage) -> None:
        report = orjson.loads(message.body)
        seen[report["node_id"]] = report
        if done(seen):
            finished.set()

    await queue.consume(on_report, no_ack=True)
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    finally:
        await channel.close()
    return seen


def connections_are(expected: list[int]) -> Callable[[Reports], bool]:
    """Reports from exactly len(expected) nodes, with these connection counts."""
    return lambda seen: sorted(r["connections"] for r in seen.values()) == sorted(expected)


def node_has(node_id: str, connections: int) -> Callable[[Reports], bool]:
    return lambda seen: node_id in seen and seen[node_id]["connections"] == connections
