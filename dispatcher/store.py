"""The event store: append events to the log and apply them to the projections, in one
transaction; record delivery receipts.

Positions that follow commit order
----------------------------------
``seq`` comes from an identity column, and sequence values are handed out when a row is
inserted, not when its transaction commits. Two dispatchers writing at once could therefore
commit seq 11 before seq 10; a reader that had already paged past 11 with ``seq > 10`` would
never see 10 (docs/architecture.md, invariant 5). Every append here first takes
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
in every live stream. Appends that route are therefore made in a routing turn
(``EventStore.turn``): it takes a session-level advisory lock (``statements.ROUTING_LOCK``),
appends one or more batches and sends their deliveries in order on one channel, and before it
releases the lock it waits until RabbitMQ has confirmed all of them. A confirm of a transient
message means it is in every queue it was routed to, so the next turn's deliveries, whichever
dispatcher sends them, queue behind these in every edge's queue. Within a turn, each send goes
only behind the previous one on the same channel, still open (``Router.send``'s ``after``): a
connection lost mid-turn and restored, maybe on another node, leaves what it did not deliver
behind, and a later batch on the new channel would overtake it. The turn then stops sending.
``notification_routing.routed_seq`` records how far the confirms have got; each turn first
sends again, rebuilt from the log, what was committed above that mark but never confirmed (a
dispatcher killed or cut off from the broker in between). Each edge drops a live frame whose
seq it has just had, so a delivery sent again that did arrive the first time is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import orjson
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import statements
from dispatcher.events import (
    ALL_READ,
    ARCHIVED,
    CREATED,
    PREFERENCES,
    READ,
    RELEASED,
    SEEN,
    UNARCHIVED,
    LogEntry,
    LogEvent,
    unique_entries,
)
from dispatcher.failures import one_line
from dispatcher.projection import Applied, Logged, Projector, Sync, all_read_bound
from dispatcher.queries import COUNTS, MARKED_BY
from dispatcher.records import (
    Delivery,
    StoredNotification,
    archived_frame,
    notification_delivery,
    preferences_frame,
    read_frame,
    seen_frame,
)
from dispatcher.routing import NotDelivered
from producers.envelope import ArchiveEvent, PreferencesEvent, ReadEvent, SeenEvent
from producers.preferences import critical_types

log = logging.getLogger("notify.dispatcher")

DEFAULT_BROADCAST_WINDOW = timedelta(days=7)

# At most this many unrouted events are re-published when a dispatcher takes over; older ones
# are left to the clients' replay (a hole that large means the delivery path was down).
UNROUTED_LIMIT = 10_000


async def counts(
    conn: AsyncConnection, user_id: str, window: timedelta, critical: frozenset[str]
) -> tuple[int, int]:
    """The user's unread and unseen counts as of ``conn``'s snapshot."""
    params = {"user_id": user_id, "window": window, "critical": sorted(critical)}
    row = (await conn.execute(COUNTS, params)).one()
    return int(row.unread_count), int(row.unseen_count)


async def routed_notifications(conn: AsyncConnection, seqs: Sequence[int]) -> dict[int, Delivery]:
    """The deliveries of the notifications routed at ``seqs`` (a ``notification.created`` due
    at once, or a ``notification.released``), as the projection holds them: none for one
    muted or quiet for its user, nor for one still waiting in the schedule."""
    if not seqs:
        return {}
    rows = await conn.exec_driver_sql(statements.ROUTED_AT, (list(seqs),))
    return {
        row.seq: notification_delivery(StoredNotification.from_row(row._mapping))
        for row in rows.all()
        if row.suppressed is None
    }


async def read_delivery(
    conn: AsyncConnection,
    seq: int,
    event_type: str,
    payload: object,
    window: timedelta,
    *,
    critical: frozenset[str],
) -> Delivery:
    """The read sync of a logged read event, rebuilt from the log as the projection applied
    it (the ids it marked, not the ids it named), with the user's counts as of ``conn``'s
    snapshot: for a dispatcher re-sending what was never confirmed, and for an edge catching
    up after a broker blip."""
    event = ReadEvent.model_validate(payload)
    unread, unseen = await counts(conn, event.user_id, window, critical)
    marked = await conn.execute(MARKED_BY, {"user_id": event.user_id, "seq": seq})
    ids = [str(event_id) for event_id in marked.scalars()]
    up_to = all_read_bound(event, seq) if event_type == ALL_READ else None
    frame = read_frame(ids, unread, up_to, unseen_count=unseen)
    return Sync(seq, event.user_id, frame).delivery()


async def state_delivery(
    conn: AsyncConnection,
    seq: int,
    event_type: str,
    payload: object,
    window: timedelta,
    critical: frozenset[str],
) -> Delivery | None:
    """The sync of a logged seen, archive, unarchive or preferences event, rebuilt from the
    projection: a seen sync carries the user's seen mark as it is now (never lower than the
    one the event set), an archive sync the notifications whose archived state the event set
    last, a preferences sync the preferences the event set."""
    if event_type == PREFERENCES:
        preferences = PreferencesEvent.model_validate(payload)
        frame = preferences_frame(preferences.preferences.document(), critical)
        return Sync(seq, preferences.user_id, frame).delivery()
    if event_type == SEEN:
        seen = SeenEvent.model_validate(payload)
        mark = (await conn.exec_driver_sql(statements.SEEN_MARK, (seen.user_id,))).scalar_one()
        mark = int(mark)
        _, unseen = await counts(conn, seen.user_id, window, critical)
        return Sync(seq, seen.user_id, seen_frame(mark, unseen)).delivery()
    if event_type in (ARCHIVED, UNARCHIVED):
        archive = ArchiveEvent.model_validate(payload)
        rows = await conn.exec_driver_sql(statements.ARCHIVED_BY, (archive.user_id, seq))
        ids = [str(row.event_id) for row in rows.all()]
        unread, unseen = await counts(conn, archive.user_id, window, critical)
        frame = archived_frame(ids, unread, unseen, unarchived=event_type == UNARCHIVED)
        return Sync(seq, archive.user_id, frame).delivery()
    return None


async def rebuilt_delivery(
    conn: AsyncConnection,
    seq: int,
    event_type: str,
    payload: object,
    window: timedelta,
    *,
    critical: frozenset[str],
) -> Delivery | None:
    """The delivery of a logged event, rebuilt from the log and the projections: a new
    notification (``notification.created`` or ``.released``) unless it is suppressed for its
    user or still scheduled; the sync of a state event (read, all_read, seen, archived,
    unarchived, preferences), its counts as of ``conn``'s snapshot, for the operator's
    ``critical`` types. None for an event without a delivery, and, with an error logged, for
    a payload this version refuses (logged by a version that accepted it): whoever rebuilds
    goes on with the next event."""
    try:
        if event_type in (CREATED, RELEASED):
            return (await routed_notifications(conn, [seq])).get(seq)
        if event_type in (READ, ALL_READ):
            return await read_delivery(conn, seq, event_type, payload, window, critical=critical)
        return await state_delivery(conn, seq, event_type, payload, window, critical)
    except ValidationError as exc:
        log.error("event seq %d (%s) cannot be delivered again: %s", seq, event_type, one_line(exc))
        return None


class Pending(Protocol):
    async def wait(self) -> None:
        """Return once the broker has every delivery of the batch; raise ``NotDelivered`` if
        it may not."""


class Router(Protocol):
    async def send(self, deliveries: Sequence[Delivery], after: Pending | None = None) -> Pending:
        """Hand the deliveries to the broker in this order, without waiting for it; raise
        ``NotDelivered`` if they cannot be handed over. ``after``, the turn's previous send
        (not awaited yet): raise ``NotDelivered`` rather than hand them over unless they are
        certain to reach the broker behind it, or not at all (the same channel, still open,
        nothing of it refused)."""


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
        self,
        engine: AsyncEngine,
        broadcast_window: timedelta = DEFAULT_BROADCAST_WINDOW,
        *,
        critical: frozenset[str] | None = None,
    ) -> None:
        """``critical``: the operator's critical types (default: ``NOTIFY_CRITICAL_TYPES``
        from the environment), which no preference keeps from a user."""
        self.engine = engine
        self.window = broadcast_window
        self.critical = critical_types() if critical is None else critical

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

    @asynccontextmanager
    async def turn(self, router: Router) -> AsyncIterator[RoutingTurn]:
        """Hold the routing lock for a turn of one or more appends (module docstring,
        "Routing in log order"). On entry, whatever was committed above the routing mark is
        sent again first; on a clean exit, every send of the turn is awaited, the mark moves
        up if the broker confirmed them all, and the lock is released. Whatever goes wrong,
        the lock does not outlive the turn: the connection that holds it is thrown away."""
        async with self.engine.connect() as conn:
            turn = RoutingTurn(self, conn, router)
            try:
                await turn.start()
                yield turn
                await turn.finish()
            except BaseException:
                await conn.invalidate()
                raise

    async def append_and_route(self, events: Sequence[LogEvent], router: Router) -> AppendResult:
        """One append in a turn of its own."""
        async with self.turn(router) as turn:
            return await turn.append(events)

    async def unrouted(self, conn: AsyncConnection, routed: int, top: int) -> list[Delivery]:
        """The deliveries of what was committed above the routing mark, rebuilt from the log."""
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
        if not rows:
            return []
        log.warning(
            "publishing again the deliveries of %d events (seq %d..%d) committed without a "
            "confirmed publish",
            len(rows),
            routed + 1,
            top,
        )
        # New notifications in one query; each state event's sync on its own.
        notifications = await routed_notifications(
            conn, [row.seq for row in rows if row.event_type in (CREATED, RELEASED)]
        )
        deliveries = []
        for row in rows:
            if row.event_type in (CREATED, RELEASED):
                delivery = notifications.get(row.seq)
            else:
                delivery = await rebuilt_delivery(
                    conn, row.seq, row.event_type, row.payload, self.window,
                    critical=self.critical,
                )  # fmt: skip
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def append_in(
        self, conn: AsyncConnection, entries: Sequence[LogEntry]
    ) -> tuple[Applied, int]:
        """The statements of one append, on a connection whose transaction the caller commits
        (tests delay that commit to prove the lock keeps readers from skipping a row)."""
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        log_rows = statements.rows(
            (e.event_id, e.event_type, e.occurred_at, e.producer, orjson.Fragment(e.payload))
            for e in entries
        )
        inserted = await conn.exec_driver_sql(statements.INSERT_LOG, (log_rows,))
        by_id = {e.event_id: e.event for e in entries}
        logged = [
            Logged(seq=row.seq, recorded_at=row.recorded_at, event=by_id[row.event_id])
            for row in inserted.all()
        ]
        applied = await Projector(conn, self.window, critical=self.critical).apply(logged)
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


class RoutingTurn:
    """Appends made while holding the routing lock, on the connection that holds it; their
    deliveries are sent at once, in log order, and awaited at the end of the turn."""

    def __init__(self, store: EventStore, conn: AsyncConnection, router: Router) -> None:
        self.store = store
        self.conn = conn
        self.router = router
        self.rerouted = 0
        self.failure: BaseException | None = None  # the first send that may not have arrived
        self._pending: list[tuple[int, Pending]] = []  # first seq of each send, its outcome
        self._last = 0  # every event up to here is sent (or was confirmed before the turn)
        self._routed = 0  # the routing mark, as of the turn's start or its confirmed end

    async def start(self) -> None:
        async with self.conn.begin():
            await self.conn.exec_driver_sql(statements.ROUTING_LOCK)
            state = (await self.conn.exec_driver_sql(statements.ROUTING_STATE)).one()
            top = int(state.top)
            routed = top if state.routed_seq is None else int(state.routed_seq)
            unrouted = await self.store.unrouted(self.conn, routed, top) if top > routed else []
        self._last = top
        self._routed = routed
        self.rerouted = len(unrouted)
        await self._send(unrouted)

    @property
    def lag(self) -> int:
        """Seqs committed above the routing mark (the log's head minus ``routed_seq``), as
        this turn knows them: at its start, after its appends, after its confirmed end."""
        return self._last - self._routed

    async def append(self, events: Sequence[LogEvent]) -> AppendResult:
        """Append like ``EventStore.append``, then send what it produced."""
        entries = unique_entries(events)
        if not entries:
            return AppendResult(received=len(events), logged=0)
        async with self.conn.begin():
            applied, logged = await self.store.append_in(self.conn, entries)
        deliveries = applied.deliveries()
        await self._send(deliveries)
        if deliveries:
            self._last = max(self._last, deliveries[-1].seq)
        return AppendResult(received=len(events), logged=logged, applied=applied)

    async def _send(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries or self.failure is not None:
            return  # after a failed send, the rest waits for the next turn's resend
        after = self._pending[-1][1] if self._pending else None
        try:
            self._pending.append((deliveries[0].seq, await self.router.send(deliveries, after)))
        except NotDelivered as exc:
            self._failed(exc, deliveries[0].seq)

    def _failed(self, exc: BaseException, first_seq: int) -> None:
        if self.failure is None:
            self.failure = exc
            log.warning(
                "deliveries from seq %d on not confirmed (%s); they are sent again before the "
                "next batch",
                first_seq,
                one_line(exc),
            )

    async def finish(self) -> None:
        for first_seq, pending in self._pending:
            if self.failure is not None:
                break
            try:
                await pending.wait()
            except NotDelivered as exc:
                self._failed(exc, first_seq)
        raw = (await self.conn.get_raw_connection()).driver_connection
        assert raw is not None
        # One round trip, outside any transaction of the pool's: the mark is committed
        # before the lock is released.
        if self.failure is None:
            await raw.execute(statements.routed_and_unlock(self._last))
            self._routed = self._last
        else:
            await raw.execute(statements.ROUTING_UNLOCK)
