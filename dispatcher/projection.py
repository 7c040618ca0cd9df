"""Applying logged events to the projections, inside the caller's transaction.

The same code runs when a batch is appended (``dispatcher.store``) and when the projections
are rebuilt from the log (``dispatcher.rebuild``), so both give the same rows. Events are
applied in seq order:

1. the batch's notifications, in one statement per table: each ``notification.created`` due
   at once and each ``notification.released`` of a pending scheduled one goes into
   ``notifications`` (a released one with the release's seq), each personal one with its
   recipient row and what the user's preferences made of it (``suppressed``: muted, quiet or
   nothing, ``producers.preferences.decide`` at the time the event was logged, with the
   preferences as of that point in the log); a ``notification.created`` due later goes into
   ``notification_schedule`` instead, and releases and cancels settle their schedule rows;
2. then each state event (read, seen, archive, unarchive, preferences) and prune, one
   statement each, each only ever touching rows with a lower seq than its own.

What the batch changed comes back as an ``Applied``, whose ``deliveries`` are what the
dispatcher publishes once the transaction committed: each new notification that is neither
suppressed nor waiting in the schedule, and a sync frame under ``user.<id>`` for each state
event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from dispatcher import statements
from dispatcher.events import LogEvent, Pruned
from dispatcher.queries import COUNTS
from dispatcher.records import (
    Delivery,
    StoredNotification,
    archived_frame,
    encode_frame,
    notification_delivery,
    preferences_frame,
    read_frame,
    seen_frame,
)
from producers import topology
from producers.envelope import (
    RELEASED,
    ArchiveEvent,
    ArchiveEventType,
    Envelope,
    PreferencesEvent,
    ReadEvent,
    ReadEventType,
    ScheduleEvent,
    SeenEvent,
)
from producers.preferences import NO_PREFERENCES, Preferences, Suppression, decide, preferences_of

PENDING, RELEASED_STATUS, CANCELLED_STATUS = "pending", "released", "cancelled"


@dataclass(frozen=True, slots=True)
class Logged:
    """An event as the log holds it: its position and the time its append committed."""

    seq: int
    recorded_at: datetime
    event: LogEvent


@dataclass(frozen=True, slots=True)
class Sync:
    """A state event's frame for every socket of its user (``user.<id>``)."""

    seq: int
    user_id: str
    frame: dict[str, Any]

    def delivery(self) -> Delivery:
        body = encode_frame(self.frame).encode()
        return Delivery(self.seq, topology.user_key(self.user_id), body)


@dataclass
class Applied:
    # Inserted into ``notifications`` by this batch (due at once, or released), in seq order.
    notifications: list[StoredNotification] = field(default_factory=list)
    # seq -> why a personal one of them is kept from the user's sockets.
    suppressed: dict[int, Suppression] = field(default_factory=dict)
    scheduled: list[uuid.UUID] = field(default_factory=list)  # event_ids now waiting
    released: int = 0
    cancelled: int = 0
    syncs: list[Sync] = field(default_factory=list)
    pruned: int = 0

    def deliveries(self) -> list[Delivery]:
        """What to publish once the transaction committed, in log order."""
        out = [notification_delivery(n) for n in self.notifications if n.seq not in self.suppressed]
        out.extend(s.delivery() for s in self.syncs)
        return sorted(out, key=lambda d: d.seq)


def all_read_bound(event: ReadEvent | ArchiveEvent, seq: int) -> int:
    """The highest seq a ``mark_all_read`` (or an archive of all read ones) reaches:
    everything logged before the event itself, and with ``up_to_seq`` nothing above it
    (nothing the client has not seen)."""
    bound = seq - 1
    return bound if event.up_to_seq is None else min(bound, event.up_to_seq)


def seen_bound(event: SeenEvent, seq: int) -> int:
    """The seen mark a ``notification.seen`` asks for: never past the event itself."""
    return min(event.up_to_seq, seq - 1)


@dataclass
class _Scheduled:
    status: str
    envelope: Envelope | None  # None until needed, for a row read from the database
    payload: Any = None

    def notification(self) -> Envelope:
        if self.envelope is None:
            self.envelope = Envelope.model_validate(self.payload)
        return self.envelope


class Projector:
    """Writes projection rows on one connection that is inside a transaction."""

    def __init__(
        self,
        conn: AsyncConnection,
        broadcast_window: timedelta,
        *,
        critical: frozenset[str],
        count_unread: bool = True,
    ) -> None:
        self.conn = conn
        self.window = broadcast_window
        self.critical = critical
        # A rebuild publishes no syncs, so it skips the counts that go into them.
        self.count_unread = count_unread

    async def apply(self, logged: Sequence[Logged]) -> Applied:
        ordered = sorted(logged, key=lambda entry: entry.seq)
        applied = Applied()
        await self.notifications(ordered, applied)
        for entry in ordered:
            event = entry.event
            if isinstance(event, ReadEvent):
                applied.syncs.append(await self.read(entry, event))
            elif isinstance(event, SeenEvent):
                applied.syncs.append(await self.seen(entry, event))
            elif isinstance(event, ArchiveEvent):
                applied.syncs.append(await self.archive(entry, event))
            elif isinstance(event, PreferencesEvent):
                applied.syncs.append(await self.preferences(entry, event))
            elif isinstance(event, Pruned):
                applied.pruned += await self.prune(entry, event)
        return applied

    # Notifications: created, scheduled, released, cancelled

    async def notifications(self, ordered: Sequence[Logged], applied: Applied) -> None:
        created = [e for e in ordered if isinstance(e.event, Envelope)]
        settles = [e for e in ordered if isinstance(e.event, ScheduleEvent)]
        if not created and not settles:
            return
        schedule = await self._schedule_of(created, settles)
        preferences = await self._preferences_of(ordered, schedule)
        stored: list[tuple[StoredNotification, datetime]] = []
        recipients: list[tuple[str, int, str | None]] = []
        schedule_rows: list[tuple[int, uuid.UUID, datetime]] = []
        settle_rows: list[tuple[uuid.UUID, str, int]] = []

        def route(envelope: Envelope, entry: Logged) -> None:
            notification = StoredNotification.from_envelope(envelope, entry.seq)
            stored.append((notification, entry.recorded_at))
            user = notification.user_id
            if user is None:
                return
            suppressed = decide(
                preferences.get(user, NO_PREFERENCES),
                notification.notification_type,
                notification.category,
                notification.priority,
                entry.recorded_at,
                self.critical,
            )
            recipients.append((user, entry.seq, suppressed))
            if suppressed is not None:
                applied.suppressed[entry.seq] = suppressed

        for entry in ordered:
            event = entry.event
            if isinstance(event, PreferencesEvent):
                # Later notifications of the batch go by these.
                preferences[event.user_id] = event.preferences
            elif isinstance(event, Envelope):
                if event.scheduled_after(entry.recorded_at):
                    assert event.deliver_at is not None
                    schedule_rows.append((entry.seq, event.event_id, event.deliver_at))
                    applied.scheduled.append(event.event_id)
                else:
                    route(event, entry)
            elif isinstance(event, ScheduleEvent):
                waiting = schedule.get(event.scheduled_event_id)
                if waiting is None or waiting.status != PENDING:
                    continue  # unknown, or released or cancelled already: too late
                if event.event_type == RELEASED:
                    waiting.status = RELEASED_STATUS
                    applied.released += 1
                    route(waiting.notification(), entry)
                else:
                    waiting.status = CANCELLED_STATUS
                    applied.cancelled += 1
                settle_rows.append((event.scheduled_event_id, waiting.status, entry.seq))

        run = self.conn.exec_driver_sql
        if stored:
            notification_rows = statements.rows(
                (*notification.projection_row().values(), recorded_at)
                for notification, recorded_at in stored
            )
            await run(statements.INSERT_NOTIFICATIONS, (notification_rows,))
            applied.notifications = [notification for notification, _ in stored]
        if recipients:
            await run(statements.INSERT_RECIPIENTS, (statements.rows(recipients),))
        if schedule_rows:
            await run(statements.INSERT_SCHEDULE, (statements.rows(schedule_rows),))
        if settle_rows:
            await run(statements.SETTLE_SCHEDULE, (statements.rows(settle_rows),))

    async def _schedule_of(
        self, created: Sequence[Logged], settles: Sequence[Logged]
    ) -> dict[uuid.UUID, _Scheduled]:
        """The schedule rows the batch's releases and cancels name: those logged before the
        batch (one query, only for a batch with releases or cancels) and those of the batch."""
        schedule: dict[uuid.UUID, _Scheduled] = {}
        if not settles:
            return schedule
        named = {e.event.scheduled_event_id for e in settles if isinstance(e.event, ScheduleEvent)}
        rows = await self.conn.exec_driver_sql(statements.SCHEDULED, (list(named),))
        for row in rows.all():
            schedule[row.event_id] = _Scheduled(row.status, None, row.payload)
        for entry in created:
            envelope = entry.event
            assert isinstance(envelope, Envelope)
            if envelope.event_id in named and envelope.scheduled_after(entry.recorded_at):
                schedule[envelope.event_id] = _Scheduled(PENDING, envelope)
        return schedule

    async def _preferences_of(
        self, ordered: Sequence[Logged], schedule: dict[uuid.UUID, _Scheduled]
    ) -> dict[str, Preferences]:
        """The stored preferences of every user the batch may route a personal notification
        to: one query, none for a batch without personal notifications."""
        users: set[str] = set()
        for entry in ordered:
            event = entry.event
            if isinstance(event, Envelope):
                if event.user_id is not None and not event.scheduled_after(entry.recorded_at):
                    users.add(event.user_id)
            elif isinstance(event, ScheduleEvent) and event.event_type == RELEASED:
                waiting = schedule.get(event.scheduled_event_id)
                if waiting is not None and waiting.status == PENDING:
                    user = waiting.notification().user_id
                    if user is not None:
                        users.add(user)
        if not users:
            return {}
        rows = await self.conn.exec_driver_sql(statements.USER_PREFERENCES, (sorted(users),))
        return {row.user_id: preferences_of(row.preferences) for row in rows.all()}

    # State events

    async def counts(self, user_id: str) -> tuple[int, int]:
        """The user's unread and unseen counts as of this transaction (0, 0 in a rebuild)."""
        if not self.count_unread:
            return 0, 0
        params = {"user_id": user_id, "window": self.window, "critical": sorted(self.critical)}
        row = (await self.conn.execute(COUNTS, params)).one()
        return int(row.unread_count), int(row.unseen_count)

    async def read(self, entry: Logged, event: ReadEvent) -> Sync:
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
        unread, unseen = await self.counts(event.user_id)
        frame = read_frame(ids, unread, up_to, unseen_count=unseen)
        return Sync(entry.seq, event.user_id, frame)

    async def seen(self, entry: Logged, event: SeenEvent) -> Sync:
        result = await self.conn.exec_driver_sql(
            statements.SEE, (event.user_id, seen_bound(event, entry.seq), entry.recorded_at)
        )
        seen_seq = int(result.scalar_one())
        _, unseen = await self.counts(event.user_id)
        return Sync(entry.seq, event.user_id, seen_frame(seen_seq, unseen))

    async def archive(self, entry: Logged, event: ArchiveEvent) -> Sync:
        user = event.user_id
        if event.event_type is ArchiveEventType.UNARCHIVED:
            rows = await self.conn.exec_driver_sql(
                statements.UNARCHIVE, (user, event.ids, entry.seq)
            )
        elif event.all_read:
            rows = await self.conn.exec_driver_sql(
                statements.ARCHIVE_ALL_READ,
                (user, all_read_bound(event, entry.seq), entry.recorded_at, entry.seq),
            )
        else:
            rows = await self.conn.exec_driver_sql(
                statements.ARCHIVE, (user, event.ids, entry.recorded_at, entry.seq)
            )
        ids = [str(row.event_id) for row in rows.all()]
        unread, unseen = await self.counts(user)
        unarchived = event.event_type is ArchiveEventType.UNARCHIVED
        return Sync(entry.seq, user, archived_frame(ids, unread, unseen, unarchived=unarchived))

    async def preferences(self, entry: Logged, event: PreferencesEvent) -> Sync:
        document = event.preferences.document()
        await self.conn.exec_driver_sql(
            statements.SET_PREFERENCES,
            (event.user_id, orjson.dumps(document).decode(), entry.seq, entry.recorded_at),
        )
        return Sync(entry.seq, event.user_id, preferences_frame(document, self.critical))

    async def prune(self, entry: Logged, event: Pruned) -> int:
        result = await self.conn.exec_driver_sql(
            statements.PRUNE, (entry.seq, event.cutoff, entry.recorded_at, self.window)
        )
        return result.rowcount
