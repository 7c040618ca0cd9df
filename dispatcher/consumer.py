"""The dispatcher: consume events in batches, store them, route them, then acknowledge.

For each batch, in this order:
1. decode and validate every message; an invalid one is re-published to the dead-letter
   exchange with its reason in ``x-notify-error`` (confirmed) and counts as handled;
2. append the valid ones to the event log and the projections in one transaction;
3. publish each newly stored notification to the delivery exchange;
4. acknowledge the whole batch with one ``multiple`` ack.

A message is acknowledged only after its transaction committed (invariant 2), so a crash at
any point leaves it in the queue, and the store's idempotency on event_id absorbs the
redelivery (invariant 1).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import aio_pika
import asyncpg
import sqlalchemy.exc
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import database
from dispatcher.database import create_engine
from dispatcher.records import StoredNotification, encode_frame, notification_frame
from dispatcher.store import EventStore
from producers import topology
from producers.broker import connect
from producers.envelope import Envelope, EnvelopeError, parse_envelope
from producers.settings import Settings, redact

log = logging.getLogger("notify.dispatcher")

RETRY_FIRST = 0.5
RETRY_MAX = 10.0
REASON_MAX = 1000


def is_transient(exc: BaseException) -> bool:
    """True for failures that say "the database is not reachable right now", which are
    retried in place, as opposed to a failure caused by the events themselves."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
        cause = getattr(exc, "__cause__", None)
        if cause is not None:
            exc = cause
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.CannotConnectNowError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InterfaceError
        | asyncpg.AdminShutdownError
        | asyncpg.TooManyConnectionsError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.OperationalError,
    )


@dataclass
class Counters:
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings.database_url)
        self.store = EventStore(self.engine)
        self.counters = Counters()
        self._deliver: AbstractExchange | None = None
        self._dead_letter: AbstractExchange | None = None
        self._stopping = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the batch in hand and return."""
        name = f"notify-dispatcher {socket.gethostname()}:{os.getpid()}"
        await database.check(self.engine)  # fail fast on a wrong DATABASE_URL
        connection = await connect(self.settings.amqp_url, name)
        try:
            consume_channel = await connection.channel()
            await consume_channel.set_qos(prefetch_count=self.settings.dispatcher_batch_size * 2)
            queue = await topology.declare_dispatcher_queue(
                consume_channel, self.settings.dispatcher_delivery_limit
            )
            deliver_channel = await connection.channel(publisher_confirms=False)
            self._deliver = await topology.declare_deliver_exchange(deliver_channel)
            dead_letter_channel = await connection.channel(publisher_confirms=True)
            self._dead_letter, _ = await topology.declare_dead_letter(dead_letter_channel)

            inbox: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
            consumer_tag = await queue.consume(inbox.put, no_ack=False)
            batches = asyncio.create_task(self._batch_loop(inbox), name="dispatcher-batches")
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
            await queue.cancel(consumer_tag)
            inbox.put_nowait(None)
            await batches
            log.info(
                "dispatcher stopped: %d stored, %d duplicates, %d dead-lettered",
                self.counters.stored,
                self.counters.duplicates,
                self.counters.dead_lettered,
            )
        finally:
            await connection.close()
            await self.engine.dispose()

    async def _batch_loop(self, inbox: asyncio.Queue[AbstractIncomingMessage | None]) -> None:
        loop = asyncio.get_running_loop()
        limit = self.settings.dispatcher_batch_size
        wait = self.settings.dispatcher_batch_wait_ms / 1000
        while True:
            first = await inbox.get()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + wait
            ended = False
            while len(batch) < limit and not ended:
                while len(batch) < limit and not inbox.empty():
                    item = inbox.get_nowait()
                    if item is None:
                        ended = True
                        break
                    batch.append(item)
                remaining = deadline - loop.time()
                if ended or len(batch) >= limit or remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(inbox.get(), remaining)
                except TimeoutError:
                    break
                if item is None:
                    ended = True
                else:
                    batch.append(item)
            await self.handle_batch(batch)
            if ended:
                return

    async def handle_batch(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        self.counters.batches += 1
        valid: list[tuple[AbstractIncomingMessage, Envelope]] = []
        refused: list[tuple[AbstractIncomingMessage, str]] = []
        for message in batch:
            try:
                valid.append((message, parse_envelope(message.body)))
            except EnvelopeError as exc:
                refused.append((message, exc.reason))
        if refused:
            await asyncio.gather(*(self._dead_letter_one(m, reason) for m, reason in refused))
        try:
            stored = await self._store([e for _, e in valid])
        except _Stopping:
            return  # unacknowledged: RabbitMQ gives them to the next consumer
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("batch of %d failed (%s); storing one by one", len(valid), exc)
            await self._one_by_one(valid)
            for message, _ in refused:
                await self._settle(message.ack())
            return
        await self._route(stored)
        await self._settle(batch[-1].ack(multiple=True))

    async def _store(self, envelopes: Sequence[Envelope]) -> list[StoredNotification]:
        """Append, retrying in place while the database is unreachable."""
        pause = RETRY_FIRST
        while True:
            try:
                stored = await self.store.append(envelopes)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._stopping.is_set():
                    raise _Stopping() from exc
                log.warning(
                    "PostgreSQL unavailable (%s: %s); holding %d events unacknowledged, "
                    "retrying in %.1fs",
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    len(envelopes),
                    pause,
                )
                self.counters.retried += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            self.counters.stored += len(stored)
            self.counters.duplicates += len({e.event_id for e in envelopes}) - len(stored)
            return stored

    async def _one_by_one(self, valid: Sequence[tuple[AbstractIncomingMessage, Envelope]]) -> None:
        for message, envelope in valid:
            try:
                stored = await self._store([envelope])
            except _Stopping:
                return
            except Exception as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.error(
                    "event %s could not be stored (%s: %s); returned to the queue, "
                    "dead-lettered after %d deliveries",
                    envelope.event_id,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    self.settings.dispatcher_delivery_limit,
                )
                await self._settle(message.nack(requeue=True))
                continue
            await self._route(stored)
            await self._settle(message.ack())

    async def _route(self, stored: Sequence[StoredNotification]) -> None:
        """Publish each notification, encoded once, to its delivery key. The fast path may
        drop (nobody online, an edge gone); Postgres and the replay make up for it."""
        assert self._deliver is not None
        if not stored:
            return
        await asyncio.gather(
            *(
                self._deliver.publish(
                    aio_pika.Message(
                        body=encode_frame(notification_frame(n)).encode(),
                        content_type="application/json",
                        headers={topology.SEQ_HEADER: n.seq},
                        delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
                    ),
                    routing_key=n.delivery_key,
                    mandatory=False,
                )
                for n in stored
            )
        )

    async def _dead_letter_one(self, message: AbstractIncomingMessage, reason: str) -> None:
        assert self._dead_letter is not None
        log.warning("dead-lettering message %s: %s", message.message_id or "-", reason)
        headers = dict(message.headers or {})
        headers[topology.ERROR_HEADER] = reason[:REASON_MAX]
        headers[topology.ORIGINAL_KEY_HEADER] = message.routing_key or ""
        await self._dead_letter.publish(
            aio_pika.Message(
                body=message.body,
                headers=headers,
                content_type=message.content_type,
                message_id=message.message_id,
                type=message.type,
                app_id=message.app_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=message.routing_key or "",
        )
        self.counters.dead_lettered += 1

    async def _settle(self, outcome: object) -> None:
        """Await an ack or nack; on a channel that died meanwhile it is moot (the broker has
        requeued the messages) and only logged."""
        try:
            await outcome  # type: ignore[misc]
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            log.warning("could not settle messages (%s); the broker will redeliver them", exc)


class _Stopping(Exception):
    """Raised inside a retry loop when the process is asked to stop."""


async def run_dispatcher(settings: Settings, stop: asyncio.Event) -> None:
    await Dispatcher(settings).run(stop)
