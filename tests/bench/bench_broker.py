"""Broker benchmark (not collected by pytest): queue bindings per second as an edge makes and
removes them, and confirmed publishes per second to the delivery exchange with N bindings.

    python -m tests.bench.bench_broker [--bindings 2000,10000,100000] [--messages 20000]
                                       [--edges 4] [--edge-keys 5000]

Everything happens in a RabbitMQ virtual host of the benchmark's own (removed at the end),
traffic to the local broker only. One edge queue is made by the edge's own broker code
(``socket_edge.broker.EdgeBroker``: its exclusive queue on ``notifications.deliver``, bound to
``broadcast``, consumed without acks by a callback that only counts). Then, for each binding
count N in turn (cumulative: the keys of the step before stay bound):

1. **bind, batched**: the new ``user.<id>`` keys are asked for all at once, as a reconnect
   storm does; the edge sends them as no-wait binds in batches, one round trip per batch;
2. **bind, one at a time**: 1,000 keys awaited one after the other, as users joining a quiet
   edge do (one batch, one round trip, each);
3. **publish, aio-pika**: ``--messages`` notifications to keys bound on the queue (random),
   persistent, on a confirming channel, ``asyncio.gather`` over ``exchange.publish`` 500 in
   flight at a time, as the producer benchmark's bare loop does;
4. **publish, the dispatcher's route**: the same messages through
   ``dispatcher.routing.DeliveryRoute`` (transient, as the dispatcher sends deliveries;
   batches of 200 written at once, their confirms awaited before the next round of ten);
5. **unbind**: 1,000 keys one after the other, as an edge drops lingering keys (AMQP has no
   no-wait unbind), then bound again (not timed) so that N stays N.

Before them, **bind, several edges at once**: one fresh edge binds ``--edges`` x ``--edge-keys``
keys, then ``--edges`` more edge queues, each made by its own
``EdgeBroker`` on its own connection, bind ``--edge-keys`` keys each, all at the same time (a
reconnect storm spread over several edges); the rate is all their keys over the time until
the last edge has them. Their queues go with their connections; the next measurement waits
until RabbitMQ has removed their bindings (an edge's bindings are removed with its queue, and
binds made meanwhile wait behind that).

Each publish row counts the time until every confirm is in; the edge's consumer shares this
process and its core with the publisher, as an edge shares its core with nothing else: the
publish figures are therefore a lower bound of what a separate producer gets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field

import aio_pika
import orjson

from dispatcher.records import Delivery
from dispatcher.routing import DeliveryRoute
from producers import topology
from producers.settings import DEFAULT_AMQP_URL
from socket_edge.broker import Delivery as EdgeDelivery
from socket_edge.broker import EdgeBroker
from tests.support.services import own_vhost

SINGLE = 1_000  # keys bound, and unbound, one at a time at each step
IN_FLIGHT = 500  # aio-pika publishes awaited together
ROUTE_BATCH = 200  # the dispatcher's batch


@dataclass
class Step:
    bindings: int
    bind_batched: float = 0.0
    bind_single: float = 0.0
    publish_pika: float = 0.0
    publish_route: float = 0.0
    unbind: float = 0.0
    delivered: int = 0
    notes: list[str] = field(default_factory=list)


def body(i: int) -> bytes:
    """A notification frame of the usual size (about 400 bytes)."""
    return orjson.dumps(
        {
            "type": "notification",
            "id": str(uuid.uuid4()),
            "seq": i,
            "notification_type": "payment_received",
            "category": "payment",
            "priority": "normal",
            "title": "Payment received",
            "message": "We received your payment of 120.00 for booking b123 by card.",
            "data": {"booking_id": f"b{i}", "amount": "120.00", "payment_method": "card"},
            "created_at": "2026-12-04T10:00:00+00:00",
        }
    )


async def rate(count: int, work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return count / (time.perf_counter() - started)


async def publish_pika(amqp_url: str, keys: list[str], bodies: list[bytes]) -> float:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await topology.declare_deliver_exchange(channel)
        started = time.perf_counter()
        for i in range(0, len(bodies), IN_FLIGHT):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            b,
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            headers={topology.SEQ_HEADER: i + j},
                        ),
                        keys[i + j],
                    )
                    for j, b in enumerate(bodies[i : i + IN_FLIGHT])
                )
            )
        return len(bodies) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def publish_route(amqp_url: str, keys: list[str], bodies: list[bytes]) -> float:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare_deliver_exchange(channel)
        route = DeliveryRoute(channel)
        deliveries = [
            Delivery(i + 1, k, b) for i, (k, b) in enumerate(zip(keys, bodies, strict=True))
        ]
        started = time.perf_counter()
        for i in range(0, len(deliveries), ROUTE_BATCH * 10):
            sent = [
                await route.send(deliveries[j : j + ROUTE_BATCH])
                for j in range(i, min(i + ROUTE_BATCH * 10, len(deliveries)), ROUTE_BATCH)
            ]
            for confirms in sent:
                await confirms.wait()
        return len(deliveries) / (time.perf_counter() - started)
    finally:
        await connection.close()


async def nothing() -> None:
    return None


async def several_edges(amqp_url: str, edges: int, keys: int) -> float:
    """Keys bound per second by ``edges`` edges binding ``keys`` keys each at once."""
    brokers = [EdgeBroker(amqp_url, f"bench-{uuid.uuid4().hex[:6]}") for _ in range(edges)]
    try:
        for broker in brokers:
            await broker.start(lambda _: None, lambda: None, nothing)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                broker.bind(f"{topology.USER_PREFIX}edge{e}-{i}")
                for e, broker in enumerate(brokers)
                for i in range(keys)
            )
        )
        return edges * keys / (time.perf_counter() - started)
    finally:
        for broker in brokers:
            await broker.close()
        await settled(amqp_url)


async def settled(amqp_url: str) -> None:
    """Return once a bind on a fresh queue answers within 50 ms (at most after 120 s):
    RabbitMQ has finished removing the bindings of the queues just deleted."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await topology.declare_deliver_exchange(channel)
        queue = await channel.declare_queue(exclusive=True)
        deadline = time.perf_counter() + 120
        for i in itertools.count():
            started = time.perf_counter()
            await queue.bind(exchange, f"settled.{i}")
            if time.perf_counter() - started < 0.05 or started > deadline:
                return
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def run(amqp_url: str, ladder: list[int], messages: int) -> list[Step]:
    delivered = 0
    target = 0
    all_in = asyncio.Event()

    def on_delivery(_: EdgeDelivery) -> None:
        nonlocal delivered
        delivered += 1
        if delivered >= target:
            all_in.set()

    edge = EdgeBroker(amqp_url, f"bench-{uuid.uuid4().hex[:6]}")
    await edge.start(on_delivery, lambda: None, nothing)
    bound: list[str] = []
    steps = []
    try:
        for n in ladder:
            step = Step(n)
            new = [f"{topology.USER_PREFIX}bench-{i}" for i in range(len(bound), n)]
            single, batched = new[:SINGLE], new[SINGLE:]
            if batched:
                step.bind_batched = await rate(
                    len(batched), asyncio.gather(*(edge.bind(k) for k in batched))
                )
            started = time.perf_counter()
            for key in single:
                await edge.bind(key)
            step.bind_single = len(single) / (time.perf_counter() - started)
            bound.extend(new)
            rng = random.Random(n)
            keys = [rng.choice(bound) for _ in range(messages)]
            bodies = [body(i) for i in range(messages)]
            before = delivered
            target = before + 2 * messages
            all_in.clear()
            step.publish_pika = await publish_pika(amqp_url, keys, bodies)
            step.publish_route = await publish_route(amqp_url, keys, bodies)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 60)
            step.delivered = delivered - before
            gone = rng.sample(bound, SINGLE)
            started = time.perf_counter()
            for key in gone:
                await edge.unbind(key)
            step.unbind = SINGLE / (time.perf_counter() - started)
            await asyncio.gather(*(edge.bind(k) for k in gone))
            steps.append(step)
            print(report_line(step, messages), file=sys.stderr, flush=True)
    finally:
        await edge.close()
    return steps


def report_line(s: Step, messages: int) -> str:
    return (
        f"| {s.bindings:,} | {s.bind_batched:,.0f} | {s.bind_single:,.0f} | {s.unbind:,.0f} "
        f"| {s.publish_pika:,.0f} | {s.publish_route:,.0f} | {s.delivered:,} of {2 * messages:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bindings", default="2000,10000,100000")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=4)
    parser.add_argument("--edge-keys", type=int, default=5_000)
    args = parser.parse_args()
    ladder = sorted(int(n) for n in args.bindings.split(","))
    if ladder[0] < 2 * SINGLE:
        parser.error(f"every binding count must be at least {2 * SINGLE}")
    with own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)) as amqp_url:
        # First, on a broker with none of this run's bindings: an edge that goes takes its
        # bindings with it, and RabbitMQ removing 100,000 of them slows every bind meanwhile.
        total = args.edges * args.edge_keys
        alone = asyncio.run(several_edges(amqp_url, 1, total))
        together = asyncio.run(several_edges(amqp_url, args.edges, args.edge_keys))
        steps = asyncio.run(run(amqp_url, ladder, args.messages))
    print(
        f"python -m tests.bench.bench_broker --bindings {args.bindings} --messages {args.messages} "
        f"--edges {args.edges} --edge-keys {args.edge_keys}"
    )
    print(
        "| bindings on the queue | bind batched /s | bind one at a time /s | unbind /s "
        "| publish aio-pika persistent confirmed /s | publish dispatcher route confirmed /s "
        "| delivered |"
    )
    print("|--:|--:|--:|--:|--:|--:|--|")
    for step in steps:
        print(report_line(step, args.messages))
    print(f"bind batched, 1 fresh edge, {total:,} keys: {alone:,.0f} keys/s")
    print(
        f"bind batched, {args.edges} fresh edges at once, {args.edge_keys:,} keys each: "
        f"{together:,.0f} keys/s"
    )


if __name__ == "__main__":
    main()
