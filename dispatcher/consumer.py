"""The dispatcher: consume events in batches, store them, route them, then acknowledge.

For each batch, in this order:
1. decode and validate every message (a notification or a read event); an invalid one is
   re-published to the dead-letter exchange with its reason in ``x-notify-error``
   (confirmed) and counts as handled;
2. append the valid ones to the event log and apply them to the projections in one
   transaction;
3. send what that transaction produced to the delivery exchange: each new notification
   under its audience's key (unless its user's preferences mute or quiet it, or it waits in
   the schedule), and a sync under ``user.<id>`` for each read, seen, archive, unarchive or
   preferences event, each with its own log seq in ``x-notify-seq``;
4. acknowledge the whole batch with one ``multiple`` ack.

Steps 2 and 3 run inside a routing turn, which holds the routing lock so that the deliveries
of all dispatchers reach RabbitMQ in log order (``dispatcher.store``, "Routing in log
order"). A turn lasts as long as batches are waiting (at most ``TURN_BATCHES`` batches or
``TURN_SECONDS``); when it ends, the dispatcher waits for RabbitMQ's confirms of everything it
sent, moves the routing mark and releases the lock. Waiting for confirms after every batch
instead would idle the dispatcher for as long as RabbitMQ takes to route a batch.

A message is acknowledged only after its transaction committed (invariant 2), so a crash at
any point leaves it in the queue, and the store's idempotency on event_id absorbs the
redelivery (invariant 1). While PostgreSQL is unreachable the batch in hand is retried with
backoff and nothing is acknowledged; RabbitMQ holds the rest.

Beside the consumer runs the scheduler (``dispatcher.scheduler``), which publishes the
release of each scheduled notification once it is due.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import database, metrics, partitions
from dispatcher.batching import DeliveryTap, Inbox, Received, read_frames_in_bulk
from dispatcher.database import create_engine
from dispatcher.dead_letters import Letter, publish_refused
from dispatcher.failures import (
    BROKER_FAILURES,
    DELIVERY_COUNT_HEADER,
    broker_cancelled,
    is_last_delivery,
    is_missing_partition,
    is_transient,
    one_line,
)
from dispatcher.routing import DeliveryRoute
from dispatcher.scheduler import Scheduler
from dispatcher.settings import DispatcherSettings
from dispatcher.store import AppendResult, EventStore, RoutingTurn
from producers import topology
from producers.broker import connect
from producers.envelope import EnvelopeError, Event, parse_event
from producers.logs import context
from producers.publisher import Publisher
from producers.settings import redact
from producers.waiting import cancel_and_wait

log = logging.getLogger("notify.dispatcher")

RETRY_FIRST = 0.5
RETRY_MAX = 10.0

# A routing turn (the batches appended while holding the routing lock) ends when no batch is
# waiting, or after this many batches or seconds, so that two dispatchers take turns.
TURN_BATCHES = 20
TURN_SECONDS = 0.25

# Unacknowledged messages RabbitMQ may send ahead, in batches: one in hand, the next ones
# arriving (and validated on arrival) meanwhile.
PREFETCH_BATCHES = 2

# Seconds between attempts to consume again after RabbitMQ cancelled the consumer.
CONSUME_RETRY = 1.0


class Message(Letter, Protocol):
    """What the dispatcher uses of a message from its queue (``batching.Received``)."""

    def ack(self, multiple: bool = False) -> Awaitable[None]: ...

    def nack(self, requeue: bool = True) -> Awaitable[None]: ...


Parsed = tuple[Message, Event]


@dataclass
class Counters:
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    rerouted: int = 0
    batches: int = 0


class Dispatcher:
    def __init__(
        self,
        settings: DispatcherSettings,
        engine: AsyncEngine | None = None,
        dispatcher_metrics: metrics.DispatcherMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = dispatcher_metrics or metrics.shared()
        self.engine = engine or create_engine(settings.database_url, pre_ping=False)
        self.store = EventStore(
            self.engine, settings.broadcast_unread_window, critical=settings.critical_types
        )
        self.counters = Counters()
        self._route_to: DeliveryRoute | None = None
        self._turn: RoutingTurn | None = None
        self._turn_scope: AbstractAsyncContextManager[RoutingTurn] | None = None
        self._turn_started = 0.0
        self._turn_batches = 0
        self._dead_letter: AbstractExchange | None = None
        self._stopping = asyncio.Event()
        self._inbox: Inbox[Message] = Inbox()

    def received(self, message: Received) -> None:
        """A message from the queue, validated on arrival: while the batch before it is in
        its transaction, the event loop is free to do this. An unexpected failure of the
        validation is left to ``handle_batch``, which meets it again."""
        try:
            message.event = parse_event(message.body)
        except EnvelopeError as exc:
            message.refusal = exc.reason
        except Exception:  # noqa: BLE001 - met again, and raised, in handle_batch
            pass
        self._inbox.put(message)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and return."""
        process = f"{socket.gethostname()}:{os.getpid()}"
        name = f"notify-dispatcher {process}"
        await database.check(self.engine)  # fail fast on a wrong DATABASE_URL
        await database.check_schema(self.engine)
        await partitions.ensure(self.engine)  # this month's partition and the next ones
        connection = await connect(self.settings.amqp_url, name)
        scheduler_stop = asyncio.Event()
        scheduler_publisher = Publisher(self.settings, name=f"notify-scheduler {process}")
        releases: asyncio.Task[None] | None = None
        ahead: asyncio.Task[None] | None = None
        try:
            consume_channel = await connection.channel()
            await consume_channel.set_qos(
                prefetch_count=self.settings.dispatcher_batch_size * PREFETCH_BATCHES
            )
            queue = await topology.declare_dispatcher_queue(
                consume_channel, self.settings.dispatcher_delivery_limit
            )
            deliver_channel = await connection.channel(publisher_confirms=True)
            await topology.declare_deliver_exchange(deliver_channel)
            self._route_to = DeliveryRoute(deliver_channel)
            dead_letter_channel = await connection.channel(publisher_confirms=True)
            self._dead_letter, _ = await topology.declare_dead_letter(dead_letter_channel)

            inbox = self._inbox
            assert isinstance(consume_channel, AbstractRobustChannel)
            consumer = QueueConsumer(consume_channel, queue.name, self.received)
            await consumer.start()
            batches = asyncio.create_task(self._batch_loop(inbox), name="dispatcher-batches")
            scheduler = Scheduler(
                self.engine, scheduler_publisher, self.settings.schedule_poll_seconds
            )
            releases = asyncio.create_task(scheduler.run(scheduler_stop), name="scheduler")
            ahead = asyncio.create_task(
                partitions.keep_ahead(self.engine, scheduler_stop), name="partitions"
            )
            log.info(
                "dispatcher consuming %s from %s into %s (batch %d, wait %gms)",
                topology.DISPATCHER_QUEUE,
                redact(self.settings.amqp_url),
                redact(self.settings.database_url),
                self.settings.dispatcher_batch_size,
                self.settings.dispatcher_batch_wait_ms,
            )
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({batches, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if batches.done():
                stopped.cancel()
                batches.result()  # a crashed batch loop is a bug: let it be seen
            self._stopping.set()
            scheduler_stop.set()
            await consumer.stop()
            inbox.close()
            await batches
            log.info(
                "dispatcher stopped: %d stored, %d duplicates, %d dead-lettered",
                self.counters.stored,
                self.counters.duplicates,
                self.counters.dead_lettered,
            )
        finally:
            scheduler_stop.set()
            await cancel_and_wait(releases)  # a release in hand is published again later
            await cancel_and_wait(ahead)
            await scheduler_publisher.close()
            await connection.close()
            await self.engine.dispose()

    async def _batch_loop(self, inbox: Inbox[Message]) -> None:
        limit = self.settings.dispatcher_batch_size
        wait = self.settings.dispatcher_batch_wait_ms / 1000
        try:
            while (batch := await inbox.next_batch(limit, wait)) is not None:
                await self.handle_batch(batch.items)
                if batch.last:
                    return
                # Hand the routing lock on when there is nothing more to do at once, or when
                # the turn has lasted long enough for another dispatcher to have its go.
                if self._turn is not None and (
                    inbox.empty()
                    or self._turn_batches >= TURN_BATCHES
                    or asyncio.get_running_loop().time() - self._turn_started > TURN_SECONDS
                ):
                    await self._end_turn()
        finally:
            if self._turn is not None:
                await self._end_turn()

    async def handle_batch(self, batch: Sequence[Message]) -> None:
        self.counters.batches += 1
        valid: list[Parsed] = []
        refused: list[tuple[Message, str]] = []
        redelivered = 0
        for message in batch:
            if DELIVERY_COUNT_HEADER in (message.headers or ()):
                redelivered += 1
            if isinstance(message, Received):
                if message.event is not None:
                    valid.append((message, message.event))
                    continue
                if message.refusal is not None:
                    refused.append((message, message.refusal))
                    continue
            try:
                valid.append((message, parse_event(message.body)))
            except EnvelopeError as exc:
                refused.append((message, exc.reason))
        self.metrics.batch(len(batch), redelivered)
        if refused:
            await asyncio.gather(*(self._dead_letter_one(m, reason) for m, reason in refused))
        try:
            await self._store([e for _, e in valid])
        except _Stopping:
            return  # unacknowledged: RabbitMQ gives them to the next consumer
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("batch of %d failed (%s); storing one by one", len(valid), one_line(exc))
            await self._one_by_one(valid)
            for message, _ in refused:
                await self._settle(message.ack())
            return
        await self._settle(batch[-1].ack(multiple=True))

    async def _store(self, events: Sequence[Event]) -> AppendResult:
        """Append, retrying in place with backoff while the database is unreachable."""
        pause = RETRY_FIRST
        failures = 0
        partitioned = False
        while True:
            try:
                result = await self._append(events)
            except Exception as exc:
                if is_missing_partition(exc) and not partitioned:
                    # Not the events' fault: the month has no partition yet (none was made
                    # ahead). Make it, and store the batch again at once.
                    log.warning("%s; making the log's partitions", one_line(exc))
                    partitioned = True
                    await partitions.ensure(self.engine)
                    continue
                if not is_transient(exc):
                    raise
                if self._stopping.is_set():
                    raise _Stopping() from exc
                failures += 1
                log.warning(
                    "PostgreSQL unavailable (%s); holding %d events unacknowledged, "
                    "retry %d in %.1fs",
                    one_line(exc),
                    len(events),
                    failures,
                    pause,
                )
                self.counters.retried += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            if failures:
                log.warning(
                    "PostgreSQL reachable again after %d retries; the held batch is stored "
                    "and acknowledged",
                    failures,
                )
            self.counters.stored += result.logged
            self.counters.duplicates += result.duplicates
            return result

    async def _append(self, events: Sequence[Event]) -> AppendResult:
        """Append in the current routing turn, starting one if none is open; a failure ends
        the turn (its connection, and the lock with it, are dropped)."""
        if self._turn is None:
            assert self._route_to is not None
            turn_scope = self.store.turn(self._route_to)
            self._turn = await turn_scope.__aenter__()
            self._turn_scope = turn_scope
            self._turn_started = asyncio.get_running_loop().time()
            self._turn_batches = 0
            self.counters.rerouted += self._turn.rerouted
            self.metrics.routing_lag.set(self._turn.lag)
        started = time.perf_counter()
        try:
            result = await self._turn.append(events)
        except BaseException as exc:
            await self._end_turn(exc)
            raise
        self.metrics.committed(
            time.perf_counter() - started,
            result.logged,
            result.duplicates,
            metrics.oldest([e.occurred_at for e in events]),
        )
        if log.isEnabledFor(logging.DEBUG):
            for stored in result.applied.notifications:
                log.debug(
                    "stored event %s at seq %d",
                    stored.event_id,
                    stored.seq,
                    extra=context(event_id=stored.event_id, seq=stored.seq),
                )
        self._turn_batches += 1
        return result

    async def _end_turn(self, failure: BaseException | None = None) -> None:
        """Close the routing turn: wait for the broker's confirms, move the routing mark,
        release the lock. A database that went away meanwhile only leaves the mark behind:
        the next turn sends those deliveries again."""
        scope, turn, self._turn = self._turn_scope, self._turn, None
        if scope is None:
            return
        self._turn_scope = None
        try:
            if failure is not None:
                await scope.__aexit__(type(failure), failure, failure.__traceback__)
                return
            started = time.perf_counter()
            try:
                await scope.__aexit__(None, None, None)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("could not close the routing turn (%s); its deliveries are sent "
                            "again before the next batch", one_line(exc))  # fmt: skip
            else:
                self.metrics.confirm_wait.observe(time.perf_counter() - started)
        finally:
            if turn is not None:
                self.metrics.routing_lag.set(turn.lag)

    async def _one_by_one(self, valid: Sequence[Parsed]) -> None:
        """After a batch failed for a reason other than the database being away: find the
        event that causes it. It is returned to the queue, so RabbitMQ counts its deliveries;
        on its last one it is dead-lettered here, with the reason."""
        for message, event in valid:
            try:
                await self._store([event])
            except _Stopping:
                return
            except Exception as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await self._failed(message, event, exc)
                continue
            await self._settle(message.ack())

    async def _failed(self, message: Message, event: Event, exc: Exception) -> None:
        reason = one_line(exc)
        if is_last_delivery(message, self.settings.dispatcher_delivery_limit):
            await self._dead_letter_one(
                message,
                f"could not be stored after {self.settings.dispatcher_delivery_limit} "
                f"deliveries: {reason}",
            )
            await self._settle(message.ack())
            return
        log.error(
            "event %s could not be stored (%s); returned to the queue, dead-lettered after "
            "%d deliveries",
            event.event_id,
            reason,
            self.settings.dispatcher_delivery_limit,
            extra=context(event_id=event.event_id),
        )
        await self._settle(message.nack(requeue=True))

    async def _dead_letter_one(self, message: Message, reason: str) -> None:
        assert self._dead_letter is not None
        log.warning(
            "dead-lettering message %s: %s",
            message.message_id or "-",
            reason,
            extra=context(event_id=message.message_id),
        )
        await publish_refused(self._dead_letter, message, reason)
        self.counters.dead_lettered += 1
        self.metrics.dead_letter(reason)

    async def _settle(self, outcome: object) -> None:
        """Await an ack or nack; on a channel that died meanwhile it is moot (the broker has
        requeued the messages) and only logged."""
        try:
            await outcome  # type: ignore[misc]
        except BROKER_FAILURES as exc:
            if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
                raise
            log.warning("could not settle messages (%s); the broker will redeliver them", exc)


class QueueConsumer:
    """The dispatcher's consumer of its queue, made on aiormq's channel under aio-pika's
    robust one, its deliveries taken straight from the channel's frames
    (``batching.DeliveryTap``) and handed to ``on_message``.

    aio-pika restores after a reconnect only the consumers it made itself; this one it does
    not know. So it consumes again on each channel aio-pika reopens (``reopen_callbacks``,
    called once the channel's QoS and queue are restored), and after RabbitMQ cancelled it
    (its queue deleted, say), every ``CONSUME_RETRY`` seconds until it succeeds or the
    channel closes (its reopening then consumes)."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: str,
        on_message: Callable[[Received], None],
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.on_message = on_message
        self._tap: DeliveryTap | None = None
        self._stopped = False
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.channel.reopen_callbacks.add(self._reopened)
        await self._consume()

    async def stop(self) -> None:
        """Cancel the consumer; deliveries already on their way are still handed over."""
        self._stopped = True
        self.channel.reopen_callbacks.discard(self._reopened)
        if self._retry is not None:
            self._retry.cancel()
        tap = self._tap
        if tap is None or tap.underlay.is_closed:
            return
        try:
            await tap.underlay.basic_cancel(tap.tag)
        except BROKER_FAILURES as exc:
            if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
                raise
            log.warning("could not cancel the consumer (%s)", one_line(exc))

    async def _consume(self) -> None:
        underlay = await self.channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        tag = f"notify-dispatcher.{uuid.uuid4().hex}"
        tap = self._tap
        if tap is None or tap.underlay is not underlay:
            tap = self._tap = DeliveryTap(underlay, tag, self.on_message)
            underlay.on_consumer_cancel_callbacks.add(self._cancelled)
        else:
            tap.tag = tag
        await underlay.basic_consume(self.queue, self._untapped, consumer_tag=tag)

    async def _untapped(self, message: DeliveredMessage) -> None:
        """A delivery that reached aiormq's consumer callback all the same."""
        self.on_message(Received.of(message))

    async def _reopened(self, *_: Any) -> None:
        if self._stopped:
            return
        try:
            await self._consume()
        except BROKER_FAILURES as exc:
            if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
                raise
            # The channel closed again: its next reopening consumes.
            log.warning("could not consume after a reconnect (%s)", one_line(exc))

    def _cancelled(self, frame: aiormq.spec.Basic.Cancel) -> None:
        tap = self._tap
        if self._stopped or tap is None or frame.consumer_tag != tap.tag:
            return
        log.warning("RabbitMQ cancelled the dispatcher's consumer; consuming again")
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._consume_again(tap.underlay))

    async def _consume_again(self, underlay: aiormq.Channel) -> None:
        while True:
            await asyncio.sleep(CONSUME_RETRY)
            if self._stopped or underlay.is_closed:
                return
            try:
                await self._consume()
                return
            except BROKER_FAILURES as exc:
                if isinstance(exc, asyncio.CancelledError) and not broker_cancelled(exc):
                    raise
                log.warning("could not consume again (%s); retrying", one_line(exc))


class _Stopping(Exception):
    """Raised inside a retry loop when the process is asked to stop."""


async def run_dispatcher(settings: DispatcherSettings, stop: asyncio.Event) -> None:
    """The dispatcher as a process of its own (``notify dispatcher``): its connections read
    their frames in bulk (``batching.FrameReader``)."""
    read_frames_in_bulk()
    await Dispatcher(settings).run(stop)
