"""Publishing a committed batch's deliveries to ``notifications.deliver``.

aio-pika's ``Exchange.publish`` hands each message to the connection's writer on its own and
waits for it to be flushed: one event-loop round trip and one socket write per message, which
was the largest cost of a batch. Here the frames of every message of the batch
(``Basic.Publish``, header, body, exactly what ``basic_publish`` sends) are marshalled into
one buffer and written to the channel at once: one write per batch.

The channel is in confirm mode, and ``publish`` returns once RabbitMQ confirmed every message
of the batch: a transient message is confirmed once it is in each queue it was routed to,
which is what lets the dispatchers hand the routing lock on without the next batch
overtaking this one (``dispatcher.store``, "Routing in log order"). The confirms are
registered with aiormq's channel exactly as its own ``basic_publish`` registers them (one
future per delivery tag, under the channel's lock), so its confirm and channel-close handling
settle them.
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
CONFIRM_TIMEOUT = 10.0


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
        """Publish in log order; return once RabbitMQ confirmed all of them. Raises
        ``aiormq.exceptions.DeliveryError`` on a nack, the channel's or connection's error if
        it closes first, ``TimeoutError`` after ``CONFIRM_TIMEOUT``."""
        if not deliveries:
            return
        underlay = await self.channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel) and underlay.publisher_confirms
        frames = [f for d in deliveries for f in _frames(d, underlay.max_content_size)]
        confirms: list[asyncio.Future[object]] = []
        async with underlay.lock:
            for _ in deliveries:
                underlay.delivery_tag += 1
                confirm = underlay.create_future()
                underlay.confirmations[underlay.delivery_tag] = confirm
                confirms.append(confirm)
            await underlay.write_queue.put(ChannelFrame.marshall(underlay.number, frames))
        async with asyncio.timeout(CONFIRM_TIMEOUT):
            outcomes = await asyncio.gather(*confirms, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
