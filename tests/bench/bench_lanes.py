"""Routing lanes prototype (not collected by pytest): appends routed in log order under one
global routing lock, against the same work split into N lanes, each with its own advisory lock
and its own routed position, side by side in one run.

    python -m tests.bench.bench_lanes [--lanes 1,2,4,8] [--workers 4] [--events 20000] [--rounds 2]

Nothing of the product changes: the lanes live in two tables of the benchmark's own, in a
database of its own (created, migrated, dropped at the end), in a RabbitMQ virtual host of its
own (removed at the end). ``--workers`` tasks stand for that many dispatchers; each has its own
PostgreSQL connection and its own confirming channel with the dispatcher's
``dispatcher.routing.DeliveryRoute``. The work is ``--events`` ``payment_received`` events for
1,000 users, in batches of 200 (the dispatcher's), every batch of one lane (the lane of a user:
``crc32(user) mod N``; a lane is a stream of users whose frames keep their order). A worker
takes the next batch of a lane nobody else is working on, if there is one, and makes a turn:

1. ``pg_advisory_lock(K + lane)``;
2. in one transaction: the lane's head, the batch inserted into ``bench_lane_log`` with
   ``lane_seq`` = head + its position (a global ``seq`` identity column beside it, drawn with
   no table lock: in a lane design it orders nothing), the head moved up;
3. the deliveries sent (key ``user.<id>``, seq header = ``lane_seq``) and their confirms awaited;
4. one round trip: the lane's routed position moved up (without waiting for the disk, as the
   product's mark) and the lock released.

N = 1 is the single global order made the same way. Beside them, the product itself: the same
workers appending the same kind of batches through ``EventStore.append_and_route`` (the log,
the projections, the table lock, the routing lock) with the same route. A listener bound to
``user.#`` counts every delivery and the order violations in each lane (a lane_seq not above
the last one it had of that lane; for the product, a seq not above the last one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import zlib
from collections import deque
from dataclasses import dataclass, field

import aio_pika
import asyncpg
import orjson

from dispatcher.database import create_engine
from dispatcher.records import Delivery
from dispatcher.routing import DeliveryRoute
from dispatcher.store import EventStore
from producers import topology
from producers.envelope import Envelope
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, async_database_url
from tests.bench.bench_dispatcher import BATCH, USERS, envelope, pg_connect
from tests.support.services import create_database, drop_database, own_vhost

LOCK_KEY = 0x6C616E65000  # the lanes' advisory locks: LOCK_KEY + lane
PRODUCT = 0  # the product's row, in the listener's books

SCHEMA = """
CREATE TABLE bench_lane_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lane integer NOT NULL,
    lane_seq bigint NOT NULL,
    event_id uuid NOT NULL UNIQUE,
    user_id text NOT NULL,
    payload jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lane, lane_seq)
);
CREATE TABLE bench_lane_routing (
    lane integer PRIMARY KEY,
    head bigint NOT NULL DEFAULT 0,
    routed_seq bigint NOT NULL DEFAULT 0
);
"""

INSERT = """
INSERT INTO bench_lane_log (lane, lane_seq, event_id, user_id, payload)
SELECT $1, $2 + e.position, (r->>0)::uuid, r->>1, r->2
FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(r, position)
ORDER BY e.position
RETURNING lane_seq, user_id
"""


def lane_of(user_id: str, lanes: int) -> int:
    return zlib.crc32(user_id.encode()) % lanes


@dataclass
class Listener:
    """Counts deliveries and order violations per lane of the run under way."""

    lanes: int = 1
    received: int = 0
    violations: int = 0
    last: dict[int, int] = field(default_factory=dict)
    target: int = 0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, lanes: int, target: int) -> None:
        self.lanes, self.received, self.violations, self.last = lanes, 0, 0, {}
        self.target = target
        self.all_in.clear()

    def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seq = (message.headers or {}).get(topology.SEQ_HEADER)
        key = message.routing_key or ""
        lane = PRODUCT if self.lanes == PRODUCT else lane_of(key.removeprefix("user."), self.lanes)
        if not isinstance(seq, int):
            return
        if seq <= self.last.get(lane, 0):
            self.violations += 1
        self.last[lane] = seq
        self.received += 1
        if self.received >= self.target:
            self.all_in.set()


@dataclass
class Outcome:
    name: str
    per_second: float
    turns: int
    turn_ms: float  # mean turn, from asking for the lock to releasing it
    hold_ms: float | None  # mean time the lock was held (not known for the product's lock)
    busy: float  # this process's CPU time / wall time, from the first turn to the last
    received: int
    violations: int


class Lanes:
    """The work of one run, batches queued per lane; a worker takes a free lane's batch."""

    def __init__(self, envelopes: list[Envelope], lanes: int) -> None:
        per_lane: list[list[Envelope]] = [[] for _ in range(lanes)]
        for e in envelopes:
            assert e.user_id is not None
            per_lane[lane_of(e.user_id, lanes)].append(e)
        self.queues = [
            deque(part[i : i + BATCH] for i in range(0, len(part), BATCH)) for part in per_lane
        ]
        self.busy: set[int] = set()

    def take(self) -> tuple[int, list[Envelope]] | None:
        waiting = [lane for lane, q in enumerate(self.queues) if q]
        if not waiting:
            return None
        free = [lane for lane in waiting if lane not in self.busy]
        lane = free[0] if free else max(waiting, key=lambda n: len(self.queues[n]))
        self.busy.add(lane)
        return lane, self.queues[lane].popleft()


def frame(e: Envelope, lane_seq: int) -> bytes:
    return orjson.dumps(
        {
            "type": "notification",
            "id": str(e.event_id),
            "seq": lane_seq,
            "notification_type": e.notification_type.value,
            "data": e.data,
        }
    )


async def lane_worker(
    conn: asyncpg.Connection,
    route: DeliveryRoute,
    work: Lanes,
    turns: list[float],
    holds: list[float],
) -> None:
    while (job := work.take()) is not None:
        lane, batch = job
        try:
            asked = time.perf_counter()
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY + lane)
            held = time.perf_counter()
            async with conn.transaction():
                head = await conn.fetchval(
                    "SELECT head FROM bench_lane_routing WHERE lane = $1", lane
                )
                rows = orjson.dumps(
                    [[str(e.event_id), e.user_id, orjson.Fragment(e.to_json())] for e in batch]
                ).decode()
                inserted = await conn.fetch(INSERT, lane, head, rows)
                await conn.execute(
                    "UPDATE bench_lane_routing SET head = $2 WHERE lane = $1",
                    lane,
                    head + len(inserted),
                )
            deliveries = [
                Delivery(int(row["lane_seq"]), f"user.{row['user_id']}", frame(e, row["lane_seq"]))
                for row, e in zip(inserted, batch, strict=True)
            ]
            confirms = await route.send(deliveries)
            await confirms.wait()
            last = int(deliveries[-1].seq)
            await conn.execute(
                "BEGIN; SET LOCAL synchronous_commit TO OFF; "
                f"UPDATE bench_lane_routing SET routed_seq = {last} WHERE lane = {lane}; "
                f"COMMIT; SELECT pg_advisory_unlock({LOCK_KEY + lane});"
            )
            released = time.perf_counter()
            turns.append(released - asked)
            holds.append(released - held)
        finally:
            work.busy.discard(lane)


async def product_worker(
    store: EventStore, route: DeliveryRoute, work: Lanes, turns: list[float]
) -> None:
    while (job := work.take()) is not None:
        _, batch = job
        started = time.perf_counter()
        await store.append_and_route(batch, route)
        turns.append(time.perf_counter() - started)


async def wait_received(listener: Listener, timeout: float = 60) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.all_in.wait(), timeout)


async def one_run(
    lanes: int,
    workers: int,
    events: int,
    database_url: str,
    routes: list[DeliveryRoute],
    listener: Listener,
) -> Outcome:
    envelopes = [envelope(i) for i in range(events)]
    work = Lanes(envelopes, max(lanes, 1))
    turns: list[float] = []
    holds: list[float] = []  # from the lock taken to the lock released (not the product's)
    listener.reset(lanes, events)
    if lanes == PRODUCT:
        engine = create_engine(database_url, pool_size=workers, pre_ping=False)
        store = EventStore(engine, critical=frozenset())
        try:
            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.gather(*(product_worker(store, r, work, turns) for r in routes))
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            await engine.dispose()
        name = "the product: one routing lock, log + projections"
    else:
        conns = [await pg_connect(database_url) for _ in range(workers)]
        try:
            await conns[0].execute(
                "TRUNCATE bench_lane_routing; INSERT INTO bench_lane_routing (lane) "
                f"SELECT generate_series(0, {lanes - 1})"
            )
            await conns[0].execute("TRUNCATE bench_lane_log")
            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.gather(
                *(lane_worker(c, r, work, turns, holds) for c, r in zip(conns, routes, strict=True))
            )
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            for conn in conns:
                await conn.close()
        name = f"{lanes} lane{'s' if lanes > 1 else ''}, each its own lock and position"
    await wait_received(listener)
    return Outcome(
        name,
        events / elapsed,
        len(turns),
        statistics.mean(turns) * 1000,
        statistics.mean(holds) * 1000 if holds else None,
        cpu / elapsed,
        listener.received,
        listener.violations,
    )


async def run(args: argparse.Namespace) -> list[list[Outcome]]:
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    ladder = [int(n) for n in args.lanes.split(",")]
    with own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)) as amqp_url:
        database_url = await create_database(db_base)
        connection = await aio_pika.connect(amqp_url)
        try:
            conn = await pg_connect(database_url)
            await conn.execute(SCHEMA)
            await conn.close()
            listen = await connection.channel()
            exchange = await topology.declare_deliver_exchange(listen)
            queue = await listen.declare_queue(exclusive=True)
            await queue.bind(exchange, "user.#")
            listener = Listener()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                listener.on_message(message)

            await queue.consume(on_message, no_ack=True)
            routes = []
            for _ in range(args.workers):
                channel = await connection.channel(publisher_confirms=True)
                routes.append(DeliveryRoute(channel))
            rounds = []
            for r in range(args.rounds):
                outcomes = []
                for lanes in [PRODUCT, *ladder]:
                    o = await one_run(
                        lanes, args.workers, args.events, database_url, routes, listener
                    )
                    print(f"round {r + 1}: {line(o)}", file=sys.stderr, flush=True)
                    outcomes.append(o)
                rounds.append(outcomes)
            return rounds
        finally:
            await connection.close()
            await drop_database(database_url)


def line(o: Outcome) -> str:
    return (
        f"| {o.name} | {o.per_second:,.0f} | {o.turns} | {o.turn_ms:.1f} "
        f"| {'' if o.hold_ms is None else f'{o.hold_ms:.1f}'} | {o.busy:.0%} | {o.received:,} "
        f"| {o.violations} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lanes", default="1,2,4,8")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if max(int(n) for n in args.lanes.split(",")) > USERS:
        parser.error(f"at most {USERS} lanes")
    rounds = asyncio.run(run(args))
    print(
        f"python -m tests.bench.bench_lanes --lanes {args.lanes} --workers {args.workers} "
        f"--events {args.events} --rounds {args.rounds}"
    )
    for r, outcomes in enumerate(rounds):
        print(f"round {r + 1}")
        print(
            "| run | events/s | turns | turn (lock wait included), mean ms "
            "| lock held, mean ms | this process busy | delivered | order violations |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|")
        for o in outcomes:
            print(line(o))
    base = [next(o for o in outcomes if o.name.startswith("1 lane")) for outcomes in rounds]
    for r, outcomes in enumerate(rounds):
        ratios = ", ".join(f"{o.name.split(',')[0]} {o.per_second / base[r].per_second:.2f}"
                           for o in outcomes)  # fmt: skip
        print(f"round {r + 1}, against 1 lane: {ratios}")


if __name__ == "__main__":
    main()
