"""The edge's side of RabbitMQ: one exclusive queue per process on the delivery exchange.

The queue lives as long as the process's connection; RabbitMQ deletes it when the process
dies. After a loss, the next connection declares a queue of its own, under a new name
(``notifications.edge.<node_id>.2``, ``.3``, …), bound to ``broadcast`` and consumed
(``connection_queues`` says why it is not left to aio-pika's robust channel). Keys are bound
while a local socket wants them (see ``registry``); ``broadcast`` is bound for the life of each
queue. Deliveries are consumed without acks: this is the fast path, and what it drops is
replayed from Postgres.

Binds are sent in batches: every key asked for while a batch is on its way joins the next
one, sent as no-wait ``queue.bind`` methods in one write (``dispatcher.routing.write_at_once``,
the aiormq adapter) followed by one synchronous method on the same channel. RabbitMQ handles a
channel's methods in order, so that method's answer means every bind before it is in place:
one round trip for the batch, however many keys it holds. After a loss the registry binds the
keys to the new queue itself (the catch-up asks it to), in one batch. Unbinds (which AMQP
has no no-wait form of) go over a channel of their own, so that a backlog of them never delays
a batch of binds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq import spec

from dispatcher.routing import write_at_once
from producers import topology
from producers.broker import connect
from socket_edge.connection_queues import ConnectionQueues, Declare

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
        self._queues: ConnectionQueues | None = None
        self._exchange: AbstractExchange | None = None
        self._unbind_channel: AbstractChannel | None = None
        self._on_delivery: OnDelivery | None = None
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.bind_batches = 0

    async def start(
        self,
        on_delivery: OnDelivery,
        on_lost: Callable[[], None],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Connect, and declare the queue. ``on_lost`` is called as soon as the queue is gone
        (the connection dropped, or its channel closed), ``on_reconnect`` once a new queue is
        declared, bound to ``broadcast`` and consumed: from then on deliveries flow again, the
        keys can be bound again and the gap caught up."""
        self._on_delivery = on_delivery
        self.connection = await connect(self.amqp_url, f"notify-edge {self.node_id}")
        relay_channel = await self.connection.channel()
        self._exchange = await topology.declare_deliver_exchange(relay_channel)
        self._unbind_channel = await self.connection.channel()
        self._queues = ConnectionQueues(
            self.connection, self._declare, "the edge queue", on_lost, on_reconnect
        )
        await self._queues.start()

    async def _declare(self, channel: AbstractChannel, generation: int) -> None:
        """The queue: ``notifications.edge.<node_id>`` at first, then ``.2``, ``.3``, … after
        each loss, so that no cleanup of an earlier one can take it (``connection_queues``)."""
        base = topology.edge_queue_name(self.node_id)
        name = base if generation == 1 else f"{base}.{generation}"
        exchange = await topology.declare_deliver_exchange(channel)
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(exchange, topology.BROADCAST_KEY)
        await queue.consume(self._consume, no_ack=True)
        self.queue_name = name
        if generation > 1:
            log.warning("edge node %s consuming %s", self.node_id, name)

    async def _consume(self, message: AbstractIncomingMessage) -> None:
        delivery = decode(message)
        if delivery is not None and self._on_delivery is not None:
            self._on_delivery(delivery)

    async def channel(self) -> AbstractChannel:
        assert self.connection is not None
        return await self.connection.channel()

    async def connection_queues(self, declare: Declare, what: str) -> ConnectionQueues:
        """Queues of another part of the edge that go with this connection, declared anew on
        each (``connection_queues``); started."""
        assert self.connection is not None
        queues = ConnectionQueues(self.connection, declare, what)
        await queues.start()
        return queues

    async def bind(self, key: str) -> None:
        """Return once ``key`` is bound: with the batch on its way if it is not sent yet,
        else with the next one."""
        future = self._pending.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # Retrieved here, so that a batch failing after its callers gave up is not
            # reported as an exception nobody retrieved.
            future.add_done_callback(_retrieve)
            self._pending[key] = future
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush(), name="edge-binds")
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await self.bind_many(batch)
            except BaseException as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                for future in batch.values():
                    if not future.done():
                        future.set_result(None)

    async def bind_many(self, keys: Collection[str]) -> None:
        """Bind every key, in one round trip; raise if the channel fails meanwhile. While the
        queue is being declared again (after a loss), wait for it."""
        assert self._queues is not None
        channel = await self._queues.channel()
        assert isinstance(channel, aiormq.Channel)
        queue = self.queue_name
        binds = [
            spec.Queue.Bind(
                queue=queue, exchange=topology.DELIVER_EXCHANGE, routing_key=key, nowait=True
            )
            for key in keys
        ]
        # One write for the whole batch: a call per bind would wait for an event-loop turn
        # each, which under a storm is most of a handshake's time.
        await write_at_once(channel, binds)
        await channel.queue_declare(queue, passive=True)
        self.bind_batches += 1

    async def unbind(self, key: str) -> None:
        assert self._unbind_channel is not None
        channel = await self._unbind_channel.get_underlay_channel()
        await channel.queue_unbind(self.queue_name, topology.DELIVER_EXCHANGE, key)

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

    @property
    def queue_ready(self) -> bool:
        """The queue of the current connection is declared, bound to ``broadcast`` and
        consumed."""
        return self._queues is not None and self._queues.ready

    async def close(self) -> None:
        if self._queues is not None:
            await self._queues.close()
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


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
