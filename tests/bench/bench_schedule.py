"""Scheduled notifications, measured (not collected by pytest): how late after its
``deliver_at`` each one is routed, with one or more dispatchers.

    python -m tests.bench.bench_schedule --notifications 2000 --spread 20 --dispatchers 1,2

For each dispatcher count, in a RabbitMQ virtual host and a database of the benchmark's own
(both removed at the end): that many ``notify dispatcher`` processes; ``--notifications``
personal notifications, each for a user of its own, scheduled at instants spread evenly over
the ``--spread`` seconds after a lead long enough to publish them all; a queue of the
benchmark's own on the delivery exchange (bound to ``user.#``) notes when each is routed.
Reported: how late each was routed after its ``deliver_at`` (p50, p99, max), any routed
early, and the count routed twice or not at all (both must be 0). Every process started is
stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, Settings, async_database_url
from tests.support.processes import NotifyProcess, start_dispatcher
from tests.support.services import create_database, drop_database, own_vhost

LEAD = 3.0  # seconds before the first deliver_at, plus PUBLISH_ALLOWANCE per notification
PUBLISH_ALLOWANCE = 0.004
GRACE = 30.0  # after the last deliver_at, for the stragglers


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_run(
    amqp_url: str, database_url: str, count: int, spread: float, procs: int
) -> dict[str, Any]:
    env = {"DATABASE_URL": database_url, "AMQP_URL": amqp_url}
    routed: dict[str, list[float]] = {}
    connection = await aio_pika.connect_robust(amqp_url)
    started: list[NotifyProcess] = []
    try:
        channel = await connection.channel()
        exchange = await topology.declare_deliver_exchange(channel)
        queue = await channel.declare_queue(
            f"bench-schedule-{uuid.uuid4().hex[:8]}", exclusive=True
        )
        await queue.bind(exchange, "user.#")
        everything = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            at = time.time()
            frame = orjson.loads(message.body)
            if frame.get("type") == "notification":
                routed.setdefault(str(frame["id"]), []).append(at)
                if len(routed) == count:
                    everything.set()
            await message.ack()

        await queue.consume(on_message)
        for _ in range(procs):
            started.append(await start_dispatcher(env))
        service = NotificationService(
            Publisher(Settings(amqp_url=amqp_url), name="bench-schedule"), producer="bench"
        )
        due: dict[str, datetime] = {}
        try:
            first = datetime.now(UTC) + timedelta(seconds=LEAD + PUBLISH_ALLOWANCE * count)
            for i in range(count):
                deliver_at = first + timedelta(seconds=spread * i / max(1, count - 1))
                event_id = await service.notify(
                    "chat_message",
                    user_id=f"bench-{i}",
                    data={"conversation_id": "c1", "sender_id": "guide-1", "preview": "see you"},
                    deliver_at=deliver_at,
                )
                due[str(event_id)] = deliver_at
        finally:
            await service.close()
        published_by = datetime.now(UTC)
        deadline = (first + timedelta(seconds=spread) - datetime.now(UTC)).total_seconds() + GRACE
        try:
            async with asyncio.timeout(max(deadline, 1.0)):
                await everything.wait()
        except TimeoutError:
            pass
    finally:
        for proc in started:
            await proc.stop()
        await connection.close()
    late = [routed[i][0] - due[i].timestamp() for i in due if i in routed]
    return {
        "dispatchers": procs,
        "notifications": count,
        "publishing_ended_before_first_due_s": round((first - published_by).total_seconds(), 2),
        "late_p50_ms": round(statistics.median(late) * 1000, 1) if late else None,
        "late_p99_ms": round(percentile(late, 0.99) * 1000, 1) if late else None,
        "late_max_ms": round(max(late) * 1000, 1) if late else None,
        "early": sum(1 for value in late if value < 0),
        "missing": sum(1 for i in due if i not in routed),
        "twice": sum(1 for times in routed.values() if len(times) > 1),
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for procs in [int(n) for n in args.dispatchers.split(",")]:
        with own_vhost(args.amqp_url) as amqp_url:
            database_url = await create_database(async_database_url(args.database_url))
            try:
                result = await one_run(
                    amqp_url, database_url, args.notifications, args.spread, procs
                )
            finally:
                await drop_database(database_url)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds the due times cover")
    parser.add_argument("--dispatchers", default="1,2", help="comma-separated process counts")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    outcome = asyncio.run(main(parser.parse_args()))
    sys.exit(0 if all(r["missing"] == 0 and r["twice"] == 0 for r in outcome) else 1)
