"""The partitioned event log at scale (not collected by pytest): plans and timings of the log's
read paths, the append and retention on a private database of 10M+ events.

    python -m tests.bench.bench_partitions [--events 10000000] [--months 12]

Fills a private database (removed at the end) server-side with generate_series: ``--events``
events spread evenly over the last ``--months`` months, one partition each, as the append
would have logged them (every event_id in ``notification_event_ids``), and one notification in
ten projected (personal ones for 100,000 users, half of them read). The events are of a type
this version does not project (``bench.filler``), so retention's replay into the base only
reads them. Then prints, for each path, ``EXPLAIN (ANALYZE, BUFFERS)`` with the partitions it
read out of those attached, and times ``notify partitions detach`` of the oldest month.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher import queries, statements
from dispatcher.database import create_engine
from dispatcher.partitions import detach
from dispatcher.rebuild import PAGE_OF_LOG
from producers.settings import DEFAULT_DATABASE_URL, async_database_url
from tests.bench.bench_dispatcher import _positional, pg_connect
from tests.support.services import create_database, drop_database

FILL = [
    """SELECT notification_events_ensure_partitions(now() - make_interval(months => $1),
                                                    now() + interval '3 months')""",
    # Every event_id, seq and recorded_at, as the append records them, then the log's rows
    # with the same seqs.
    """INSERT INTO notification_event_ids (event_id, seq, recorded_at)
       SELECT gen_random_uuid(), nextval('notification_events_seq_seq'), t
       FROM (SELECT i, now() - make_interval(months => $1)
                    + (i - 1) * (make_interval(months => $1) - interval '1 hour') / $2 AS t
             FROM generate_series(1, $2) AS i) AS s
       ORDER BY i""",
    """INSERT INTO notification_events (seq, event_id, event_type, occurred_at, recorded_at,
           producer, payload) OVERRIDING SYSTEM VALUE
       SELECT seq, event_id, 'bench.filler', recorded_at, recorded_at, 'bench',
              jsonb_build_object('user_id', 'user-' || (seq % 100000))
       FROM notification_event_ids""",
    """INSERT INTO notifications (seq, event_id, audience, user_id, notification_type, category,
           priority, title, message, data, producer, occurred_at, created_at)
       SELECT seq, event_id, 'user', 'user-' || (seq % 100000), 'system_alert', 'system',
              'high', 'title', 'message', '{}', 'bench', occurred_at, recorded_at
       FROM notification_events WHERE seq % 10 = 0""",
    """INSERT INTO notification_recipients (user_id, seq, delivered_at, read_at)
       SELECT user_id, seq, created_at, CASE WHEN seq % 20 = 0 THEN created_at END
       FROM notifications""",
    "VACUUM ANALYZE",
]

PARTITION = re.compile(r"on (notification_events_y\d{4}m\d{2})")


def plans(top: int, batch: str) -> dict[str, tuple[str, list[Any]]]:
    """Each read path's statement, with the parameters of a reader near the log's head."""
    now = datetime.now(UTC)
    named = {"user_id": "user-4240", "window": timedelta(days=7), "limit": 500,
             "since": top - 5_000, "high_water": top, "users": ["user-4240", "user-70"],
             "critical": ["system_alert"], "status": "all", "before_seq": top}  # fmt: skip
    return {
        "append (a batch of 200, under the append lock; rolled back)": (
            statements.INSERT_LOG,
            [batch],
        ),
        "log head (high water, routing state)": (statements.ROUTING_STATE, []),
        "unrouted: seq in (head - 1000, head]": (statements.UNROUTED, [top - 1000, top, 10_000]),
        "edge catch-up: user-state events since head - 5000": _positional(
            queries.READS_SINCE.text, named
        ),
        "rebuild page: 5000 events after the middle of the log": (PAGE_OF_LOG, [top // 2, 5000]),
        "replay on connect (unread for U)": _positional(queries.UNREAD.text, named),
        "history page for U": _positional(queries.HISTORY.text, named),
        "badge counts for U": _positional(queries.COUNTS.text, named),
        # Planned only (it deletes); its ON DELETE CASCADE finds the recipients by seq, through
        # ix_notification_recipients_seq, which the plan does not show.
        "prune: notification.pruned, 90 days (plan only)": (
            statements.PRUNE,
            [top + 1, now - timedelta(days=90), now, timedelta(days=7)],
        ),
    }


async def explain(conn: Any, sql: str, args: list[Any], partitions: int) -> str:
    analyze = "ANALYZE, " if not sql.lstrip().startswith("DELETE") else ""
    tr = conn.transaction()
    await tr.start()
    try:
        if sql.lstrip().startswith(("INSERT", "DELETE", "WITH")):
            await conn.execute(statements.APPEND_LOCK)
        rows = await conn.fetch(f"EXPLAIN ({analyze}BUFFERS, COSTS OFF) {sql}", *args)
    finally:
        await tr.rollback()
    text = "\n".join(row[0] for row in rows)
    lines = text.splitlines()
    planned = {m for line in lines for m in PARTITION.findall(line)}
    executed = {m for line in lines if "never executed" not in line
                for m in PARTITION.findall(line)}  # fmt: skip
    removed = sum(int(n) for n in re.findall(r"Subplans Removed: (\d+)", text))
    summary = (
        f"-- partitions of {partitions}: {len(planned)} in the plan after planning-time pruning"
        f"{f', {removed} more removed at start-up' if removed else ''}, {len(executed)} executed"
    )
    return f"{summary}\n{text}"


async def run(events: int, months: int) -> None:
    db_base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    database_url = await create_database(db_base)
    try:
        conn = await pg_connect(database_url)
        try:
            for statement in FILL:
                started = time.perf_counter()
                args = [months, events][: (statement.count("$2") and 2) or statement.count("$1")]
                await conn.execute(statement, *args)
                print(f"-- {statement.split()[0]} ... in {time.perf_counter() - started:.0f}s",
                      file=sys.stderr)  # fmt: skip
            top = await conn.fetchval("SELECT max(seq) FROM notification_event_ids")
            attached = await conn.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'notification_events'::regclass"
            )
            size = await conn.fetchval(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
                "WHERE inhparent = 'notification_events'::regclass"
            )
            ids_size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_total_relation_size('notification_event_ids'))"
            )
            print(f"{events} events over {months} months, {attached} partitions attached "
                  f"(log {size}, ids {ids_size}); head seq {top}")  # fmt: skip
            batch = statements.rows(
                (f"00000000-0000-4000-8000-{i:012d}", "bench.filler", "2026-01-01T00:00:00Z",
                 "bench", {"user_id": f"user-{i}"})
                for i in range(200)
            )  # fmt: skip
            for name, (sql, args) in plans(top, batch).items():
                print(f"\n### {name}\n")
                print(await explain(conn, sql, args, attached))
        finally:
            await conn.close()
        engine = create_engine(database_url, pool_size=1)
        try:
            oldest = timedelta(days=31 * (months - 2))  # the first, partial month
            started = time.perf_counter()
            done = await detach(engine, oldest, timedelta(days=7), frozenset(), drop=True)
            took = time.perf_counter() - started
        finally:
            await engine.dispose()
        print(f"\n### retention: detach {[p.name for p in done.partitions]} (dropped)\n")
        print(f"{took:.1f}s, the log's events up to seq {done.horizon} now in the base")
    finally:
        await drop_database(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.months))


if __name__ == "__main__":
    main()
