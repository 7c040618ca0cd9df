"""The outbox relay: publishes the committed rows of ``notification_outbox`` with confirms and
marks them sent.

One batch is one transaction: lock the oldest unsent rows with ``FOR UPDATE SKIP LOCKED``,
publish them, wait for every confirm, mark them sent, commit. A second relay running at the
same time skips the rows the first one holds, so each row is published by one relay. A relay
that dies after publishing but before its commit leaves the rows unsent; they are published
again later with the same event_id, and the dispatcher stores them once. See
https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE for SKIP LOCKED.

Run it as ``notify outbox-relay --database-url ...``, or inside a producer's own process:

    relay = OutboxRelay(engine, Publisher())
    task = asyncio.create_task(relay.run())
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import orjson
import sqlalchemy.exc
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from producers.errors import DatabaseUnavailable, NotifyError
from producers.outbox import TABLE, outbox_table
from producers.publisher import Outgoing, Publisher
from producers.waiting import wait_event

log = logging.getLogger("notify.outbox")

DEFAULT_BATCH_SIZE = 500
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_KEEP_SENT = timedelta(days=7)
PURGE_EVERY = 300.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0

# Failures that say "retry later": the broker or the database is unreachable right now.
RETRYABLE = (NotifyError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError)

_c = outbox_table.c


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: Publisher,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        keep_sent: timedelta = DEFAULT_KEEP_SENT,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.keep_sent = keep_sent
        self.published = 0

    async def check(self) -> None:
        """Fail fast, with what to do, when the database or its outbox table is missing."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text(f"SELECT 1 FROM {TABLE} LIMIT 0"))
        except sqlalchemy.exc.ProgrammingError as exc:
            raise DatabaseUnavailable(
                f"the table {TABLE} does not exist in "
                f"{self.engine.url.render_as_string(hide_password=True)}: create it with "
                "`notify outbox-relay --create-table` or the SQL in docs/events.md"
            ) from exc
        except (sqlalchemy.exc.DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(
                "cannot reach the outbox database "
                f"{self.engine.url.render_as_string(hide_password=True)} ({exc}): is it "
                "running, and is --database-url right?"
            ) from exc

    async def relay_batch(self) -> int:
        """Publish and mark one batch of pending rows; return how many were sent."""
        async with self.engine.begin() as conn:
            rows = await self._lock_pending(conn)
            if not rows:
                return 0
            await self.publisher.publish_many(rows)
            await conn.execute(
                update(outbox_table)
                .where(_c.event_id.in_([r.event_id for r in rows]))
                .values(sent_at=func.now())
            )
        self.published += len(rows)
        return len(rows)

    async def _lock_pending(self, conn: AsyncConnection) -> list[Outgoing]:
        result = await conn.execute(
            select(_c.event_id, _c.routing_key, _c.payload)
            .where(_c.sent_at.is_(None))
            .order_by(_c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        return [
            Outgoing(event_id, key, orjson.dumps(payload), payload.get("producer"))
            for event_id, key, payload in result.all()
        ]

    async def drain(self) -> int:
        """Relay until no unlocked pending row is left; return how many this relay sent."""
        total = 0
        while sent := await self.relay_batch():
            total += sent
        return total

    async def purge_sent(self) -> int:
        """Delete rows sent longer ago than ``keep_sent``; they are kept that long for audit."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(outbox_table).where(_c.sent_at < func.now() - self.keep_sent)
            )
        return int(result.rowcount)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set (or the task is cancelled), riding out outages."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        next_purge = loop.time()
        while not stop.is_set():
            try:
                sent = await self.relay_batch()
                if loop.time() >= next_purge:
                    await self.purge_sent()
                    next_purge = loop.time() + PURGE_EVERY
            except RETRYABLE as exc:
                log.warning(
                    "outbox relay: %s: %s; the rows stay pending, retrying in %.1fs",
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    backoff,
                )
                await _wait(stop, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST
            if sent < self.batch_size:
                await _wait(stop, self.poll_interval)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    await wait_event(stop, seconds)
