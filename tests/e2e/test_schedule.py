"""Scheduled notifications through real ``notify dispatcher`` processes: released on time
across a dispatcher killed with SIGKILL and across a restart of RabbitMQ (a private broker node
of this module's own: the shared broker is never restarted), exactly once with two
dispatchers, and never once cancelled. Each test works in a vhost and a database of its own
module, so no other dispatcher of the session takes part."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import text

from dispatcher.database import create_engine
from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support import private_rabbitmq
from tests.support.processes import NotifyProcess, start_dispatcher
from tests.support.services import create_database, drop_database, own_vhost

pytestmark = pytest.mark.e2e

WAIT = 30.0
ON_TIME = 1.0  # a release is routed within this long of its deliver_at


class Arrivals:
    """Every frame routed under ``user.<id>`` for the watched users, with its arrival time."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        arrived = time.time()
        async with self._changed:
            self.frames.append((arrived, orjson.loads(message.body)))
            self._changed.notify_all()
        await message.ack()

    def of(self, event_id: uuid.UUID) -> list[float]:
        return [at for at, frame in self.frames if frame.get("id") == str(event_id)]

    async def until(self, done: Callable[[], bool], timeout: float = WAIT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), timeout)

    async def arrival(self, event_id: uuid.UUID, timeout: float = WAIT) -> float:
        await self.until(lambda: bool(self.of(event_id)), timeout)
        return self.of(event_id)[0]


@asynccontextmanager
async def arrivals(amqp_url: str, user: str) -> AsyncIterator[Arrivals]:
    """A durable queue of the test's own on the user's key: it outlives a broker restart, and
    the robust connection consumes it again afterwards."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await topology.declare_deliver_exchange(channel)
    queue = await channel.declare_queue(f"test-schedule-{uuid.uuid4().hex[:8]}", durable=True)
    await queue.bind(exchange, topology.user_key(user))
    watch = Arrivals()
    await queue.consume(watch.on_message)
    try:
        yield watch
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await connection.close()


def chat(service: NotificationService, user: str, **options: Any) -> Any:
    return service.notify_chat_message(user, "c1", "guide-1", "see you", **options)


@pytest.fixture(scope="module")
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


@pytest.fixture(scope="module")
async def database(settings: Settings) -> AsyncIterator[str]:
    url = await create_database(settings.database_url)
    yield url
    await drop_database(url)


@asynccontextmanager
async def sdk(amqp_url: str) -> AsyncIterator[NotificationService]:
    service = NotificationService(
        Publisher(Settings(amqp_url=amqp_url), name="test-schedule"), producer="tests"
    )
    try:
        yield service
    finally:
        await service.close()


@asynccontextmanager
async def dispatchers(env: dict[str, str], count: int = 1) -> AsyncIterator[list[NotifyProcess]]:
    started: list[NotifyProcess] = []
    try:
        for _ in range(count):
            started.append(await start_dispatcher(env))
        yield started
    finally:
        for proc in started:
            await proc.stop()


async def logged(database: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(database, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


def assert_on_time(arrived: float, due: datetime) -> None:
    late = arrived - due.timestamp()
    assert -0.05 <= late < ON_TIME, f"routed {late:+.3f}s from its deliver_at"


async def test_a_scheduled_notification_is_routed_on_time_across_a_dispatcher_kill(
    vhost: str, database: str, user_id: str
) -> None:
    env = {"DATABASE_URL": database, "AMQP_URL": vhost}
    async with sdk(vhost) as service, arrivals(vhost, user_id) as watch:
        first = await start_dispatcher(env)
        try:
            due = datetime.now(UTC) + timedelta(seconds=4)
            scheduled = await chat(service, user_id, deliver_at=due)
            # Logged once a notification published after it is routed (one queue, in order).
            marker = await chat(service, user_id)
            await watch.arrival(marker)
            assert not watch.of(scheduled), "a scheduled notification was routed at once"
            await first.kill()
        finally:
            await first.stop()
        assert first.returncode == -9

        async with dispatchers(env) as [second]:
            assert_on_time(await watch.arrival(scheduled), due)
            # Killed again before another one is due, and started only after its time: it is
            # released at once by the next dispatcher.
            late_due = datetime.now(UTC) + timedelta(seconds=1)
            delayed = await chat(service, user_id, deliver_at=late_due)
            await watch.arrival(await chat(service, user_id))
            await second.kill()
        await asyncio.sleep(max(0.0, late_due.timestamp() - time.time()) + 0.5)  # a clock time
        async with dispatchers(env):
            ready = time.time()
            arrived = await watch.arrival(delayed)
            assert arrived - ready < ON_TIME
        assert len(watch.of(scheduled)) == 1 and len(watch.of(delayed)) == 1


async def test_two_dispatchers_release_each_scheduled_notification_exactly_once(
    vhost: str, database: str, user_id: str
) -> None:
    env = {"DATABASE_URL": database, "AMQP_URL": vhost, "SCHEDULE_POLL_SECONDS": "0.05"}
    async with (
        sdk(vhost) as service,
        arrivals(vhost, user_id) as watch,
        dispatchers(env, count=2) as both,
    ):
        due = datetime.now(UTC) + timedelta(seconds=2)
        scheduled = [await chat(service, user_id, deliver_at=due) for _ in range(20)]
        await watch.until(lambda: all(watch.of(i) for i in scheduled))
        for event_id in scheduled:
            assert_on_time(watch.of(event_id)[0], due)
        # Anything routed twice would have been routed before a notification sent after.
        await watch.arrival(await chat(service, user_id))
        assert all(len(watch.of(i)) == 1 for i in scheduled)
        releases = await logged(
            database,
            """SELECT payload->>'scheduled_event_id' AS id, count(*) AS n
               FROM notification_events WHERE event_type = 'notification.released'
                 AND payload->>'scheduled_event_id' = ANY(:ids) GROUP BY 1""",
            ids=[str(i) for i in scheduled],
        )
        assert len(releases) == len(scheduled) and {r.n for r in releases} == {1}
        released_by = [p.name for p in both if any("released" in line for line in p.lines)]
        assert released_by, "no dispatcher said it released anything"


async def test_a_cancelled_notification_is_never_routed(
    vhost: str, database: str, user_id: str
) -> None:
    env = {"DATABASE_URL": database, "AMQP_URL": vhost}
    async with (
        sdk(vhost) as service,
        arrivals(vhost, user_id) as watch,
        dispatchers(env),
    ):
        due = datetime.now(UTC) + timedelta(seconds=1.5)
        withdrawn = await chat(service, user_id, deliver_at=due)
        kept = await chat(service, user_id, deliver_at=due)
        await service.cancel(withdrawn)
        # Both were due in the same poll: once the kept one is routed, the other would be.
        assert_on_time(await watch.arrival(kept), due)
        await watch.arrival(await chat(service, user_id))
        assert watch.of(withdrawn) == []
        (row,) = await logged(
            database,
            "SELECT status, cancelled_seq FROM notification_schedule WHERE event_id = :id",
            id=withdrawn,
        )
        assert row.status == "cancelled" and row.cancelled_seq is not None


@pytest.mark.skipif(
    not private_rabbitmq.available(), reason="rabbitmq-server is not installed here"
)
async def test_a_scheduled_notification_survives_a_rabbitmq_restart(
    database: str, user_id: str
) -> None:
    async with private_rabbitmq.private_rabbitmq() as broker:
        amqp_url = broker.amqp_url()
        env = {"DATABASE_URL": database, "AMQP_URL": amqp_url}
        async with (
            sdk(amqp_url) as service,
            arrivals(amqp_url, user_id) as watch,
            dispatchers(env) as [dispatcher],
        ):
            # Restarted between the scheduling and the time: still on time.
            started = time.time()
            await broker.stop_app()
            await broker.start_app()
            restart = time.time() - started
            due = datetime.now(UTC) + timedelta(seconds=restart + 3)
            on_time = await chat(service, user_id, deliver_at=due)
            await broker.stop_app()
            await broker.start_app()
            assert_on_time(await watch.arrival(on_time), due)

            # Due while the broker is down: routed as soon as it is back.
            soon = datetime.now(UTC) + timedelta(seconds=1)
            delayed = await chat(service, user_id, deliver_at=soon)
            await broker.stop_app()
            await asyncio.sleep(max(0.0, soon.timestamp() - time.time()) + 0.5)  # a clock time
            await broker.start_app()
            back = time.time()
            arrived = await watch.arrival(delayed)
            assert arrived - back < 5.0, f"routed {arrived - back:.1f}s after the restart"
            assert dispatcher.returncode is None
            await watch.arrival(await chat(service, user_id))
            assert len(watch.of(on_time)) == 1 and len(watch.of(delayed)) == 1
