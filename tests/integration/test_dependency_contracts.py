"""The dispatcher writes a batch's deliveries through aiormq's channel internals
(dispatcher/routing.py): a real channel in confirm mode still has each of them, with the type
the writer relies on. An aiormq upgrade that changes them fails here, naming the attribute."""

from __future__ import annotations

import asyncio

import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from dispatcher import routing
from producers.runner import version_in

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
