"""Confirmed publishes per second from one process: the SDK batched (``publish_many``), the SDK
one call at a time (``notify_*`` awaited in turn), and a bare aio-pika loop with publisher
confirms, all in the same run, against the same broker, exchange and queue.

    python -m tests.bench.bench_publish [--events 10000] [--rounds 3]

Everything happens in a virtual host of its own, created with ``rabbitmqctl`` and deleted at
the end, so the run never touches another pipeline's queues. The dispatcher's quorum queue is
declared there as the SDK declares it (persistent messages, confirmed once on disk) and purged
after each measurement, so every round starts from an empty queue. The bare loop is aio-pika as
its documentation shows it: every message published at once with ``asyncio.gather`` over
``exchange.publish``, on a confirming channel. Both start from the same validated envelopes
and both encode them to JSON inside the measured time, as a producer must.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aio_pika

from producers import topology
from producers.envelope import Envelope
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import DEFAULT_AMQP_URL, Settings

ONE_BY_ONE_SHARE = 10  # one-by-one rounds publish a tenth of the events: they are slow


@contextmanager
def private_vhost(base_url: str) -> Iterator[str]:
    vhost = f"notify-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    try:
        subprocess.run(
            ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        yield base_url.rstrip("/") + "/" + vhost
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], check=False, capture_output=True)


@dataclass
class Rates:
    name: str
    per_second: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.per_second)


def envelopes(service: NotificationService, count: int) -> list[Envelope]:
    return [
        service.build(
            "booking_confirmed",
            user_id=f"bench-{i % 100}",
            data={"booking_id": f"b{i}", "tour_name": "Jerusalem Day Tour"},
        )
        for i in range(count)
    ]


async def purge(url: str, delivery_limit: int) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    queue = await topology.declare_dispatcher_queue(channel, delivery_limit)
    await queue.purge()
    await connection.close()


async def bare_loop(url: str, batch: list[Envelope]) -> float:
    """The bare aio-pika loop: seconds to publish and confirm the batch."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await topology.declare_events_exchange(channel)
    started = time.perf_counter()
    bodies = [(e.to_json(), e.routing_key, str(e.event_id)) for e in batch]
    await asyncio.gather(
        *(
            exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message_id,
                ),
                routing_key,
            )
            for body, routing_key, message_id in bodies
        )
    )
    elapsed = time.perf_counter() - started
    await connection.close()
    return elapsed


async def sdk_batched(service: NotificationService, batch: list[Envelope]) -> float:
    started = time.perf_counter()
    await service.publish_many(batch)
    return time.perf_counter() - started


async def sdk_one_by_one(service: NotificationService, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await service.notify_booking_confirmed(f"bench-{i % 100}", f"b{i}", "Jerusalem Day Tour")
    return time.perf_counter() - started


async def measure(
    url: str, settings: Settings, rates: Rates, count: int, run: Callable[[], Awaitable[float]]
) -> None:
    await purge(url, settings.dispatcher_delivery_limit)
    rates.per_second.append(count / await run())


async def bench(url: str, events: int, rounds: int) -> list[Rates]:
    settings = Settings(amqp_url=url, publish_timeout=60)
    service = NotificationService(Publisher(settings, name="bench"), producer="bench")
    await service.publisher.__aenter__()  # declares the queue, as every producer does
    batch = envelopes(service, events)
    few = events // ONE_BY_ONE_SHARE
    bare = Rates("bare aio-pika loop, confirms (gather)", [])
    batched = Rates("SDK publish_many", [])
    single = Rates("SDK notify_* one by one", [])
    try:
        for _ in range(rounds):
            await measure(url, settings, bare, events, lambda: bare_loop(url, batch))
            await measure(url, settings, batched, events, lambda: sdk_batched(service, batch))
            await measure(url, settings, single, few, lambda: sdk_one_by_one(service, few))
        await purge(url, settings.dispatcher_delivery_limit)
    finally:
        await service.close()
    return [bare, batched, single]


def report(results: list[Rates], events: int, rounds: int) -> str:
    bare, batched, _ = results
    lines = [f"{events} events a round ({events // ONE_BY_ONE_SHARE} one by one), {rounds} rounds"]
    lines.append(f"| {'method':<40} | median /s | rounds /s |")
    lines.append(f"|{'-' * 42}|-----------|-----------|")
    for rates in results:
        each = ", ".join(f"{r:.0f}" for r in rates.per_second)
        lines.append(f"| {rates.name:<40} | {rates.median:9.0f} | {each} |")
    lines.append(f"SDK batched / bare loop: {batched.median / bare.median:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    args = parser.parse_args()
    with private_vhost(args.amqp_url) as url:
        results = asyncio.run(bench(url, args.events, args.rounds))
    print(report(results, args.events, args.rounds))


if __name__ == "__main__":
    main()
