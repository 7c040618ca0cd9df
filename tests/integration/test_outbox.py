"""The transactional outbox in a producer's own database (created for this module and dropped
after it), relayed to the real RabbitMQ.

What the relay published is read from a queue of the test's own bound to every routing key of
the events exchange: the relay returns only after the broker confirmed each message, and a
confirm means the message is in every bound queue, so the queue holds everything at that point.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from producers import outbox, topology
from producers.envelope import Envelope
from producers.errors import DatabaseUnavailable
from producers.outbox_relay import OutboxRelay
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess
from tests.support.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("dispatcher_process")]

RACE_SEEDS = [3, 17, 42]


async def _admin(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
        database="postgres",
    )  # fmt: skip


@pytest.fixture(scope="module")
async def outbox_url(services: Services) -> AsyncIterator[str]:
    """A database standing for a booking service's own, with the outbox table in it."""
    name = f"notify_outbox_test_{uuid.uuid4().hex[:8]}"
    admin = await _admin(services.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(services.database_url).set(database=name).render_as_string(hide_password=False)
    engine = create_async_engine(url)
    await outbox.create_table(engine)
    await outbox.create_table(engine)  # idempotent: a producer may call it on every start
    await engine.dispose()
    try:
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def outbox_engine(outbox_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(outbox_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tap(amqp: AbstractRobustConnection) -> AsyncIterator[AbstractQueue]:
    channel = await amqp.channel()
    events = await topology.declare_events_exchange(channel)
    queue = await channel.declare_queue(f"test-tap-{uuid.uuid4().hex[:8]}", exclusive=True)
    await queue.bind(events, routing_key="#")
    yield queue
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()


async def published_ids(queue: AbstractQueue) -> Counter[str]:
    """Every event_id in the tap queue, with how often it was published; empties the queue."""
    seen: Counter[str] = Counter()
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        seen[str(message.message_id)] += 1
    return seen


def booking_event(service: NotificationService, user_id: str, n: int = 0) -> Envelope:
    return service.build(
        "booking_confirmed", user_id=user_id, data={"booking_id": f"b{n}", "tour_name": "T"}
    )


def publisher_for(settings: Settings, name: str) -> Publisher:
    return Publisher(settings, name=name)


async def pending_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(outbox.outbox_table)
            .where(outbox.outbox_table.c.sent_at.is_(None))
        )
    return int(count or 0)


async def test_a_committed_event_is_published_once_by_the_relay_process(
    process_env: dict[str, str],
    outbox_url: str,
    outbox_engine: AsyncEngine,
    service: NotificationService,
    amqp: AbstractRobustConnection,
    tap: AbstractQueue,
    user_id: str,
) -> None:
    relay = NotifyProcess(
        "notify outbox-relay",
        ["outbox-relay", "--database-url", outbox_url, "--poll-interval", "0.05"],
        process_env,
    )
    await relay.start("outbox relay publishing")
    try:
        event = booking_event(service, user_id)
        async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
            async with AsyncSession(outbox_engine) as session, session.begin():
                outbox.add(session, event)
            frame = await deliveries.wait_for(event.event_id)
        assert frame["title"] == "Booking Confirmed!"
    finally:
        assert await relay.stop() == 0
    assert (await published_ids(tap))[str(event.event_id)] == 1
    assert await pending_count(outbox_engine) == 0


async def test_a_rolled_back_event_is_never_published(
    settings: Settings,
    outbox_engine: AsyncEngine,
    service: NotificationService,
    tap: AbstractQueue,
    user_id: str,
) -> None:
    rolled_back = booking_event(service, user_id, 1)
    committed = booking_event(service, user_id, 2)
    async with AsyncSession(outbox_engine) as session:
        with pytest.raises(RuntimeError, match="booking refused"):
            async with session.begin():
                outbox.add(session, rolled_back)
                await session.flush()  # the row was written, then the transaction is undone
                raise RuntimeError("booking refused")
        async with session.begin():
            outbox.add(session, committed)

    publisher = publisher_for(settings, "test-outbox-rollback")
    try:
        await OutboxRelay(outbox_engine, publisher).drain()
    finally:
        await publisher.close()
    published = await published_ids(tap)
    assert published[str(committed.event_id)] == 1
    assert str(rolled_back.event_id) not in published


@pytest.mark.parametrize("seed", RACE_SEEDS)
async def test_two_relays_publish_each_row_once(
    settings: Settings,
    outbox_engine: AsyncEngine,
    service: NotificationService,
    tap: AbstractQueue,
    user_id: str,
    seed: int,
) -> None:
    rng = random.Random(seed)
    events = [booking_event(service, user_id, n) for n in range(rng.randint(200, 400))]
    async with AsyncSession(outbox_engine) as session, session.begin():
        for event in events:
            outbox.add(session, event)

    publishers = [publisher_for(settings, f"test-outbox-relay-{i}") for i in range(2)]
    relays = [OutboxRelay(outbox_engine, p, batch_size=rng.randint(3, 40)) for p in publishers]
    try:
        await asyncio.gather(*(relay.drain() for relay in relays))
    finally:
        for publisher in publishers:
            await publisher.close()

    published = await published_ids(tap)
    assert {str(e.event_id) for e in events} <= set(published)
    assert [n for n in published.values() if n != 1] == []
    assert sum(relay.published for relay in relays) == len(events)
    assert await pending_count(outbox_engine) == 0


async def test_the_relay_refuses_to_start_without_the_outbox_table(
    settings: Settings, services: Services
) -> None:
    engine = create_async_engine(services.database_url)  # the pipeline's database: no outbox
    try:
        with pytest.raises(DatabaseUnavailable, match="--create-table"):
            await OutboxRelay(engine, publisher_for(settings, "unused")).check()
    finally:
        await engine.dispose()
