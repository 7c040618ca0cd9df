"""The edge's side of RabbitMQ: one exclusive queue per process on the delivery exchange.

The queue lives as long as the process's connection; RabbitMQ deletes it when the process
dies. Keys are bound while a local socket wants them (see ``registry``); ``broadcast`` is
bound for the life of the process. Deliveries are consumed without acks: this is the fast
path, and what it drops is replayed from Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from producers import topology
from producers.broker import connect

log = logging.getLogger("notify.edge")


@dataclass(frozen=True, slots=True)
class Delivery:
    key: str  # the routing key: user.<id>, room.<name> or broadcast
    text: str  # the frame, already encoded
    seq: int | None  # the event's position in the log; None for a relayed room message
    origin: str | None  # the sending connection of a relayed room message


OnDelivery = Callable[[Delivery], None]


class EdgeBroker:
    def __init__(self, amqp_url: str, node_id: str) -> None:
        self.amqp_url = amqp_url
        self.node_id = node_id
        self.queue_name = topology.edge_queue_name(node_id)
        self.connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None

    async def start(
        self,
        on_delivery: OnDelivery,
        on_lost: Callable[[], None],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self.connection = await connect(self.amqp_url, f"notify-edge {self.node_id}")

        def lost(*_: Any) -> None:
            on_lost()

        # Called as soon as the connection drops, before anything is restored: the queue is
        # gone, and with it whatever is routed until it is declared and bound again.
        self.connection.close_callbacks.add(lost)
        channel = await self.connection.channel()
        self._exchange = await topology.declare_deliver_exchange(channel)
        self._queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await self._queue.bind(self._exchange, topology.BROADCAST_KEY)

        async def consume(message: AbstractIncomingMessage) -> None:
            delivery = decode(message)
            if delivery is not None:
                on_delivery(delivery)

        await self._queue.consume(consume, no_ack=True)

        async def reconnected(*_: Any) -> None:
            await on_reconnect()

        # Called once the robust channel has restored the queue, its bindings and its
        # consumer: from then on deliveries flow again, and the gap can be caught up.
        channel.reopen_callbacks.add(reconnected)

    async def channel(self) -> AbstractChannel:
        assert self.connection is not None
        return await self.connection.channel()

    async def bind(self, key: str) -> None:
        assert self._queue is not None and self._exchange is not None
        await self._queue.bind(self._exchange, key)

    async def unbind(self, key: str) -> None:
        assert self._queue is not None and self._exchange is not None
        await self._queue.unbind(self._exchange, key)

    async def relay(self, key: str, text: str, origin: str) -> None:
        """Publish a room message to every edge holding the room (not stored)."""
        assert self._exchange is not None
        await self._exchange.publish(
            aio_pika.Message(
                body=text.encode(),
                content_type="application/json",
                headers={topology.ORIGIN_HEADER: origin},
                delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            ),
            routing_key=key,
            mandatory=False,
        )

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


def decode(message: AbstractIncomingMessage) -> Delivery | None:
    headers = message.headers or {}
    key = message.routing_key
    seq = headers.get(topology.SEQ_HEADER)
    origin = headers.get(topology.ORIGIN_HEADER)
    if key is None or not (isinstance(seq, int) or isinstance(origin, str)):
        log.warning("ignoring a delivery with neither %s nor %s", topology.SEQ_HEADER,
                    topology.ORIGIN_HEADER)  # fmt: skip
        return None
    return Delivery(
        key=key,
        text=message.body.decode(),
        seq=seq if isinstance(seq, int) else None,
        origin=origin if isinstance(origin, str) else None,
    )
