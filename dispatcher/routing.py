"""Publishing a committed batch's deliveries to ``notifications.deliver``.

aio-pika's ``Exchange.publish`` hands each message to the connection's writer on its own and
waits for it to be flushed: one event-loop round trip and one socket write per message, which
was the largest cost of a batch. Here the frames of every message of the batch
(``Basic.Publish``, header, body, exactly what ``basic_publish`` sends) are marshalled into
one buffer and written to the channel at once: one write per batch.

The channel is in confirm mode. ``send`` writes a batch and returns its ``Confirms`` without
waiting: one dispatcher's batches keep their order on its channel, so a dispatcher waits for
the confirms only before it hands the routing lock on. A transient message is confirmed once
it is in each queue it was routed to, so the next dispatcher's batches cannot overtake these
(``dispatcher.store``, "Routing in log order"). The confirms are
registered with aiormq's channel exactly as its own ``basic_publish`` registers them (one
future per delivery tag, under the channel's lock), so its confirm and channel-close handling
settle them.

That reaches into aiormq's channel (``delivery_tag``, ``confirmations``, ``write_queue``,
``lock``), which is not its public API: the dispatcher refuses to start with an aiormq outside
the versions it was checked against (``AIORMQ_CHECKED``, matching the pin in pyproject.toml),
and tests/integration/test_dependency_contracts.py checks those attributes on a real channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq import spec
from aiormq.abc import ChannelFrame, FrameType
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from dispatcher.failures import BROKER_FAILURES, broker_cancelled, one_line
from dispatcher.records import Delivery
from producers import topology
from producers.runner import version_in

AIORMQ_CHECKED = ((7, 2), (8,))
if not version_in("aiormq", *AIORMQ_CHECKED):
    raise ImportError(
        "dispatcher.routing writes to aiormq's channel internals and was checked with aiormq "
        ">=7.2,<8 (the range pyproject.toml pins); install a version in that range"
    )

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


class NotDelivered(Exception):
    """The broker may not have some of the deliveries: they are sent again later."""


@contextmanager
def _not_delivered() -> Iterator[None]:
    try:
        yield
    except BROKER_FAILURES as exc:
        if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
            raise
        raise NotDelivered(one_line(exc)) from exc


class Confirms:
    """RabbitMQ's confirms of one batch of deliveries, to be awaited later."""

    def __init__(self, futures: Sequence[asyncio.Future[object]]) -> None:
        self._futures = futures

    async def wait(self) -> None:
        """Return once every delivery is confirmed; raise ``NotDelivered`` on a nack, a
        channel or connection closed first, or no confirm within ``CONFIRM_TIMEOUT``."""
        if not self._futures:
            return
        with _not_delivered():
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                outcomes = await asyncio.gather(*self._futures, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome


async def write_at_once(underlay: aiormq.Channel, frames: Sequence[FrameType]) -> None:
    """Write ``frames`` to the channel as one piece, under the channel's lock, as aiormq's own
    methods write theirs; raise if the channel is closed (no frame goes out on it then)."""
    async with underlay.lock:
        if underlay.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("the channel is closed")
        await underlay.write_queue.put(ChannelFrame.marshall(underlay.number, frames))


class DeliveryRoute:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel

    async def send(self, deliveries: Sequence[Delivery]) -> Confirms:
        """Write the deliveries to the channel, in log order, without waiting for RabbitMQ;
        the returned ``Confirms`` says when it has them all. Raises ``NotDelivered`` if the
        channel is closed."""
        if not deliveries:
            return Confirms(())
        with _not_delivered():
            return await self._send(deliveries)

    async def _send(self, deliveries: Sequence[Delivery]) -> Confirms:
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
        return Confirms(confirms)
