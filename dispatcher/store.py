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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import statements
from dispatcher.events import LogEntry, LogEvent, unique_entries
from dispatcher.projection import Applied, Logged, Projector

DEFAULT_BROADCAST_WINDOW = timedelta(days=7)


@dataclass
class AppendResult:
    received: int  # events handed to append, copies included
    logged: int  # events new to the log, now committed
    applied: Applied = field(default_factory=Applied)

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
