"""Applying logged events to the projections, inside the caller's transaction.

The same code runs when a batch is appended (``dispatcher.store``) and when the projections
are rebuilt from the log (``dispatcher.rebuild``), so both give the same rows. Events are
applied in seq order: every notification of a batch first, in one statement per table, then
each read or prune event, which only ever touches rows with a lower seq than its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher import statements
from dispatcher.events import LogEvent, Pruned
from dispatcher.queries import UNREAD_COUNT
from dispatcher.records import (
    Delivery,
    StoredNotification,
    encode_frame,
    notification_delivery,
    read_frame,
)
from producers import topology
from producers.envelope import Envelope, ReadEvent, ReadEventType


@dataclass(frozen=True, slots=True)
class Logged:
    """An event as the log holds it: its position and the time its append committed."""

    seq: int
    recorded_at: datetime
    event: LogEvent


@dataclass(frozen=True, slots=True)
class ReadApplied:
    seq: int
    user_id: str
    ids: list[str]
    unread_count: int
    up_to_seq: int | None  # mark_all_read: everything up to here is now read

    def delivery(self) -> Delivery:
        frame = read_frame(self.ids, self.unread_count, self.up_to_seq)
        return Delivery(self.seq, topology.user_key(self.user_id), encode_frame(frame).encode())


@dataclass
class Applied:
    notifications: list[StoredNotification] = field(default_factory=list)
    reads: list[ReadApplied] = field(default_factory=list)
    pruned: int = 0

    def deliveries(self) -> list[Delivery]:
        """What to publish once the transaction committed, in log order."""
        out = [notification_delivery(n) for n in self.notifications]
        out.extend(r.delivery() for r in self.reads)
        return sorted(out, key=lambda d: d.seq)


def all_read_bound(event: ReadEvent, seq: int) -> int:
    """The highest seq a ``mark_all_read`` marks: everything logged before the event itself,
    and with ``up_to_seq`` nothing above it (nothing the client has not seen)."""
    bound = seq - 1
    return bound if event.up_to_seq is None else min(bound, event.up_to_seq)


class Projector:
    """Writes projection rows on one connection that is inside a transaction."""

    def __init__(
        self, conn: AsyncConnection, broadcast_window: timedelta, *, count_unread: bool = True
    ) -> None:
        self.conn = conn
        self.window = broadcast_window
        # A rebuild publishes no read syncs, so it skips the count that goes into them.
        self.count_unread = count_unread

    async def apply(self, logged: Sequence[Logged]) -> Applied:
        ordered = sorted(logged, key=lambda entry: entry.seq)
        applied = Applied()
        applied.notifications = await self.created(
            [e for e in ordered if isinstance(e.event, Envelope)]
        )
        for entry in ordered:
            if isinstance(entry.event, ReadEvent):
                applied.reads.append(await self.read(entry, entry.event))
            elif isinstance(entry.event, Pruned):
                applied.pruned += await self.prune(entry, entry.event)
        return applied

    async def created(self, logged: Sequence[Logged]) -> list[StoredNotification]:
        stored = []
        for entry in logged:
            assert isinstance(entry.event, Envelope)
            stored.append(StoredNotification.from_envelope(entry.event, entry.seq))
        if not stored:
            return []
        notification_rows = statements.rows(
            (*notification.projection_row().values(), entry.recorded_at)
            for notification, entry in zip(stored, logged, strict=True)
        )
        await self.conn.exec_driver_sql(statements.INSERT_NOTIFICATIONS, (notification_rows,))
        personal = [(n.user_id, n.seq) for n in stored if n.user_id is not None]
        if personal:
            await self.conn.exec_driver_sql(
                statements.INSERT_RECIPIENTS, (statements.rows(personal),)
            )
        return stored

    async def read(self, entry: Logged, event: ReadEvent) -> ReadApplied:
        if event.event_type is ReadEventType.READ:
            up_to = None
            rows = await self.conn.exec_driver_sql(
                statements.MARK_READ, (event.user_id, event.ids, entry.recorded_at, entry.seq)
            )
        else:
            up_to = all_read_bound(event, entry.seq)
            rows = await self.conn.exec_driver_sql(
                statements.MARK_ALL_READ,
                (event.user_id, up_to, entry.recorded_at, entry.seq, self.window),
            )
        ids = [str(row.event_id) for row in rows.all()]
        count = 0
        if self.count_unread:
            params = {"user_id": event.user_id, "window": self.window}
            count = int((await self.conn.execute(UNREAD_COUNT, params)).scalar_one())
        return ReadApplied(entry.seq, event.user_id, ids, count, up_to)

    async def prune(self, entry: Logged, event: Pruned) -> int:
        result = await self.conn.exec_driver_sql(
            statements.PRUNE, (entry.seq, event.cutoff, entry.recorded_at, self.window)
        )
        return result.rowcount
