"""The dispatcher writes a batch's deliveries through aiormq's channel internals
(dispatcher/routing.py): a real channel in confirm mode still has each of them, with the type
the writer relies on. An aiormq upgrade that changes them fails here, naming the attribute."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from dispatcher import routing
from producers import topology
from producers.runner import version_in
from producers.settings import Settings
from socket_edge.broker import Delivery, EdgeBroker

pytestmark = pytest.mark.integration


async def test_a_confirming_aiormq_channel_has_what_the_delivery_writer_uses(
    amqp: AbstractRobustConnection,
) -> None:
    assert version_in("aiormq", *routing.AIORMQ_CHECKED)
    channel = await amqp.channel(publisher_confirms=True)
    try:
        underlay = await channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        assert underlay.publisher_confirms is True
        assert isinstance(underlay.delivery_tag, int), "delivery_tag"
        assert hasattr(underlay.confirmations, "__setitem__"), "confirmations"
        assert isinstance(underlay.write_queue, asyncio.Queue), "write_queue"
        assert hasattr(underlay.lock, "__aenter__"), "lock: an async context manager"
        assert isinstance(underlay.number, int) and isinstance(underlay.max_content_size, int)
        assert asyncio.isfuture(underlay.create_future()), "create_future"
    finally:
        await channel.close()


async def test_a_batch_of_no_wait_binds_is_in_place_once_the_batch_returns(
    settings: Settings,
) -> None:
    """The edge binds keys in batches: no-wait binds, then one synchronous method whose answer
    means the broker applied every bind before it. Published right after the batch returns,
    a message to each of a thousand keys reaches the edge's queue."""
    got: list[str] = []
    arrived = asyncio.Event()
    keys = [f"user.contract-{uuid.uuid4().hex[:8]}-{i}" for i in range(1_000)]

    def on_delivery(delivery: Delivery) -> None:
        got.append(delivery.key)
        if len(got) == len(keys):
            arrived.set()

    async def nothing() -> None:
        return None

    broker = EdgeBroker(settings.amqp_url, f"contract-{uuid.uuid4().hex[:8]}")
    await broker.start(on_delivery, lambda: None, nothing)
    try:
        await asyncio.gather(*(broker.bind(key) for key in keys))
        assert broker.bind_batches <= 3, "concurrent binds travel together"
        # Published on the same connection, right behind the binds on the wire: only the
        # batch's closing round trip keeps them from overtaking the binds in the broker.
        channel = await broker.channel()
        exchange = await topology.declare_deliver_exchange(channel)
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(b"{}", headers={topology.SEQ_HEADER: 1}), routing_key=key
                )
                for key in keys
            )
        )
        await asyncio.wait_for(arrived.wait(), 10)
        assert sorted(got) == sorted(keys)
        await channel.close()
    finally:
        await broker.close()
