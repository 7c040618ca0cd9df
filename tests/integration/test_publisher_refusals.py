"""RabbitMQ refusing publishes with a negative confirm, as a node of a cluster does while it
shuts down: the SDK sends the refused events again, after a growing pause, until they are
confirmed; a refusal that never ends is a ``PublishTimeout`` that says so.

The refusals come from a queue of the test's own vhost, bound to the events exchange, that is
full from the start and set to ``reject-publish``."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import aio_pika
import pytest
from prometheus_client import CollectorRegistry

from producers import topology
from producers.envelope import Envelope
from producers.publisher import Publisher, PublishTimeout
from producers.settings import Settings
from tests.support.services import own_vhost

pytestmark = pytest.mark.integration

FULL_QUEUE = "test.full"


@pytest.fixture
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


def refusals(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("notify_producer_refusals_total") or 0.0


def note(i: int) -> Envelope:
    return Envelope.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "notification_type": "tour_started",
         "user_id": f"refused-{i}", "data": {"booking_id": "b1", "tour_name": "Old City"}}
    )  # fmt: skip


async def declare_full_queue(channel: aio_pika.abc.AbstractChannel) -> None:
    events = await topology.declare_events_exchange(channel)
    full = await channel.declare_queue(
        FULL_QUEUE, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await full.bind(events, "#")


async def stored_ids(channel: aio_pika.abc.AbstractChannel) -> list[str]:
    """The message ids in the dispatcher queue (a refused message may be in it already)."""
    queue = await channel.declare_queue(topology.DISPATCHER_QUEUE, passive=True)
    ids: list[str] = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        ids.append(str(message.message_id))
    return ids


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_refused_events_are_sent_again_until_the_broker_takes_them(
    vhost: str, seed: int
) -> None:
    rng = random.Random(seed)
    events = [note(i) for i in range(rng.randint(1, 400))]
    registry = CollectorRegistry()
    publisher = Publisher(Settings(amqp_url=vhost, publish_timeout=20), registry=registry)
    connection = await aio_pika.connect(vhost)
    try:
        await publisher.__aenter__()  # declares the dispatcher queue
        channel = await connection.channel()
        await declare_full_queue(channel)
        call = asyncio.create_task(publisher.publish_many(events))
        rounds = rng.randint(1, 3)
        while refusals(registry) < len(events) * rounds:
            assert not call.done(), call
            await asyncio.sleep(0.02)
        await channel.queue_delete(FULL_QUEUE)
        assert await call == events
        ids = await stored_ids(channel)
        assert set(ids) == {str(e.event_id) for e in events}
    finally:
        await publisher.close()
        await connection.close()


async def test_refusals_that_never_end_are_a_timeout_that_says_so(vhost: str) -> None:
    registry = CollectorRegistry()
    publisher = Publisher(Settings(amqp_url=vhost, publish_timeout=1.0), registry=registry)
    connection = await aio_pika.connect(vhost)
    try:
        await publisher.__aenter__()
        await declare_full_queue(await connection.channel())
        events = [note(i) for i in range(5)]
        with pytest.raises(PublishTimeout) as raised:
            await publisher.publish_many(events)
        assert set(raised.value.unconfirmed) == {e.event_id for e in events}
        assert "refused them each time" in str(raised.value)
        assert refusals(registry) >= 2 * len(events)
    finally:
        await publisher.close()
        await connection.close()
