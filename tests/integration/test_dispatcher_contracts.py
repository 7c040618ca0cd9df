"""Where the dispatcher reads aiormq's frames itself (dispatcher/batching.py: the bulk frame
reader, the delivery tap; dispatcher/routing.py: the confirm tracker), the installed aiormq
still works the way they rely on, and on a real connection they hand over what aiormq would:
every delivery with its body and headers, every confirm. An aiormq upgrade that changes what
they lean on fails here, naming it."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import aiormq.connection
import pytest
from aio_pika.abc import AbstractRobustConnection

from dispatcher import batching, routing
from dispatcher.batching import DeliveryTap, FrameReader, Received
from dispatcher.records import Delivery
from dispatcher.routing import DeliveryRoute
from producers import topology
from producers.runner import version_in
from producers.settings import Settings

pytestmark = pytest.mark.integration


def test_aiormqs_connection_reads_through_the_receiver_and_hands_frames_to_the_queue() -> None:
    assert version_in("aiormq", *routing.AIORMQ_CHECKED)
    connect = inspect.getsource(aiormq.connection.Connection.connect)
    assert "FrameReceiver(reader)" in connect, "connect no longer makes a FrameReceiver"
    reader = inspect.getsource(aiormq.connection.Connection)
    assert "async for weight, channel, frame in frame_receiver" in reader
    assert "await ch.frames.put((weight, frame))" in reader, "frames reach a channel otherwise"
    receiver = inspect.getsource(aiormq.connection.FrameReceiver)
    for attribute in ("self.reader", "self.started", "async def get_frame"):
        assert attribute in receiver, f"aiormq's FrameReceiver has no {attribute}"
    channel = inspect.getsource(aiormq.Channel)
    assert "await self.frames.get()" in channel, "a channel reads its frames otherwise"
    assert "self.on_consumer_cancel_callbacks" in channel


@pytest.fixture
async def bulk(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection that reads its frames through the dispatcher's FrameReader."""
    monkeypatch.setattr(aiormq.connection, "FrameReceiver", FrameReader)
    connection = await aio_pika.connect_robust(settings.amqp_url)
    yield connection
    await connection.close()


async def test_the_tap_takes_every_delivery_and_the_tracker_every_confirm(
    bulk: AbstractRobustConnection,
) -> None:
    """Deliveries of every size (one spans several body frames) and headers, published with
    the dispatcher's writer and confirmed by the tracker, are consumed by the tap in order."""
    key = f"user.contract-{uuid.uuid4().hex[:8]}"
    channel = await bulk.channel(publisher_confirms=True)
    consuming = await bulk.channel()
    exchange = await topology.declare_deliver_exchange(channel)
    queue = await consuming.declare_queue(exclusive=True)
    await queue.bind(exchange, key)
    underlay = await consuming.get_underlay_channel()
    assert isinstance(underlay, aiormq.Channel)
    assert isinstance(underlay.frames, asyncio.Queue), "frames"
    sizes = [0, 1, 100, underlay.max_content_size, 3 * underlay.max_content_size + 7] * 20
    sent = [Delivery(i + 1, key, bytes([i % 251]) * size) for i, size in enumerate(sizes)]
    got: list[Received] = []
    done = asyncio.Event()

    def on_message(message: Received) -> None:
        got.append(message)
        if len(got) == len(sent):
            done.set()

    tag = f"contract-{uuid.uuid4().hex}"
    DeliveryTap(underlay, tag, on_message)

    async def untapped(message: object) -> None:
        raise AssertionError(f"a delivery went past the tap: {message!r}")

    await underlay.basic_consume(queue.name, untapped, consumer_tag=tag)
    route = DeliveryRoute(channel)
    confirms = [await route.send(sent[i : i + 7]) for i in range(0, len(sent), 7)]
    for confirm in confirms:
        await confirm.wait()
    await asyncio.wait_for(done.wait(), 10)
    assert [(m.body, m.headers[topology.SEQ_HEADER], m.routing_key) for m in got] == [
        (d.body, d.seq, key) for d in sent
    ]
    await got[-1].ack(multiple=True)
    await channel.close()
    await consuming.close()


def test_the_bulk_reader_is_aiormqs_receiver_once_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiormq.connection, "FrameReceiver", aiormq.connection.FrameReceiver)
    batching.read_frames_in_bulk()
    assert aiormq.connection.FrameReceiver is FrameReader
