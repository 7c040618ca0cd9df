"""Publishing a committed batch's deliveries to ``notifications.deliver``.

The delivery exchange is the fast path and is published without confirms (Postgres and the
replay make up for anything it drops). aio-pika's ``Exchange.publish`` hands each message to
the connection's writer on its own and waits for it to be flushed: one event-loop round trip
and one socket write per message, which was the largest cost of a batch. Here the frames of
every message of the batch (``Basic.Publish``, header, body, exactly what ``basic_publish``
sends) are marshalled into one buffer and written to the channel at once: one write per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import ChannelFrame, FrameType
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from dispatcher.records import Delivery
from producers import topology

NOT_PERSISTENT = 1
FLUSH_TIMEOUT = 10.0


def _frames(delivery: Delivery, max_body: int) -> Iterator[FrameType]:
    properties = spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=NOT_PERSISTENT,
        headers={topology.SEQ_HEADER: delivery.seq},
    )
    yield spec.Basic.Publish(
        exchange=topology.DELIVER_EXCHANGE, routing_key=delivery.routing_key, mandatory=False
    )
    yield ContentHeader(properties=properties, body_size=len(delivery.body))
    for start in range(0, len(delivery.body), max_body):
        yield ContentBody(delivery.body[start : start + max_body])


class DeliveryRoute:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        """Publish in log order; return once all of them are written to the socket."""
        if not deliveries:
            return
        underlay = await self.channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        frames = [f for d in deliveries for f in _frames(d, underlay.max_content_size)]
        flushed = asyncio.get_running_loop().create_future()
        await underlay.write_queue.put(
            ChannelFrame.marshall(underlay.number, frames, drain_future=flushed)
        )
        await asyncio.wait_for(flushed, FLUSH_TIMEOUT)
