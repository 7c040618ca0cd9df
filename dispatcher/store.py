"""The event store: append events to the log and apply them to the projections, in one
transaction; record delivery receipts.

Positions that follow commit order
----------------------------------
``seq`` comes from an identity column, and sequence values are handed out when a row is
inserted, not when its transaction commits. Two dispatchers writing at once could therefore
commit seq 11 before seq 10; a reader that had already paged past 11 with ``seq > 10`` would
never see 10 (DESIGN.md invariant 5). Every append here first takes
``LOCK TABLE notification_events IN EXCLUSIVE MODE``, which conflicts with itself but not with
readers (ACCESS SHARE): appends are serialised from the moment they draw a seq until they
commit, so seqs become visible in increasing order and ``seq > S`` never skips a row. The lock
is held for one batch's statements only, so its cost is paid once per batch, not per event,
and a batch of a few hundred events holds it for a few milliseconds.
This is the approach of the ``eventsourcing`` library's PostgreSQL recorder; see
https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES for the modes.
docs/event-store.md compares it with the alternatives and describes the test that proves it.

Routing in log order
--------------------
Deliveries are published after the commit, and with two dispatchers the batch committed
second could otherwise reach RabbitMQ first; a client would then see seq 120 before seq 110
on one socket, and a dispatcher killed between its commit and its publish would leave a hole
in every live stream. ``append_and_route`` therefore takes a session-level advisory lock
(``statements.ROUTING_LOCK``) before the append and keeps it until RabbitMQ has confirmed the
batch's deliveries: from commit to confirm, one dispatcher at a time. A confirm of a transient
message means it is in every queue it was routed to, so the next batch's deliveries queue
behind it in every edge's queue. ``notification_routing.routed_seq`` records how far the
confirms have got; whoever takes the lock next first re-publishes, from the log, what was
committed above that mark but never confirmed (a dispatcher killed or cut off from the
broker in between). Each edge drops a live frame at or below what it has already sent on a
stream, so a re-published delivery that did arrive the first time is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import statements
from dispatcher.events import ALL_READ, CREATED, LogEntry, LogEvent, unique_entries
from dispatcher.projection import Applied, Logged, Projector, ReadApplied, all_read_bound
from dispatcher.queries import UNREAD_COUNT
from dispatcher.records import Delivery, StoredNotification, notification_delivery
from producers.envelope import Envelope, ReadEvent

log = logging.getLogger("notify.dispatcher")

DEFAULT_BROADCAST_WINDOW = timedelta(days=7)

# At most this many unrouted events are re-published when a dispatcher takes over; older ones
# are left to the clients' replay (a hole that large means the delivery path was down).
UNROUTED_LIMIT = 10_000

# Publishes deliveries in the given order; True once RabbitMQ confirmed them all.
Route = Callable[[Sequence[Delivery]], Awaitable[bool]]


@dataclass
class AppendResult:
    received: int  # events handed to append, copies included
    logged: int  # events new to the log, now committed
    applied: Applied = field(default_factory=Applied)

    rerouted: int = 0  # deliveries of earlier batches published again before this one

    @property
    def duplicates(self) -> int:
        return self.received - self.logged


class EventStore:
    def __init__(
        self, engine: AsyncEngine, broadcast_window: timedelta = DEFAULT_BROADCAST_WINDOW
    ) -> None:
        self.engine = engine
        self.window = broadcast_window

    async def append(self, events: Sequence[LogEvent]) -> AppendResult:
        """Store each new event once and apply it to the projections, in one transaction.

        An event_id already in the log, or twice in the batch, is skipped: delivering an event
        again is how a broker says "I am not sure you got it", and the answer is "I did".
        """
        entries = unique_entries(events)
        if not entries:
            return AppendResult(received=len(events), logged=0)
        async with self.engine.begin() as conn:
            applied, logged = await self.append_in(conn, entries)
        return AppendResult(received=len(events), logged=logged, applied=applied)

    async def append_and_route(self, events: Sequence[LogEvent], route: Route) -> AppendResult:
        """Append like ``append``, then hand the deliveries to ``route`` while still holding
        the routing lock (module docstring, "Routing in log order"), preceded by whatever an
        earlier batch committed but never got confirmed."""
        entries = unique_entries(events)
        if not entries:
            return AppendResult(received=len(events), logged=0)
        async with self.engine.connect() as conn:
            try:
                async with conn.begin():
                    await conn.exec_driver_sql(statements.ROUTING_LOCK)
                    state = (await conn.exec_driver_sql(statements.ROUTING_STATE)).one()
                    top = int(state.top)
                    routed = top if state.routed_seq is None else int(state.routed_seq)
                    unrouted = await self._unrouted(conn, routed, top) if top > routed else []
                    applied, logged = await self.append_in(conn, entries)
                new = applied.deliveries()
                confirmed = await route([*unrouted, *new])
                last = max([top, *(d.seq for d in new)])
                # One round trip, outside any transaction of the pool's: the mark is
                # committed before the lock is released.
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.execute(
                    statements.routed_and_unlock(last) if confirmed else statements.ROUTING_UNLOCK
                )
            except BaseException:
                # Whatever went wrong, the lock must not outlive this batch: it ends with the
                # session, and the connection is not given back to the pool.
                await conn.invalidate()
                raise
        return AppendResult(
            received=len(events), logged=logged, applied=applied, rerouted=len(unrouted)
        )

    async def _unrouted(self, conn: AsyncConnection, routed: int, top: int) -> list[Delivery]:
        rows = (
            await conn.exec_driver_sql(statements.UNROUTED, (routed, top, UNROUTED_LIMIT + 1))
        ).all()
        if len(rows) > UNROUTED_LIMIT:
            log.warning(
                "%d or more events after seq %d were never routed; publishing the last %d, "
                "clients replay the rest",
                len(rows),
                routed,
                UNROUTED_LIMIT,
            )
            rows = (
                await conn.exec_driver_sql(
                    statements.UNROUTED, (top - UNROUTED_LIMIT, top, UNROUTED_LIMIT)
                )
            ).all()
        log.warning(
            "publishing again the deliveries of %d events (seq %d..%d) committed without a "
            "confirmed publish",
            len(rows),
            routed + 1,
            top,
        )
        deliveries = []
        for row in rows:
            if row.event_type == CREATED:
                envelope = Envelope.model_validate(row.payload)
                notification = StoredNotification.from_envelope(envelope, row.seq)
                deliveries.append(notification_delivery(notification))
                continue
            event = ReadEvent.model_validate(row.payload)
            params = {"user_id": event.user_id, "window": self.window}
            count = int((await conn.execute(UNREAD_COUNT, params)).scalar_one())
            up_to = all_read_bound(event, row.seq) if row.event_type == ALL_READ else None
            ids = [str(i) for i in event.ids]
            deliveries.append(ReadApplied(row.seq, event.user_id, ids, count, up_to).delivery())
        return deliveries

    async def append_in(
        self, conn: AsyncConnection, entries: Sequence[LogEntry]
    ) -> tuple[Applied, int]:
        """The statements of one append, on a connection whose transaction the caller commits
        (tests delay that commit to prove the lock keeps readers from skipping a row)."""
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        inserted = await conn.exec_driver_sql(
            statements.INSERT_LOG,
            (
                [e.event_id for e in entries],
                [e.event_type for e in entries],
                [e.occurred_at for e in entries],
                [e.producer for e in entries],
                [e.payload for e in entries],
            ),
        )
        by_id = {e.event_id: e.event for e in entries}
        logged = [
            Logged(seq=row.seq, recorded_at=row.recorded_at, event=by_id[row.event_id])
            for row in inserted.all()
        ]
        applied = await Projector(conn, self.window).apply(logged)
        return applied, len(logged)

    async def record_deliveries(self, receipts: Sequence[tuple[str, int]]) -> None:
        """Record that each (user_id, seq) reached one of the user's sockets: delivered_at is
        set the first time only. One statement for the whole batch."""
        if not receipts:
            return
        async with self.engine.begin() as conn:
            await conn.exec_driver_sql(
                statements.RECORD_DELIVERIES,
                ([user for user, _ in receipts], [seq for _, seq in receipts]),
            )
