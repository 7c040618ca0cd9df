"""Event store benchmark (not collected by pytest): PostgreSQL's append rate of the log through
the real store, and the replay rate of the edge's handshake statement at a realistic size.

    python -m tests.bench.bench_store [--events 20000] [--notifications 1000000] [--replays 5000]

In a database of the benchmark's own (created, migrated, dropped at the end):

1. **append, empty log**: ``--events`` ``payment_received`` events appended through
   ``dispatcher.store.EventStore.append`` (the log, the notification, the recipient row, the
   append lock, one transaction per batch of 200, as the dispatcher's batch), by one writer
   and by two at once; beside them the bare COPY of the same rows (the dispatcher
   benchmark's), the ceiling;
2. **fill**: ``--notifications`` synthetic notifications, one a second up to now (the
   dispatcher benchmark's ``explain`` fill: 100,000 users, one in 50 in a room, nine in ten
   personal ones read; one in ``--broadcast-every`` a broadcast);
3. **replay**: ``--replays`` handshake replays of random users through the edge's own reader
   (``socket_edge.replay.ReplayReader``, one statement on one snapshot, frames encoded), with
   as many in flight as the edge's pool has connections (``EDGE_DATABASE_CONNECTIONS``, 10):
   without a cursor (the unread notifications: a first connect) and with ``since`` an hour
   back (a reconnect);
4. **append, filled log**: step 1 again on the filled log.

The replay figure is the rate of one edge process's reader, whose own CPU is part of it: the
line says how busy this process was, and when it is near 100% the figure is the process's, not
PostgreSQL's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from dispatcher.database import create_engine
from dispatcher.store import EventStore
from producers.settings import DEFAULT_DATABASE_URL, async_database_url
from socket_edge.replay import ReplayReader
from tests.bench.bench_dispatcher import BATCH, bare_copy, envelope, fill_statements, pg_connect
from tests.support.services import create_database, drop_database

CONNECTIONS = 10  # the edge's default EDGE_DATABASE_CONNECTIONS
USERS = 100_000  # the fill's


@dataclass
class Appends:
    one: float
    two: float
    copy: float


@dataclass
class Replays:
    name: str
    per_second: float
    p50_ms: float
    p99_ms: float
    rows: float  # notifications per replay, mean
    busy: float  # this process's CPU / wall time


async def appends(database_url: str, events: int, first: int) -> Appends:
    engine = create_engine(database_url, pre_ping=False)
    store = EventStore(engine, critical=frozenset())
    try:

        async def write(batch_from: int, count: int) -> None:
            end = batch_from + count
            for i in range(batch_from, end, BATCH):
                await store.append([envelope(j) for j in range(i, min(i + BATCH, end))])

        started = time.perf_counter()
        await write(first, events)
        one = events / (time.perf_counter() - started)
        half = events // 2
        base = first + events
        started = time.perf_counter()
        await asyncio.gather(write(base, half), write(base + half, half))
        two = 2 * half / (time.perf_counter() - started)
    finally:
        await engine.dispose()
    copy = await bare_copy(database_url, [envelope(i) for i in range(events)])
    return Appends(one, two, copy)


async def fill(database_url: str, notifications: int, broadcast_every: int) -> float:
    conn = await pg_connect(database_url)
    started = time.perf_counter()
    try:
        for statement in fill_statements(broadcast_every):
            args: list[int] = [notifications] if "$1" in statement else []
            await conn.execute(statement, *args)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def replays(database_url: str, count: int, since: bool) -> Replays:
    reader = ReplayReader(
        database_url,
        CONNECTIONS,
        limit=500,
        broadcast_window=timedelta(days=7),
        critical=frozenset(),
    )
    await reader.start()
    try:
        high = (await reader.for_user("user-0")).high_water
        cursor = high - 3600 if since else None
        rng = random.Random(count)
        users = [f"user-{rng.randrange(USERS)}" for _ in range(count)]
        waits: list[float] = []
        rows = 0
        gate = asyncio.Semaphore(CONNECTIONS)

        async def one(user: str) -> None:
            nonlocal rows
            async with gate:
                started = time.perf_counter()
                replay = await reader.for_user(user, cursor)
                waits.append(time.perf_counter() - started)
                rows += replay.count

        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(one(u) for u in users))
        wall = time.perf_counter() - started
        busy = (time.process_time() - cpu) / wall
    finally:
        await reader.close()
    waits.sort()
    name = "since an hour back" if since else "unread (no cursor)"
    return Replays(
        name,
        count / wall,
        statistics.median(waits) * 1000,
        waits[int(len(waits) * 0.99)] * 1000,
        rows / count,
        busy,
    )


async def run(args: argparse.Namespace) -> None:
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    out: list[str] = []

    def say(line: str) -> None:
        out.append(line)
        print(line, file=sys.stderr, flush=True)

    # The log is append-only (no TRUNCATE), and the fill wants it empty: a database each.
    database_url = await create_database(db_base)
    try:
        empty = await appends(database_url, args.events, 0)
        say(f"| append, empty log | {empty.one:,.0f} | {empty.two:,.0f} | {empty.copy:,.0f} |")
    finally:
        await drop_database(database_url)
    database_url = await create_database(db_base)
    try:
        seconds = await fill(database_url, args.notifications, args.broadcast_every)
        say(f"filled {args.notifications:,} notifications in {seconds:.0f} s")
        for since in (False, True):
            r = await replays(database_url, args.replays, since)
            say(
                f"| replay {r.name}, {args.notifications:,} notifications | {r.per_second:,.0f}/s "
                f"| p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms | {r.rows:.1f} rows each "
                f"| this process busy {r.busy:.0%} |"
            )
        full = await appends(database_url, args.events, 10 * args.events)
        say(
            f"| append, {args.notifications:,} in the log | {full.one:,.0f} | {full.two:,.0f} "
            f"| {full.copy:,.0f} |"
        )
    finally:
        await drop_database(database_url)
    print(
        "python -m tests.bench.bench_store "
        f"--events {args.events} --notifications {args.notifications} "
        f"--replays {args.replays} --broadcast-every {args.broadcast_every}"
    )
    print("| append (events/s) | 1 writer | 2 writers | bare COPY |")
    for line in out:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--replays", type=int, default=5_000)
    parser.add_argument("--broadcast-every", type=int, default=100_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
