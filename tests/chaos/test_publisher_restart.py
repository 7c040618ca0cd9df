"""The publisher across a RabbitMQ restart, on a private broker node started for this module
(the shared broker is never restarted), with a real ``notify dispatcher`` pointed at it."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from producers import topology
from producers.publisher import Publisher, PublishTimeout
from producers.service import NotificationService
from producers.settings import Settings
from tests.support import private_rabbitmq
from tests.support.deliveries import watch_deliveries
from tests.support.private_rabbitmq import PrivateRabbitMQ
from tests.support.processes import NotifyProcess, start_dispatcher

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(
        not private_rabbitmq.available(), reason="rabbitmq-server is not installed here"
    ),
]

RESTART_SEEDS = [7, 1234]
WORKERS = 4
AFTER_RESTART = 40  # calls each worker makes once the broker is back
# The stream is paced so that the few seconds of a restart do not pile up tens of thousands of
# events; what matters is that calls are in flight when the broker goes away.
CALL_PACE = 0.02
BATCH_PACE = 0.2
FLOOD_BATCH = 500
STREAM_LIMIT = 120.0  # a hung stream fails the test instead of hanging the run


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[PrivateRabbitMQ]:
    async with private_rabbitmq.private_rabbitmq() as node:
        yield node


class SupervisedDispatcher:
    """A ``notify dispatcher`` on the private broker. It must ride out every broker restart by
    itself (reconnecting, not exiting): a dispatcher that exited fails the test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: NotifyProcess | None = None

    async def ensure_running(self) -> None:
        if self.process is not None and self.process.returncode is None:
            return
        if self.process is not None:
            raise AssertionError(
                "the dispatcher exited during the broker restart; its output:\n"
                + "\n".join(self.process.lines)
            )
        self.process = await start_dispatcher(self.env)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


@pytest.fixture(scope="module")
async def private_dispatcher(
    broker: PrivateRabbitMQ, process_env: dict[str, str]
) -> AsyncIterator[SupervisedDispatcher]:
    dispatcher = SupervisedDispatcher({**process_env, "AMQP_URL": broker.amqp_url()})
    await dispatcher.ensure_running()
    yield dispatcher
    await dispatcher.stop()


def private_settings(broker: PrivateRabbitMQ, publish_timeout: float) -> Settings:
    return Settings(amqp_url=broker.amqp_url(), publish_timeout=publish_timeout)


class Stream:
    """Producers calling the SDK in a loop, one by one and in batches, until told to finish."""

    def __init__(
        self, service: NotificationService, user_id: str, rng: random.Random, restart_after: int
    ) -> None:
        self.service = service
        self.user_id = user_id
        self.rng = rng
        self.returned: list[uuid.UUID] = []
        self.restart_after = restart_after
        self.time_to_restart = asyncio.Event()
        self.restart_done = asyncio.Event()

    def _record(self, event_ids: list[uuid.UUID]) -> None:
        self.returned.extend(event_ids)
        if len(self.returned) >= self.restart_after:
            self.time_to_restart.set()

    async def _one(self) -> None:
        n = len(self.returned)
        event_id = await self.service.notify_tour_started(self.user_id, f"b{n}", "Old City Walk")
        self._record([event_id])

    async def one_by_one(self) -> None:
        while not self.restart_done.is_set():
            await self._one()
            await asyncio.sleep(CALL_PACE)
        for _ in range(AFTER_RESTART):
            await self._one()

    async def _batch(self, size: int | None = None) -> None:
        envelopes = [
            self.service.build(
                "tour_completed",
                user_id=self.user_id,
                data={"booking_id": f"x{i}", "tour_name": "T"},
            )
            for i in range(size or self.rng.randint(10, 60))
        ]
        self._record(await self.service.publish_many(envelopes))

    async def flood(self) -> None:
        while not self.restart_done.is_set():
            await self._batch(FLOOD_BATCH)

    async def batches(self) -> None:
        while not self.restart_done.is_set():
            await self._batch()
            await asyncio.sleep(BATCH_PACE)
        await self._batch()


async def stored_once(engine: AsyncEngine, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT event_id, count(*) AS n FROM notification_events "
                "WHERE event_id = ANY(:ids) GROUP BY event_id"
            ),
            {"ids": event_ids},
        )
        return {row.event_id: row.n for row in result}


@pytest.mark.parametrize("seed", RESTART_SEEDS)
async def test_every_event_whose_call_returned_is_stored_once_across_a_restart(
    broker: PrivateRabbitMQ,
    private_dispatcher: SupervisedDispatcher,
    engine: AsyncEngine,
    user_id: str,
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = random.Random(seed)
    service = NotificationService(
        Publisher(private_settings(broker, 60.0), name=f"chaos-{seed}"), producer="chaos"
    )
    stream = Stream(service, user_id, rng, restart_after=rng.randint(30, 200))

    async def restart() -> None:
        await stream.time_to_restart.wait()
        # Batches go out back to back until the broker is back, so the stop lands while
        # hundreds of messages are sent and unconfirmed, however long rabbitmqctl takes.
        in_flight = asyncio.create_task(stream.flood())
        await broker.stop_app()
        await broker.start_app()
        stream.restart_done.set()
        await in_flight

    caplog.set_level(logging.WARNING, logger="notify.publisher")
    try:
        await asyncio.wait_for(
            asyncio.gather(
                restart(), stream.batches(), *(stream.one_by_one() for _ in range(WORKERS))
            ),
            STREAM_LIMIT,
        )
    finally:
        await service.close()
    returned = stream.returned
    await private_dispatcher.ensure_running()
    connection = await aio_pika.connect_robust(broker.amqp_url())
    try:
        async with watch_deliveries(connection, topology.user_key(user_id)) as deliveries:
            # Watching first, then reading the log: what is not stored yet will be delivered.
            counts = await stored_once(engine, returned)
            for event_id in set(returned) - set(counts):
                await deliveries.wait_for(event_id, timeout=30)
    finally:
        await connection.close()
    counts = await stored_once(engine, returned)
    assert len(set(returned)) == len(returned)
    assert set(counts) == set(returned)
    assert set(counts.values()) == {1}

    resent = [r for r in caplog.records if r.name == "notify.publisher" and "again" in r.msg]
    assert resent, "no publish was interrupted by the restart: the test proved nothing"


async def test_a_publish_without_confirm_raises_within_the_timeout(
    broker: PrivateRabbitMQ, private_dispatcher: SupervisedDispatcher, user_id: str
) -> None:
    service = NotificationService(Publisher(private_settings(broker, 1.0)), producer="chaos")
    envelope = service.build(
        "tour_started", user_id=user_id, data={"booking_id": "b1", "tour_name": "T"}
    )
    await service.publisher.publish(envelope)  # connected while the broker is up
    await broker.stop_app()
    try:
        with pytest.raises(PublishTimeout) as caught:
            await asyncio.wait_for(service.publisher.publish(envelope), STREAM_LIMIT)
        assert caught.value.unconfirmed == [envelope.event_id]
        assert "confirmed none of 1 pending events (of 1) for 1s" in str(caught.value)
    finally:
        await broker.start_app()
        await service.close()
