"""Publishing envelopes to ``notifications.events`` with publisher confirms.

A publish returns only once RabbitMQ has confirmed the message (it is then on disk in the
dispatcher's quorum queue). Many publishes may be in flight at once on one channel; a
connection lost mid-flight is retried with the same event_id until ``timeout`` runs out, which
at worst stores nothing twice: the dispatcher is idempotent on event_id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from producers import topology
from producers.broker import connect
from producers.envelope import Envelope
from producers.errors import PublishError
from producers.settings import Settings, get_settings

log = logging.getLogger(__name__)

RETRY_PAUSE = 0.25


def to_message(envelope: Envelope) -> aio_pika.Message:
    return aio_pika.Message(
        body=envelope.to_json(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(envelope.event_id),
        type=envelope.notification_type.value,
        app_id=envelope.producer,
    )


class Publisher:
    """A connection and a confirming channel, opened on first use."""

    def __init__(self, settings: Settings | None = None, name: str = "notify-producer") -> None:
        self._given_settings = settings
        self._name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._opening = asyncio.Lock()

    @property
    def _settings(self) -> Settings:
        return self._given_settings or get_settings()

    async def _ready(self) -> AbstractExchange:
        if self._exchange is not None:
            return self._exchange
        async with self._opening:
            if self._exchange is None:
                self._connection = await connect(self._settings.amqp_url, self._name)
                self._channel = await self._connection.channel(publisher_confirms=True)
                # The dispatcher's queue is declared here too, so an event published before
                # any dispatcher has ever run is kept rather than dropped as unroutable.
                await topology.declare_dispatcher_queue(
                    self._channel, self._settings.dispatcher_delivery_limit
                )
                self._exchange = await topology.declare_events_exchange(self._channel)
        assert self._exchange is not None
        return self._exchange

    async def publish(self, envelope: Envelope) -> Envelope:
        """Publish one envelope and wait for the broker's confirm."""
        exchange = await self._ready()
        deadline = asyncio.get_running_loop().time() + self._settings.publish_timeout
        message = to_message(envelope)
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise PublishError(
                    f"RabbitMQ did not confirm event {envelope.event_id} within "
                    f"{self._settings.publish_timeout:g}s; it may or may not have been stored"
                )
            try:
                await exchange.publish(message, envelope.routing_key, timeout=remaining)
                return envelope
            except asyncio.CancelledError:
                raise
            except aio_pika.exceptions.DeliveryError as exc:
                raise PublishError(f"RabbitMQ refused event {envelope.event_id}: {exc}") from exc
            except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
                log.warning("publish of %s interrupted (%s); retrying", envelope.event_id, exc)
                await asyncio.sleep(min(RETRY_PAUSE, max(remaining, 0)))

    async def publish_many(self, envelopes: Iterable[Envelope]) -> list[Envelope]:
        """Publish a batch with every message in flight at once; return when all are confirmed."""
        return list(await asyncio.gather(*(self.publish(e) for e in envelopes)))

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None

    async def __aenter__(self) -> Publisher:
        await self._ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
