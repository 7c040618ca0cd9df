"""How long migration 0006 (the event log partitioned by month) holds the log (not collected
by pytest), on a private database filled at revision 0005.

    python -m tests.bench.bench_migration [--events 1000000] [--months 12]

Makes a database (removed at the end), migrates it to 0005 and fills it server-side with
generate_series: ``--events`` events spread evenly over the last ``--months`` months, each a
personal notification with an envelope of a realistic size as its payload (about 450 bytes of
JSON), projected into ``notifications`` with one recipient, one in three read. Then times
``alembic upgrade 0006``, which runs in one transaction with the log locked: the time is the
log's downtime for a database of that size. Prints the fill's and the upgrade's times, the
upgrade's rate, and the sizes before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from alembic import command

from dispatcher.database import alembic_config, create_database_if_missing
from producers.settings import DEFAULT_DATABASE_URL, async_database_url
from tests.bench.bench_dispatcher import pg_connect
from tests.support.services import drop_database

# The log and its projections at 0005, as the dispatcher would have written them: seqs in
# order of recorded_at, one notification and one recipient per event.
FILL_0005 = [
    """INSERT INTO notification_events (event_id, event_type, occurred_at, recorded_at,
           producer, payload)
       SELECT id, 'booking_confirmed', t, t, 'booking-service',
              jsonb_build_object(
                  'event_id', id, 'schema_version', 1,
                  'notification_type', 'booking_confirmed', 'producer', 'booking-service',
                  'user_id', 'user-' || (i % 100000), 'priority', 'high',
                  'occurred_at', t,
                  'data', jsonb_build_object(
                      'booking_id', 'b-' || i, 'tour_name', 'Jerusalem Day Tour',
                      'confirmation_code', upper(substr(md5(i::text), 1, 8))),
                  'title', 'Booking Confirmed!',
                  'message', 'Your booking for ''Jerusalem Day Tour'' is confirmed',
                  'link', '/bookings/b-' || i)
       FROM (SELECT i, gen_random_uuid() AS id,
                    now() - make_interval(months => $1)
                    + (i - 1) * (make_interval(months => $1) - interval '1 hour') / $2 AS t
             FROM generate_series(1, $2) AS i) AS s
       ORDER BY i""",
    """INSERT INTO notifications (seq, event_id, audience, user_id, notification_type, category,
           priority, title, message, data, producer, occurred_at, created_at)
       SELECT seq, event_id, 'user', payload->>'user_id', 'booking_confirmed', 'booking',
              'high', payload->>'title', payload->>'message', payload->'data', producer,
              occurred_at, recorded_at
       FROM notification_events""",
    """INSERT INTO notification_recipients (user_id, seq, delivered_at, read_at)
       SELECT user_id, seq, created_at, CASE WHEN seq % 3 = 0 THEN created_at END
       FROM notifications""",
    "VACUUM ANALYZE",
]

SIZES = """
SELECT pg_size_pretty(pg_database_size(current_database())) AS database,
       (SELECT count(*) FROM notification_events) AS events
"""


async def run(events: int, months: int) -> None:
    base = async_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    name = f"notify_bench_migration_{os.getpid()}"
    url = base.rsplit("/", 1)[0] + f"/{name}"
    await create_database_if_missing(url)
    config = alembic_config(url)
    try:
        await asyncio.to_thread(command.upgrade, config, "0005")
        conn = await pg_connect(url)
        try:
            started = time.perf_counter()
            for sql in FILL_0005:
                await conn.execute(sql, months, events) if "$1" in sql else await conn.execute(sql)
            fill = time.perf_counter() - started
            before = await conn.fetchrow(SIZES)
        finally:
            await conn.close()
        print(f"filled at 0005: {before['events']:,} events, database {before['database']}, "
              f"in {fill:.1f}s")  # fmt: skip

        started = time.perf_counter()
        await asyncio.to_thread(command.upgrade, config, "0006")
        upgrade = time.perf_counter() - started

        conn = await pg_connect(url)
        try:
            after = await conn.fetchrow(SIZES)
            partitions = await conn.fetchval(
                "SELECT count(*) FROM pg_inherits "
                "WHERE inhparent = 'public.notification_events'::regclass"
            )
        finally:
            await conn.close()
        assert after["events"] == before["events"]
        rate = events / upgrade
        print(f"upgrade 0005 -> 0006: {upgrade:.1f}s with the log locked "
              f"({rate:,.0f} events/s; {10_000_000 / rate / 60:.1f} min per 10M events at "
              f"this rate), {partitions} partitions, database {after['database']}")  # fmt: skip
    finally:
        await drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.months))


if __name__ == "__main__":
    main()
