"""``notify rebuild``: drop the projections and derive them again from the log.

Everything runs in one transaction. It first takes the append lock (dispatchers wait, as they
would for a long batch) and locks the per-user state against receipts, keeps the delivery
receipts aside (they are facts about sockets, not events, so the log cannot give them back),
deletes the projections, applies every logged event in seq order with the same code the
dispatcher uses (``dispatcher.projection``), puts the receipts back and computes a checksum.
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
CLEAR = ("DELETE FROM notification_recipients", "DELETE FROM notifications")
PAGE_OF_LOG = """
SELECT seq, event_type, payload, occurred_at, recorded_at FROM notification_events
WHERE seq > $1 ORDER BY seq LIMIT $2
"""
RESTORE_RECEIPTS = """
INSERT INTO notification_recipients (user_id, seq, delivered_at)
SELECT k.user_id, k.seq, k.delivered_at FROM kept_receipts k JOIN notifications n ON n.seq = k.seq
ON CONFLICT (user_id, seq) DO UPDATE SET delivered_at = excluded.delivered_at
"""

# Order-independent digests of every projection row (the sum of the first 64 bits of each
# row's md5), so that the checksum streams over any number of rows in constant memory.
CHECKSUM = """
WITH n AS (
    SELECT count(*) AS rows, coalesce(sum(('x' || left(md5(format(
        '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', seq, event_id, audience, user_id,
        room, notification_type, category, priority, title, message, data, action_url,
        producer, extract(epoch FROM occurred_at), extract(epoch FROM created_at))), 16)
        )::bit(64)::bigint), 0) AS digest
    FROM notifications
), r AS (
    SELECT count(*) AS rows, coalesce(sum(('x' || left(md5(format(
        '%s|%s|%s|%s', user_id, seq, extract(epoch FROM delivered_at),
        extract(epoch FROM read_at))), 16))::bit(64)::bigint), 0) AS digest
    FROM notification_recipients
)
SELECT n.rows AS notifications, n.digest AS notifications_digest,
       r.rows AS recipients, r.digest AS recipients_digest
FROM n, r
"""


@dataclass(frozen=True, slots=True)
class Checksum:
    notifications: int
    recipients: int
    digest: str


@dataclass(frozen=True, slots=True)
class Rebuilt:
    events: int
    skipped: int  # events of a type this version does not project
    checksum: Checksum


async def checksum_in(conn: AsyncConnection) -> Checksum:
    row = (await conn.exec_driver_sql(CHECKSUM)).one()
    parts = (row.notifications, row.notifications_digest, row.recipients, row.recipients_digest)
    text = ":".join(str(part) for part in parts)
    digest = hashlib.md5(text.encode()).hexdigest()
    return Checksum(int(row.notifications), int(row.recipients), digest)


async def checksum(engine: AsyncEngine) -> Checksum:
    """The checksum of the projections as they are now."""
    async with engine.connect() as conn:
        return await checksum_in(conn)


def _logged(row: Any) -> Logged | None:
    event = event_from_payload(row.event_type, row.payload, row.occurred_at)
    return None if event is None else Logged(row.seq, row.recorded_at, event)


async def rebuild(engine: AsyncEngine, broadcast_window: timedelta) -> Rebuilt:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        await conn.exec_driver_sql(LOCK_RECIPIENTS)
        await conn.exec_driver_sql(KEEP_RECEIPTS)
        for statement in CLEAR:
            await conn.exec_driver_sql(statement)
        projector = Projector(conn, broadcast_window, count_unread=False)
        events = skipped = last = 0
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
