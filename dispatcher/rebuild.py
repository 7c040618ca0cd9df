"""``notify rebuild``: drop the projections and derive them again from the log.

Everything runs in one transaction. It first takes the append lock (dispatchers wait, as they
would for a long batch) and locks the per-user state against receipts, keeps the delivery
receipts aside (they are facts about sockets, not events, so the log cannot give them back),
deletes the projections (notifications and their per-user state, the per-user seen marks and
preferences, the schedule), copies in the base that retention left (the projections as the
detached months of the log made them: ``dispatcher.partitions``; empty until a month is
detached), applies every logged event after the base's horizon in seq order with the same
code the dispatcher uses (``dispatcher.projection``), puts the receipts back and computes a
checksum.
Rows are deleted rather than truncated so that readers (the edges' replays) keep seeing the
old projections until the commit, and then the new ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import statements
from dispatcher.events import event_from_payload
from dispatcher.projection import Logged, Projector

PAGE = 5000

LOCK_RECIPIENTS = "LOCK TABLE notification_recipients IN EXCLUSIVE MODE"
KEEP_RECEIPTS = """
CREATE TEMPORARY TABLE kept_receipts ON COMMIT DROP AS
SELECT user_id, seq, delivered_at FROM notification_recipients WHERE delivered_at IS NOT NULL
"""
CLEAR = (
    "DELETE FROM notification_recipients",
    "DELETE FROM notifications",
    "DELETE FROM notification_schedule",
    "DELETE FROM notification_users",
)
# Where the log starts: the base holds the projections as the events retention detached left
# them (dispatcher/partitions.py), the log everything after its horizon. Recipients after
# their notifications (a foreign key).
BASE = ("notifications", "notification_schedule", "notification_users", "notification_recipients")
RESTORE_BASE = tuple(f"INSERT INTO {t} SELECT * FROM notification_base.{t}" for t in BASE)
HORIZON = "SELECT coalesce((SELECT seq FROM notification_base.horizon WHERE id = 1), 0)"
# A page of the log after seq $1: its seqs and least recorded_at come from the ids first, so
# that only the partitions that hold the page are read.
PAGE_OF_LOG = """
WITH page AS (
    SELECT seq, recorded_at FROM notification_event_ids WHERE seq > $1 ORDER BY seq LIMIT $2
)
SELECT seq, event_type, payload, occurred_at, recorded_at FROM notification_events
WHERE seq > $1 AND seq <= (SELECT max(seq) FROM page)
  AND recorded_at >= (SELECT min(recorded_at) FROM page)
ORDER BY seq
"""
RESTORE_RECEIPTS = """
INSERT INTO notification_recipients (user_id, seq, delivered_at)
SELECT k.user_id, k.seq, k.delivered_at FROM kept_receipts k JOIN notifications n ON n.seq = k.seq
ON CONFLICT (user_id, seq) DO UPDATE SET delivered_at = excluded.delivered_at
"""


# Order-independent digests of every projection row (the sum of the first 64 bits of each
# row's md5), so that the checksum streams over any number of rows in constant memory.
def _digest(columns: str, table: str) -> str:
    placeholders = "|".join(["%s"] * (columns.count(",") + 1))
    return f"""SELECT count(*) AS rows, coalesce(sum(('x' || left(md5(format(
        '{placeholders}', {columns})), 16))::bit(64)::bigint), 0) AS digest
    FROM {table}"""


CHECKSUM = f"""
WITH n AS ({_digest(
    "seq, event_id, audience, user_id, room, notification_type, category, priority, title, "
    "message, data, action_url, producer, extract(epoch FROM occurred_at), "
    "extract(epoch FROM created_at)", "notifications")}
), r AS ({_digest(
    "user_id, seq, extract(epoch FROM delivered_at), extract(epoch FROM read_at), read_seq, "
    "extract(epoch FROM archived_at), archived_seq, suppressed", "notification_recipients")}
), u AS ({_digest(
    "user_id, seen_seq, extract(epoch FROM seen_at), preferences, preferences_seq, "
    "extract(epoch FROM preferences_at)", "notification_users")}
), s AS ({_digest(
    "seq, event_id, extract(epoch FROM deliver_at), status, released_seq, cancelled_seq",
    "notification_schedule")}
)
SELECT n.rows AS notifications, n.digest AS notifications_digest,
       r.rows AS recipients, r.digest AS recipients_digest,
       u.rows AS users, u.digest AS users_digest,
       s.rows AS scheduled, s.digest AS scheduled_digest
FROM n, r, u, s
"""  # fmt: skip


@dataclass(frozen=True, slots=True)
class Checksum:
    notifications: int
    recipients: int
    users: int  # rows of notification_users (seen marks, preferences)
    scheduled: int  # rows of notification_schedule, whatever their status
    digest: str


@dataclass(frozen=True, slots=True)
class Rebuilt:
    events: int
    skipped: int  # events of a type this version does not project
    checksum: Checksum


async def checksum_in(conn: AsyncConnection) -> Checksum:
    row = (await conn.exec_driver_sql(CHECKSUM)).one()
    text = ":".join(str(part) for part in row)
    digest = hashlib.md5(text.encode()).hexdigest()
    return Checksum(
        int(row.notifications), int(row.recipients), int(row.users), int(row.scheduled), digest
    )


async def checksum(engine: AsyncEngine) -> Checksum:
    """The checksum of the projections as they are now."""
    async with engine.connect() as conn:
        return await checksum_in(conn)


def _logged(row: Any) -> Logged | None:
    event = event_from_payload(row.event_type, row.payload, row.occurred_at)
    return None if event is None else Logged(row.seq, row.recorded_at, event)


async def rebuild(
    engine: AsyncEngine, broadcast_window: timedelta, critical: frozenset[str]
) -> Rebuilt:
    """Rebuild the projections from the log; ``critical`` must be the operator's critical
    types the dispatchers run with (``NOTIFY_CRITICAL_TYPES``), since they decided which
    personal notifications were muted or quiet."""
    async with engine.begin() as conn:
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        await conn.exec_driver_sql(LOCK_RECIPIENTS)
        await conn.exec_driver_sql(KEEP_RECEIPTS)
        for statement in CLEAR:
            await conn.exec_driver_sql(statement)
        for statement in RESTORE_BASE:
            await conn.exec_driver_sql(statement)
        projector = Projector(conn, broadcast_window, critical=critical, count_unread=False)
        events = skipped = 0
        last = int((await conn.exec_driver_sql(HORIZON)).scalar_one())
        while True:
            rows = (await conn.exec_driver_sql(PAGE_OF_LOG, (last, PAGE))).all()
            if not rows:
                break
            logged = [entry for entry in map(_logged, rows) if entry is not None]
            await projector.apply(logged)
            events += len(rows)
            skipped += len(rows) - len(logged)
            last = rows[-1].seq
        await conn.exec_driver_sql(RESTORE_RECEIPTS)
        return Rebuilt(events, skipped, await checksum_in(conn))
