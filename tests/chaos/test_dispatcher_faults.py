"""Faults in real processes and services: the dispatcher killed with SIGKILL mid-stream, and
PostgreSQL stopped under load. Each test runs in a RabbitMQ vhost and a database of its own,
so no other dispatcher of the session takes part.

The stream of the kill test is 5,000 events, to keep the suite quick; the benchmark
(tests/bench/bench_dispatcher.py, docs/performance.md) drains 20,000 the same way.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import text

from dispatcher.database import create_engine, migrate
from dispatcher.partitions import partitions_in
from producers import topology
from producers.settings import Settings
from tests.support.private_postgres import PrivatePostgres, private_postgres
from tests.support.processes import NotifyProcess, start_dispatcher
from tests.support.services import create_database, drop_database, own_vhost

pytestmark = pytest.mark.chaos

STREAM = 5_000
OUTAGE = 20.0
WAIT = 60.0


def event(user: str) -> bytes:
    return orjson.dumps(
        {"event_id": str(uuid.uuid4()), "schema_version": 1, "notification_type": "chat_read",
         "user_id": user, "data": {"conversation_id": "c1", "reader_id": "r1"}}
    )  # fmt: skip


class Routed:
    """Counts the deliveries the dispatcher routes (one per commit of a new event)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            self.ids.add(orjson.loads(message.body)["id"])
            self._changed.notify_all()

    async def until(self, done: Any) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: done(self.ids)), WAIT)


@asynccontextmanager
async def broker(amqp_url: str) -> AsyncIterator[tuple[aio_pika.abc.AbstractExchange, Routed]]:
    """A confirming publisher on the events exchange and a watch on every user key."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await topology.declare_dispatcher_queue(channel, Settings().dispatcher_delivery_limit)
        events = await topology.declare_events_exchange(channel)
        watch_channel = await connection.channel()
        deliver = await topology.declare_deliver_exchange(watch_channel)
        queue = await watch_channel.declare_queue(exclusive=True)
        await queue.bind(deliver, "user.#")
        routed = Routed()
        await queue.consume(routed.on_message, no_ack=True)
        yield events, routed
    finally:
        await connection.close()


async def publish(events: aio_pika.abc.AbstractExchange, bodies: list[bytes]) -> None:
    for i in range(0, len(bodies), 500):
        await asyncio.gather(
            *(events.publish(aio_pika.Message(b, delivery_mode=2), "chat_read")
              for b in bodies[i : i + 500])
        )  # fmt: skip


async def stored(database_url: str, ids: list[str]) -> list[tuple[str, int]]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT CAST(event_id AS text), count(*) FROM notification_events "
                     "WHERE CAST(event_id AS text) = ANY(:ids) GROUP BY event_id"),
                {"ids": ids},
            )  # fmt: skip
            return [(row[0], row[1]) for row in rows]
    finally:
        await engine.dispose()


async def drained(events: aio_pika.abc.AbstractExchange, routed: Routed, user: str) -> None:
    """Publish a marker and await its delivery: the one dispatcher consumes in queue order,
    and redelivered messages come before it, so everything published earlier is handled."""
    marker = event(user)
    await events.publish(aio_pika.Message(marker, delivery_mode=2), "chat_read")
    marker_id = orjson.loads(marker)["event_id"]
    await routed.until(lambda ids: marker_id in ids)


@pytest.fixture
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[str]:
    url = await create_database(settings.database_url)
    yield url
    await drop_database(url)


async def test_sigkill_mid_stream_then_restart_stores_every_event_exactly_once(
    vhost: str, database: str
) -> None:
    env = {"DATABASE_URL": database, "AMQP_URL": vhost, "LOG_LEVEL": "info"}
    bodies = [event(f"kill-{i % 50}") for i in range(STREAM)]
    ids = [orjson.loads(b)["event_id"] for b in bodies]
    async with broker(vhost) as (events, routed):
        await publish(events, bodies)
        first = await start_dispatcher(env)
        await routed.until(lambda seen: len(seen) >= STREAM // 5)
        await first.kill()
        assert first.returncode == -9
        assert len(await stored(database, ids)) < STREAM, "killed after the stream was done"

        second = await start_dispatcher(env)
        try:
            await drained(events, routed, "kill-marker")
        finally:
            await second.stop()

    counts = dict(await stored(database, ids))
    assert set(counts) == set(ids)
    assert set(counts.values()) == {1}


async def steady(
    events: aio_pika.abc.AbstractExchange, sent: list[str], stop: asyncio.Event
) -> None:
    """About 200 events/s until ``stop``, each confirmed by the broker."""
    while not stop.is_set():
        batch = [event(f"outage-{i}") for i in range(20)]
        await publish(events, batch)
        sent.extend(orjson.loads(b)["event_id"] for b in batch)
        await asyncio.sleep(0.1)


async def test_postgres_outage_holds_acks_retries_with_backoff_and_loses_nothing(
    vhost: str,
) -> None:
    with private_postgres() as pg:
        await migrate(pg.url)
        env = {"DATABASE_URL": pg.url, "AMQP_URL": vhost, "LOG_LEVEL": "info"}
        dispatcher = await start_dispatcher(env)
        try:
            await _outage(pg, dispatcher, vhost)
        finally:
            await dispatcher.stop()
            print("\n".join(dispatcher.lines))  # shown by pytest when the test fails
    lines = dispatcher.lines
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    retries = [line for line in lines if "PostgreSQL unavailable" in line]
    # Retried with backoff: more than once, each pause (as announced) double the one before
    # until the cap, never shorter.
    pauses = [float(re.findall(r"retry \d+ in ([\d.]+)s", line)[0]) for line in retries]
    assert len(pauses) >= 2, "\n".join(lines)
    assert pauses == sorted(pauses) and pauses[1] > pauses[0], pauses
    assert any("PostgreSQL reachable again" in line for line in lines)
    assert not any("dead-lettering" in line for line in lines)


async def _outage(pg: PrivatePostgres, dispatcher: NotifyProcess, vhost: str) -> None:
    sent: list[str] = []
    stop = asyncio.Event()
    async with broker(vhost) as (events, routed):
        load = asyncio.create_task(steady(events, sent, stop))
        try:
            await routed.until(lambda seen: len(seen) >= 200)
            pg.stop("immediate")
            await dispatcher.wait_for_line("PostgreSQL unavailable", WAIT)
            routed_before, sent_before = len(routed.ids), len(sent)
            await asyncio.sleep(OUTAGE)  # the outage itself: nothing to await
            assert len(routed.ids) == routed_before, "stored while PostgreSQL was down"
            assert len(sent) > sent_before, "no event was published during the outage"
            pg.start()
            await dispatcher.wait_for_line("PostgreSQL reachable again", WAIT)
            await routed.until(lambda seen: len(seen) > routed_before)
        finally:
            stop.set()
            await load
        await drained(events, routed, "outage-marker")
    counts = dict(await stored(pg.url, sent))
    missing = [i for i, event_id in enumerate(sent) if event_id not in counts]
    assert not missing, f"not stored: events {missing} of {len(sent)}"
    assert set(counts.values()) == {1}


async def drop_partitions_from_this_month(database_url: str) -> list[str]:
    """Drop the log's partitions of this month and later (all empty): what a database whose
    partitions were never made ahead looks like to a dispatcher that is already running."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            names = [p.name for p in await partitions_in(conn)
                     if p.until > datetime.now(UTC)]  # fmt: skip
            for name in names:
                await conn.exec_driver_sql(f'DROP TABLE "{name}"')
        return names
    finally:
        await engine.dispose()


@pytest.mark.parametrize("seed", [1, 2])
async def test_events_whose_month_has_no_partition_are_stored_once_it_is_made(
    vhost: str, database: str, seed: int
) -> None:
    """The month's partition is gone under a running dispatcher: PostgreSQL refuses the
    batch; the dispatcher makes the partitions and stores the batch again at once, every event
    once, none dead-lettered."""
    rng = random.Random(seed)
    env = {"DATABASE_URL": database, "AMQP_URL": vhost, "LOG_LEVEL": "info"}
    bodies = [event(f"month-{i % 7}") for i in range(rng.randint(1, 300))]
    ids = [orjson.loads(b)["event_id"] for b in bodies]
    async with broker(vhost) as (events, routed):
        dispatcher = await start_dispatcher(env)
        try:
            dropped = await drop_partitions_from_this_month(database)
            assert dropped, "the migration made this month's partition"
            await publish(events, bodies)
            await routed.until(lambda seen: set(ids) <= seen)
        finally:
            await dispatcher.stop()
    made = [line for line in dispatcher.lines if "making the log's partitions" in line]
    assert len(made) == 1, "\n".join(dispatcher.lines)
    assert "no partition of relation" in made[0]
    summary = f"{len(ids)} stored, 0 duplicates, 0 dead-lettered"
    assert any(summary in line for line in dispatcher.lines), "\n".join(dispatcher.lines)
    counts = dict(await stored(database, ids))
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    engine = create_engine(database, pool_size=1)
    try:
        async with engine.connect() as conn:
            remade = {p.name for p in await partitions_in(conn)}
    finally:
        await engine.dispose()
    assert set(dropped) <= remade
