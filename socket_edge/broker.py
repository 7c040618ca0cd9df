"""The edge's side of RabbitMQ: one exclusive queue per process on the delivery exchange.

The queue lives as long as the process's connection; RabbitMQ deletes it when the process
dies. Keys are bound while a local socket wants them (see ``registry``); ``broadcast`` is
bound for the life of the process. Deliveries are consumed without acks: this is the fast
path, and what it drops is replayed from Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from producers import topology
from producers.broker import connect

log = logging.getLogger("notify.edge")

OnDelivery = Callable[[str, int, str], None]
"""Called with (routing key, seq, frame text) for every delivery."""


class EdgeBroker:
    def __init__(self, amqp_url: str, node_id: str) -> None:
        self.amqp_url = amqp_url
        self.node_id = node_id
        self.queue_name = topology.edge_queue_name(node_id)
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None

    async def start(self, on_delivery: OnDelivery) -> None:
        self._connection = await connect(self.amqp_url, f"notify-edge {self.node_id}")
        channel = await self._connection.channel()
        self._exchange = await topology.declare_deliver_exchange(channel)
        self._queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await self._queue.bind(self._exchange, topology.BROADCAST_KEY)

        def handle(message: AbstractIncomingMessage) -> None:
            headers = message.headers or {}
            seq = headers.get(topology.SEQ_HEADER)
            key = message.routing_key
            if not isinstance(seq, int) or key is None:
                log.warning("ignoring a delivery without %s header", topology.SEQ_HEADER)
                return
            on_delivery(key, seq, message.body.decode())

        async def consume(message: AbstractIncomingMessage) -> None:
            handle(message)

        await self._queue.consume(consume, no_ack=True)

    async def bind(self, key: str) -> None:
        assert self._queue is not None and self._exchange is not None
        await self._queue.bind(self._exchange, key)

    async def unbind(self, key: str) -> None:
        assert self._queue is not None and self._exchange is not None
        await self._queue.unbind(self._exchange, key)

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
