"""The event log's monthly partitions: made ahead of time, and detached when old.

``notification_events`` is partitioned by RANGE of ``recorded_at``, one partition per month
(UTC) named ``notification_events_yYYYYmMM`` (migration 0006). There is no default partition:
an event whose month has no partition is refused by PostgreSQL rather than put where nothing
would ever detach it. Partitions are therefore made ahead: by the migration, by ``notify
migrate``, by every dispatcher when it starts and then every hour (``keep_ahead``), and by
``notify partitions create``; a dispatcher that meets the refusal anyway makes the partition
and stores the batch again (``dispatcher.consumer``).

Retention detaches whole months (``detach``) instead of deleting rows. Before a month leaves
the log, its events are applied, with the dispatcher's own code, to ``notification_base``: a
copy of the projection tables that holds the projections as the detached events left them.
``notify rebuild`` starts from that base and applies the log after it, so a rebuild after
retention gives the projections the dispatchers built. The event ids stay in
``notification_event_ids``: an event that comes back after its month was detached is still
skipped as a duplicate. A detached month is either dropped or moved to the schema
``notification_archive``, where it stays readable with plain SQL.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import statements
from dispatcher.events import event_from_payload
from dispatcher.failures import one_line
from dispatcher.projection import Logged, Projector
from producers.waiting import wait_event

log = logging.getLogger("notify.dispatcher")

MONTHS_AHEAD = 3  # partitions are kept ready this many months past the current one
KEEP_AHEAD_SECONDS = 3600.0  # how often a dispatcher makes sure of it
PAGE = 5000

ENSURE = """
SELECT notification_events_ensure_partitions(now(), now() + make_interval(months => $1))
"""

# The attached partitions, oldest first, with their bounds.
PARTITIONS = """
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)'))[1]::timestamptz AS since,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)'))[2]::timestamptz AS until
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'public.notification_events'::regclass
ORDER BY since
"""

# A page of the events recorded before $2 (the months to detach, and no other partition) after
# seq $1, in seq order.
DETACHED_PAGE = """
SELECT seq, event_type, payload, occurred_at, recorded_at FROM notification_events
WHERE recorded_at < $2 AND seq > $1 ORDER BY seq LIMIT $3
"""

HORIZON = """
SELECT coalesce((SELECT seq FROM notification_base.horizon WHERE id = 1), 0)
"""
SET_HORIZON = """
INSERT INTO notification_base.horizon (id, seq, recorded_before) VALUES (1, $1, $2)
ON CONFLICT (id) DO UPDATE
SET seq = excluded.seq, recorded_before = excluded.recorded_before, detached_at = now()
"""


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    since: datetime
    until: datetime
    events: int | None = None


@dataclass(frozen=True, slots=True)
class Detached:
    partitions: list[Partition]
    horizon: int  # every event up to this seq has left the log
    archived: bool  # moved to notification_archive (else dropped)


class RetentionRefused(RuntimeError):
    """A detach that would lose what the projections cannot get back from anywhere."""


async def ensure(engine: AsyncEngine, months_ahead: int = MONTHS_AHEAD) -> int:
    """Make the partitions of this month and the next ``months_ahead``; the number made.
    Waits at most five seconds for the log's lock (a long rebuild holds it): a partition is
    made before it is needed, so the next call can do it."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
        made = (await conn.exec_driver_sql(ENSURE, (months_ahead,))).scalar_one()
    return int(made)


async def keep_ahead(
    engine: AsyncEngine, stop: asyncio.Event, every: float = KEEP_AHEAD_SECONDS
) -> None:
    """Until ``stop``: make sure of the coming months' partitions every ``every`` seconds."""
    while True:
        try:
            made = await ensure(engine)
        except Exception as exc:  # noqa: BLE001 - the next round tries again; it is early
            log.warning("could not make the log's coming partitions (%s)", one_line(exc))
        else:
            if made:
                log.info("made %d partitions of the event log ahead of time", made)
        if await wait_event(stop, every):
            return


async def partitions_in(conn: AsyncConnection, *, count: bool = False) -> list[Partition]:
    found = []
    for row in (await conn.exec_driver_sql(PARTITIONS)).all():
        events = None
        if count:
            events = int(
                (await conn.exec_driver_sql(f'SELECT count(*) FROM "{row.name}"')).scalar_one()
            )
        found.append(Partition(row.name, row.since, row.until, events))
    return found


async def partitions(engine: AsyncEngine, *, count: bool = False) -> list[Partition]:
    async with engine.connect() as conn:
        return await partitions_in(conn, count=count)


def _logged(row: Any) -> Logged | None:
    event = event_from_payload(row.event_type, row.payload, row.occurred_at)
    return None if event is None else Logged(row.seq, row.recorded_at, event)


async def detach(
    engine: AsyncEngine,
    older_than: timedelta,
    window: timedelta,
    critical: frozenset[str],
    *,
    drop: bool = False,
) -> Detached:
    """Detach every month that ended more than ``older_than`` ago, in one transaction under
    the append lock (dispatchers wait for it): apply its events to the base, move the base's
    horizon, detach it, then move it to ``notification_archive`` or (``drop``) drop it.
    ``window`` and ``critical`` must be the dispatchers' (as for ``notify rebuild``)."""
    cutoff = datetime.now(UTC) - older_than
    async with engine.begin() as conn:
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        attached = await partitions_in(conn)
        chosen = [p for p in attached if p.until <= cutoff]
        horizon = int((await conn.exec_driver_sql(HORIZON)).scalar_one())
        if not chosen:
            return Detached([], horizon, not drop)
        last = (
            await conn.exec_driver_sql(
                "SELECT max(seq) FROM notification_events WHERE recorded_at < $1",
                (chosen[-1].until,),
            )
        ).scalar_one()
        following = (
            await conn.exec_driver_sql(
                "SELECT min(seq) FROM notification_events WHERE recorded_at >= $1",
                (chosen[-1].until,),
            )
        ).scalar_one()
        if last is not None and following is not None and following < last:
            raise RetentionRefused(
                f"seq {following}, recorded after {chosen[-1].until.isoformat()}, comes before "
                f"seq {last} of the months to detach: the log after them would not start "
                "where they end (rows appended before migration 0006 without the append lock?)"
            )
        # The detached events, applied to the base with the projections' own statements: the
        # base schema comes first in the search path, the log after it.
        await conn.exec_driver_sql("SET LOCAL search_path TO notification_base, public")
        projector = Projector(conn, window, critical=critical, count_unread=False)
        after, until = horizon, chosen[-1].until
        while True:
            page = (await conn.exec_driver_sql(DETACHED_PAGE, (after, until, PAGE))).all()
            if not page:
                break
            await projector.apply([e for e in map(_logged, page) if e is not None])
            after = page[-1].seq
        await conn.exec_driver_sql("SET LOCAL search_path TO DEFAULT")
        horizon = max(horizon, last or 0)
        await conn.exec_driver_sql(SET_HORIZON, (horizon, chosen[-1].until))
        for partition in chosen:
            name = f'"{partition.name}"'
            await conn.exec_driver_sql(f"ALTER TABLE notification_events DETACH PARTITION {name}")
            if drop:
                await conn.exec_driver_sql(f"DROP TABLE {name}")
            else:
                await conn.exec_driver_sql(f"ALTER TABLE {name} SET SCHEMA notification_archive")
        return Detached(chosen, horizon, not drop)
