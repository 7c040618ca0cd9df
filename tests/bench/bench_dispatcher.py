"""Dispatcher benchmark (not collected by pytest): events/s from the broker queue through
PostgreSQL to the delivery exchange, beside the two ceilings it sits on, in one run.

    python -m tests.bench.bench_dispatcher run [--events 20000] [--rate 1000] [--waits 10,1]
        [--baseline GIT_REF]
    python -m tests.bench.bench_dispatcher explain [--notifications 10000000]

``run`` works in a private RabbitMQ vhost and a private database (both removed at the end):
1. a bare aio-pika consume-and-ack loop drains the same queue, pre-filled;
2. a bare COPY writes the same rows (ids, log, notifications, recipients) in batches;
3. ``notify dispatcher`` drains the pre-filled queue, with one and then two processes;
4. a steady stream at a fixed rate measures publish -> commit latency with one process
   (the commit time is when the delivery, published after the commit, reaches a listener),
   once per batch wait given (``DISPATCHER_BATCH_WAIT_MS``).

With ``--baseline``, step 3 is also run, in the same vhost and just before, by the code of
that git revision (exported with ``git archive`` to a temporary directory, its processes
started with it first on PYTHONPATH) on a database of its own that its ``notify migrate``
made: the dispatcher's rate before and after a change, side by side, in one run.

``explain`` fills a private database with synthetic notifications and prints the plans of
the read side's queries (docs/event-store.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import orjson
from sqlalchemy.engine import make_url

from dispatcher import queries
from producers import topology
from producers.envelope import Envelope
from producers.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, async_database_url
from tests.support.processes import NotifyProcess
from tests.support.services import create_database, drop_database, own_vhost

USERS = 1000
BATCH = 200


def envelope(i: int) -> Envelope:
    return Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "payment_received",
            "user_id": f"bench-{i % USERS}",
            "data": {"booking_id": f"b{i}", "amount": "120.00", "payment_method": "card"},
            "producer": "bench",
        }
    )


async def publish(amqp_url: str, bodies: list[bytes], rate: float | None = None) -> list[float]:
    """Publish with confirms (500 in flight at most, or at ``rate`` per second); return each
    message's publish time."""
    connection = await aio_pika.connect(amqp_url)
    sent: list[float] = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare_dispatcher_queue(channel, 5)
        events = await topology.declare_events_exchange(channel)
        chunk = 500 if rate is None else max(1, int(rate / 100))
        start = time.perf_counter()
        for i in range(0, len(bodies), chunk):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            now = time.perf_counter()
            part = bodies[i : i + chunk]
            sent.extend(now for _ in part)
            await asyncio.gather(
                *(events.publish(aio_pika.Message(b, delivery_mode=2), "x") for b in part)
            )
    finally:
        await connection.close()
    return sent


async def bare_consume(amqp_url: str, count: int) -> float:
    """Events/s of a consume-and-ack loop with the dispatcher's prefetch and batch acks."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2 * BATCH)
        queue = await topology.declare_dispatcher_queue(channel, 5)
        done = asyncio.Event()
        seen = 0
        start = time.perf_counter()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            seen += 1
            if seen % BATCH == 0 or seen == count:
                await message.ack(multiple=True)
            if seen == count:
                done.set()

        await queue.consume(on_message)
        await done.wait()
        return count / (time.perf_counter() - start)
    finally:
        await connection.close()


def pg_connect(url: str) -> Any:
    parsed = make_url(url)
    return asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )


async def bare_copy(database_url: str, envelopes: list[Envelope]) -> float:
    """Events/s of COPY alone: the rows the dispatcher writes, in batches of its size, one
    transaction each, with seqs drawn from the log's sequence first."""
    conn = await pg_connect(database_url)
    try:
        start = time.perf_counter()
        for i in range(0, len(envelopes), BATCH):
            part = envelopes[i : i + BATCH]
            async with conn.transaction():
                seqs = await conn.fetch(
                    "SELECT nextval(pg_get_serial_sequence('notification_events', 'seq')) "
                    "FROM generate_series(1, $1)",
                    len(part),
                )
                now = datetime.now(UTC)
                ids, log, rows, recipients = [], [], [], []
                for (seq,), e in zip(seqs, part, strict=True):
                    payload = e.to_json().decode()
                    event_id = uuid.uuid4()
                    ids.append((event_id, seq, now))
                    log.append((seq, event_id, "notification.created", e.occurred_at,
                                now, e.producer, payload))  # fmt: skip
                    rows.append((seq, uuid.uuid4(), "user", e.user_id, None,
                                 e.notification_type.value, e.category.value, e.priority,
                                 e.title, e.message, orjson.dumps(e.data).decode(),
                                 e.action_url, e.producer, e.occurred_at, now))  # fmt: skip
                    recipients.append((e.user_id, seq))
                await conn.copy_records_to_table("notification_event_ids", records=ids)
                await conn.copy_records_to_table("notification_events", records=log)
                await conn.copy_records_to_table("notifications", records=rows)
                await conn.copy_records_to_table(
                    "notification_recipients", records=recipients, columns=["user_id", "seq"]
                )
        return len(envelopes) / (time.perf_counter() - start)
    finally:
        await conn.close()


async def stored(database_url: str) -> int:
    conn = await pg_connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM notifications"))
    finally:
        await conn.close()


async def wait_stored(database_url: str, target: int, timeout: float = 600) -> None:
    """Poll the count (a benchmark may poll: it measures, it does not assert)."""
    deadline = time.perf_counter() + timeout
    while await stored(database_url) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{target} notifications not stored within {timeout}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def dispatchers(env: dict[str, str], count: int) -> AsyncIterator[list[NotifyProcess]]:
    procs = [NotifyProcess(f"dispatcher {i}", ["dispatcher"], env) for i in range(count)]
    try:
        for proc in procs:
            await proc.start("dispatcher consuming")
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None and proc._proc is not None:
                await proc.stop()


async def drain(env: dict[str, str], processes: int, bodies: list[bytes]) -> float:
    """Events/s of ``processes`` dispatchers draining a pre-filled queue."""
    db = env["DATABASE_URL"]
    before = await stored(db)
    await publish(env["AMQP_URL"], bodies)
    async with dispatchers(env, processes):
        start = time.perf_counter()
        await wait_stored(db, before + len(bodies))
        return len(bodies) / (time.perf_counter() - start)


async def latency(env: dict[str, str], rate: float, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) from publish to the delivery the dispatcher sends after commit."""
    envelopes = [envelope(i) for i in range(int(rate * seconds))]
    index = {str(e.event_id): i for i, e in enumerate(envelopes)}
    arrived: dict[int, float] = {}
    done = asyncio.Event()
    connection = await aio_pika.connect(env["AMQP_URL"])
    channel = await connection.channel()
    exchange = await topology.declare_deliver_exchange(channel)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "user.#")

    async def on_delivery(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        arrived[index[orjson.loads(message.body)["id"]]] = time.perf_counter()
        if len(arrived) == len(envelopes):
            done.set()

    await queue.consume(on_delivery, no_ack=True)
    try:
        async with dispatchers(env, 1):
            sent = await publish(env["AMQP_URL"], [e.to_json() for e in envelopes], rate)
            await asyncio.wait_for(done.wait(), 120)
    finally:
        await connection.close()
    waits = sorted((arrived[i] - sent[i]) * 1000 for i in range(len(envelopes)))
    return statistics.median(waits), waits[int(len(waits) * 0.99)]


@dataclass
class Figures:
    consume: float
    copy: float
    one: float
    two: float
    latency: dict[float, tuple[float, float]]  # batch wait (ms) -> p50, p99 (ms)
    baseline: tuple[str, float, float] | None = None  # git ref, 1 and 2 processes


@contextmanager
def baseline_code(ref: str) -> Iterator[tuple[str, str]]:
    """The tree of git revision ``ref`` in a temporary directory, and its commit."""
    root = Path(__file__).parents[2]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="notify-baseline-") as tree:
        archive = subprocess.run(["git", "archive", ref], cwd=root, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        yield tree, commit


async def baseline_drains(
    ref: str, db_base: str, amqp_url: str, events: int
) -> tuple[str, float, float]:
    """The dispatcher of revision ``ref`` draining the same queue, 1 then 2 processes."""
    with baseline_code(ref) as (tree, commit):
        url = make_url(db_base).set(database=f"notify_bench_{uuid.uuid4().hex[:8]}")
        database_url = url.render_as_string(hide_password=False)
        env = {"DATABASE_URL": database_url, "AMQP_URL": amqp_url, "LOG_LEVEL": "info",
               "PYTHONPATH": tree}  # fmt: skip
        migrate = NotifyProcess("baseline migrate", ["migrate"], env)
        await migrate.start(None)
        if await migrate.exited() != 0:
            raise RuntimeError("\n".join(migrate.lines))
        try:
            one = await drain(env, 1, [envelope(i).to_json() for i in range(events)])
            two = await drain(env, 2, [envelope(i).to_json() for i in range(events)])
        finally:
            await drop_database(database_url)
    return commit, one, two


async def run(events: int, rate: float, waits: list[float], baseline: str | None) -> Figures:
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    with own_vhost(os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)) as amqp_url:
        database_url = await create_database(db_base)
        try:
            env = {"DATABASE_URL": database_url, "AMQP_URL": amqp_url, "LOG_LEVEL": "info"}
            bodies = [envelope(i).to_json() for i in range(events)]
            await publish(amqp_url, bodies)
            consume = await bare_consume(amqp_url, events)
            copy = await bare_copy(database_url, [envelope(i) for i in range(events)])
            before = None
            if baseline is not None:
                before = await baseline_drains(baseline, db_base, amqp_url, events)
            one = await drain(env, 1, [envelope(i).to_json() for i in range(events)])
            two = await drain(env, 2, [envelope(i).to_json() for i in range(events)])
            latencies = {}
            for wait in waits:
                wait_env = {**env, "DISPATCHER_BATCH_WAIT_MS": str(wait)}
                latencies[wait] = await latency(wait_env, rate, 10)
            return Figures(consume, copy, one, two, latencies, before)
        finally:
            await drop_database(database_url)


def fill_statements(broadcast_every: int = 1000) -> list[str]:
    """Statements that fill an empty, migrated database with synthetic notifications ($1 of
    them, one a second up to now): personal ones for 100,000 users, one in 50 in 1,000 rooms,
    one in ``broadcast_every`` a broadcast."""
    return [
        # The log's partitions of the months the notifications below were logged in.
        "SELECT notification_events_ensure_partitions(now() - make_interval(secs => $1), now())",
        # Each event's id row first, as the store's append writes it, then its log row.
        """INSERT INTO notification_event_ids (event_id, seq, recorded_at)
           SELECT gen_random_uuid(), nextval(pg_get_serial_sequence('notification_events',
                  'seq')), t
           FROM (SELECT i, now() - (($1 - i) * interval '1 second') AS t
                 FROM generate_series(1, $1) AS i) AS s
           ORDER BY i""",
        """INSERT INTO notification_events (seq, event_id, event_type, occurred_at,
               recorded_at, producer, payload) OVERRIDING SYSTEM VALUE
           SELECT seq, event_id, 'notification.created', recorded_at, recorded_at,
                  'explain', '{}'
           FROM notification_event_ids""",
        f"""INSERT INTO notifications (seq, event_id, audience, user_id, room,
               notification_type, category, priority, title, message, data, producer,
               occurred_at, created_at)
           SELECT seq, event_id, kind,
                  CASE kind WHEN 'user' THEN 'user-' || (seq % 100000) END,
                  CASE kind WHEN 'room' THEN 'room-' || ((seq / 50) % 1000) END,
                  'system_alert', 'system', 'high', 'title', 'message', '{{}}', producer,
                  occurred_at, recorded_at
           FROM (SELECT *, CASE WHEN seq % {int(broadcast_every)} = 0 THEN 'broadcast'
                                WHEN seq % 50 = 1 THEN 'room' ELSE 'user' END AS kind
                 FROM notification_events) AS e""",
        # Nine in ten personal notifications read, the unread ones spread over every user.
        """INSERT INTO notification_recipients (user_id, seq, delivered_at, read_at)
           SELECT user_id, seq, created_at,
                  CASE WHEN (seq / 100000) % 10 <> 0 THEN created_at END
           FROM notifications WHERE audience = 'user'""",
        "VACUUM ANALYZE",
    ]


# 98% personal (100,000 users), 1.9% in 1,000 rooms, 0.1% broadcasts.
FILL = fill_statements()
PLANS = {
    "unread for U": queries.UNREAD,
    "unread count for U": queries.UNREAD_COUNT,
    "room R since seq S": queries.ROOM_SINCE,
}


async def explain(notifications: int) -> None:
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    database_url = await create_database(db_base)
    try:
        conn = await pg_connect(database_url)
        try:
            for statement in FILL:
                started = time.perf_counter()
                args: list[int] = [notifications] if "$1" in statement else []
                await conn.execute(statement, *args)
                print(f"-- filled in {time.perf_counter() - started:.0f}s", file=sys.stderr)
            high = await conn.fetchval("SELECT max(seq) FROM notifications")
            params = {"user_id": "user-4242", "window": timedelta(days=7), "limit": 500,
                      "room": "room-7", "since": high - 1_000_000, "critical": []}  # fmt: skip
            for name, query in PLANS.items():
                sql, values = _positional(query.text, params)
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *values)
                print(f"\n### {name}\n")
                print("\n".join(row[0] for row in plan))
        finally:
            await conn.close()
    finally:
        await drop_database(database_url)


def _positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``:name`` parameters as ``$n`` for asyncpg (names in order of first use)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match[1]
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    converted = re.sub(r"(?<!:):([a-z_]+)", number, sql)
    return converted, [params[n] for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("run")
    bench.add_argument("--events", type=int, default=20_000)
    bench.add_argument("--rate", type=float, default=2_000, help="events/s of the latency run")
    bench.add_argument(
        "--waits", default="0", help="batch waits (ms) of the latency runs, comma-separated"
    )
    bench.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also drain with the dispatcher of this revision, side by side (e.g. main)",
    )
    fill = commands.add_parser("explain")
    fill.add_argument("--notifications", type=int, default=10_000_000)
    args = parser.parse_args()
    if args.command == "explain":
        asyncio.run(explain(args.notifications))
        return
    waits = [float(w) for w in args.waits.split(",")]
    f = asyncio.run(run(args.events, args.rate, waits, args.baseline))
    print(f"bare aio-pika consume+ack : {f.consume:8.0f} events/s")
    print(f"bare COPY of the same rows: {f.copy:8.0f} events/s")
    print(f"dispatcher, 1 process     : {f.one:8.0f} events/s")
    print(f"dispatcher, 2 processes   : {f.two:8.0f} events/s")
    if f.baseline is not None:
        commit, one, two = f.baseline
        print(f"baseline {commit}, 1 process : {one:8.0f} events/s")
        print(f"baseline {commit}, 2 processes: {two:8.0f} events/s")
    for wait, (p50, p99) in f.latency.items():
        print(
            f"publish -> commit at {args.rate:.0f}/s, batch wait {wait:g} ms: "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )


if __name__ == "__main__":
    main()
