"""Publishing events to ``notifications.events`` with publisher confirms.

A publish returns only once RabbitMQ has confirmed every message it was given (each is then on
disk in the dispatcher's quorum queue). Many messages are in flight at once on one channel,
from one ``publish_many`` or from many concurrent ``publish`` calls; at most ``max_in_flight``
of one batch wait for their confirm at any moment, so that a huge batch does not fill the
broker's and the socket's buffers at once.

When the connection drops, RabbitMQ forgets which of the unconfirmed messages it took; the
robust connection comes back by itself, and every message of the call that has no confirm yet
is sent again with the same event_id. At worst that stores nothing twice, since the dispatcher
is idempotent on event_id. A message RabbitMQ refuses with a negative confirm (a node of a
cluster shutting down, a queue unavailable for a moment, a queue full with ``reject-publish``)
is sent again too, after a pause that grows while the refusals go on. A call that gets no
confirm for ``PUBLISH_TIMEOUT`` seconds (the broker down for longer, blocked by a resource
alarm, or refusing all along) raises ``PublishTimeout`` naming the events left unconfirmed; it
never hangs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from prometheus_client import CollectorRegistry

from producers import topology
from producers.broker import connect
from producers.envelope import (
    CANCELLED,
    SCHEMA_VERSION,
    ArchiveEvent,
    Envelope,
    PreferencesEvent,
    ReadEvent,
    ScheduleEvent,
    SeenEvent,
)
from producers.errors import PublishError
from producers.logs import context
from producers.metrics import producer_metrics
from producers.settings import Settings, get_settings, redact

log = logging.getLogger("notify.publisher")

DEFAULT_MAX_IN_FLIGHT = 2000
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
RECOVERY_PAUSE = 0.05
# The pause before refused messages are sent again: doubled at each round of refusals of one
# call, up to the last.
REFUSAL_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)

# A publish that fails with one of these lost its connection or channel: the broker may or may
# not have the message, so it is sent again once the robust connection is back.
CONNECTION_LOST = (
    aio_pika.exceptions.AMQPConnectionError,
    aiormq.exceptions.AMQPChannelError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the events exchange: what a validated event or an outbox row becomes."""

    event_id: uuid.UUID
    routing_key: str
    body: bytes
    producer: str | None = None

    @classmethod
    def of(
        cls,
        event: Envelope | ReadEvent | SeenEvent | ArchiveEvent | PreferencesEvent | ScheduleEvent,
    ) -> Outgoing:
        return cls(event.event_id, event.routing_key, event.to_json(), event.producer)

    def properties(self) -> aiormq.spec.Basic.Properties:
        return aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=str(self.event_id),
            message_type=self.routing_key,
            app_id=self.producer,
        )


class PublishTimeout(PublishError):
    """Some events got no confirm in time; ``unconfirmed`` lists them. Each may or may not be
    stored: publishing them again is safe, the dispatcher stores an event_id once."""

    def __init__(self, message: str, unconfirmed: Sequence[uuid.UUID]) -> None:
        super().__init__(message)
        self.unconfirmed = list(unconfirmed)


E = TypeVar(
    "E",
    Envelope,
    ReadEvent,
    SeenEvent,
    ArchiveEvent,
    PreferencesEvent,
    ScheduleEvent,
    Outgoing,
)


class _Refused(Exception):
    """RabbitMQ answered a publish with a negative confirm."""


class _Progress:
    """Pushes a batch's deadline back whenever confirms arrive, so that the timeout bounds
    a stall, not the time a large batch needs. The deadline moves at most ten times per
    timeout, which keeps the cost per confirm negligible."""

    def __init__(self, stall: asyncio.Timeout, timeout: float) -> None:
        self._stall = stall
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._moved_at = self._loop.time()
        self.count = 0  # confirms so far
        self.refusals = 0  # rounds of the call that ended with refused messages
        self.refused_last = False  # the last round's messages left were refused ones

    def confirmed(self) -> None:
        self.count += 1
        now = self._loop.time()
        if now - self._moved_at >= self._timeout / 10:
            self._stall.reschedule(now + self._timeout)
            self._moved_at = now


class Publisher:
    """A robust connection and a confirming channel, opened on first use.

    Safe to share between tasks of one event loop. Used from another event loop (a second
    ``asyncio.run`` of a script), it opens a new connection there. Its metrics
    (``notify_producer_*``, docs/metrics.md) go to ``registry``: prometheus-client's default
    ``REGISTRY`` unless another is given.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        name: str = "notify-producer",
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.metrics = producer_metrics(registry)
        self._given_settings = settings
        self._name = name
        self._max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None

    @property
    def settings(self) -> Settings:
        return self._given_settings or get_settings()

    async def publish(self, event: E) -> E:
        """Publish one event and return it once the broker confirmed it."""
        (published,) = await self.publish_many([event])
        return published

    async def publish_many(self, events: Sequence[E]) -> list[E]:
        """Publish a batch, many in flight at once; return it once every one is confirmed.

        Raises PublishTimeout when RabbitMQ confirms none of them for ``PUBLISH_TIMEOUT``
        seconds (a batch that makes progress may take longer in all; events it refuses are sent
        again meanwhile), and PublishError at once if one reaches no queue (the others are then
        not waited for).
        """
        batch = list(events)
        pending = outgoing = [e if isinstance(e, Outgoing) else Outgoing.of(e) for e in batch]
        timeout = self.settings.publish_timeout
        metrics = self.metrics
        progress: _Progress | None = None
        try:
            async with asyncio.timeout(timeout) as stall:
                progress = _Progress(stall, timeout)
                while pending:
                    channel = await self._ready()
                    pending = await self._send(channel, pending, progress)
        except TimeoutError:
            metrics.in_doubt.inc(len(pending))
            refused = progress is not None and progress.refused_last
            reason = self._timeout_reason(pending, len(batch), timeout, refused)
            raise PublishTimeout(reason, [o.event_id for o in pending]) from None
        except PublishError:
            metrics.failed.inc(len(batch) - (progress.count if progress else 0))
            raise
        finally:
            if progress is not None and progress.count:
                metrics.confirmed.inc(progress.count)
        if log.isEnabledFor(logging.DEBUG):
            for item in outgoing:
                log.debug(
                    "published event %s (%s): confirmed",
                    item.event_id,
                    item.routing_key,
                    extra=context(event_id=item.event_id, event_type=item.routing_key),
                )
        return batch

    async def cancel(
        self, scheduled_event_id: uuid.UUID, *, producer: str | None = None
    ) -> ScheduleEvent:
        """Withdraw a scheduled notification (published with ``deliver_at``) before it is
        due: publish its ``notification.cancelled`` and return it once confirmed. A cancel
        that comes after the release, or names no scheduled notification, changes nothing."""
        event = ScheduleEvent(
            event_id=uuid.uuid4(),
            schema_version=SCHEMA_VERSION,
            event_type=CANCELLED,
            scheduled_event_id=scheduled_event_id,
            producer=producer,
        )
        return await self.publish(event)

    async def _send(
        self, channel: AbstractRobustChannel, outgoing: Sequence[Outgoing], progress: _Progress
    ) -> list[Outgoing]:
        """Send each message; return those whose connection was lost before their confirm,
        and those RabbitMQ refused, once they can be sent again."""
        # The robust channel restores the topology and hands out its current AMQP channel;
        # messages go straight to that channel, which spares the connection-state checks
        # aio-pika's Exchange.publish makes for every message (docs/performance.md).
        underlay = await channel.get_underlay_channel()
        window = asyncio.Semaphore(self._max_in_flight)
        refused: list[Outgoing] = []

        async def one(item: Outgoing) -> Outgoing | None:
            async with window:
                try:
                    await self._confirm(underlay, item)
                except _Refused:
                    refused.append(item)
                    return None
                except CONNECTION_LOST as exc:
                    log.debug("publish of %s lost its connection: %r", item.event_id, exc)
                    return item
                except asyncio.CancelledError:
                    # A connection closed by force cancels the confirm futures of its channel;
                    # only a cancellation of this task itself is a real one.
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise
                    return item
                progress.confirmed()
                return None

        tasks = [asyncio.ensure_future(one(item)) for item in outgoing]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            # After a refusal the others are not awaited any more: stop them.
            for task in tasks:
                task.cancel()
        lost = [item for item in results if item is not None]
        progress.refused_last = bool(refused) and not lost
        if lost:
            self.metrics.resends.inc(len(lost))
            log.warning(
                "connection to RabbitMQ lost with %d of %d events unconfirmed; sending them "
                "again once it is back",
                len(lost),
                len(outgoing),
            )
            await self._wait_for_recovery(channel)
        if refused:
            self.metrics.refusals.inc(len(refused))
            pause = REFUSAL_PAUSES[min(progress.refusals, len(REFUSAL_PAUSES) - 1)]
            progress.refusals += 1
            log.warning(
                "RabbitMQ refused %d of %d events (a negative confirm: a queue unavailable "
                "or full); sending them again in %.2fs",
                len(refused),
                len(outgoing),
                pause,
            )
            if not lost:
                await asyncio.sleep(pause)
        return lost + refused

    @staticmethod
    async def _confirm(channel: aiormq.abc.AbstractChannel, item: Outgoing) -> None:
        if channel.is_closed:
            # A publish on a closed channel would wait for a confirm that never comes.
            raise aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
        try:
            result = await channel.basic_publish(
                item.body,
                exchange=topology.EVENTS_EXCHANGE,
                routing_key=item.routing_key,
                properties=item.properties(),
                mandatory=True,
            )
        except aiormq.exceptions.DeliveryError as exc:
            if isinstance(exc.frame, aiormq.spec.Basic.Nack):
                raise _Refused() from exc
            raise PublishError(
                f"RabbitMQ refused event {item.event_id} ({exc}): check the broker's log "
                "(a queue length limit or a full disk refuses messages)"
            ) from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise PublishError(
                f"event {item.event_id} ({item.routing_key}) reached no queue: the dispatcher "
                f"queue {topology.DISPATCHER_QUEUE} is missing or unbound; run `notify "
                "dispatcher` once, which declares it"
            )

    @staticmethod
    async def _wait_for_recovery(channel: AbstractRobustChannel) -> None:
        # The connection's close callbacks run shortly after the publishes failed; until they
        # have, the channel still looks ready. The pause lets them run, and it also bounds the
        # retry rate while the broker is down.
        await asyncio.sleep(RECOVERY_PAUSE)
        await channel.ready()

    async def _ready(self) -> AbstractRobustChannel:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Connections belong to the loop that opened them; a new loop opens its own.
            self._loop, self._opening = loop, asyncio.Lock()
            self._connection = self._channel = None
        assert self._opening is not None
        async with self._opening:
            if self._channel is None:
                self._channel = await self._open()
        await self._channel.ready()
        return self._channel

    async def _open(self) -> AbstractRobustChannel:
        settings = self.settings
        connection = await connect(settings.amqp_url, self._name)
        try:
            channel = await connection.channel(publisher_confirms=True)
            # The dispatcher's queue is declared here too, so an event published before any
            # dispatcher has ever run is kept rather than dropped as unroutable.
            await topology.declare_dispatcher_queue(channel, settings.dispatcher_delivery_limit)
            await topology.declare_events_exchange(channel)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        assert isinstance(channel, AbstractRobustChannel)
        return channel

    def _timeout_reason(
        self, pending: Sequence[Outgoing], total: int, timeout: float, refused: bool = False
    ) -> str:
        first = ", ".join(str(o.event_id) for o in pending[:3])
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        check = (
            "It refused them each time (a negative confirm): check the broker's log for an "
            "unavailable queue or a length limit with reject-publish"
            if refused
            else "Check that the broker is up and not blocked (disk or memory alarm)"
        )
        return (
            f"RabbitMQ at {redact(self.settings.amqp_url)} confirmed none of {len(pending)} "
            f"pending events (of {total}) for {timeout:g}s ({first}{more}); each may or may not be "
            f"stored. {check}, then publish them again: the same event_id is stored once. "
            "PUBLISH_TIMEOUT sets the wait."
        )

    async def close(self) -> None:
        connection = self._connection
        self._connection = self._channel = None
        if connection is not None and self._loop is asyncio.get_running_loop():
            await connection.close()

    async def __aenter__(self) -> Publisher:
        await self._ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
