"""The partitioned event log on real data: months of events logged in their own partitions,
duplicates skipped across partitions (detached ones too), retention by detaching months, a
rebuild after it giving the same projections, and the reports unchanged throughout. A database
of this module's own: a detach and a rebuild cover the whole database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from dispatcher.events import Pruned, log_entry
from dispatcher.partitions import MONTHS_AHEAD, detach, keep_ahead, partitions
from dispatcher.rebuild import checksum, rebuild
from dispatcher.store import EventStore
from producers.envelope import Envelope, PreferencesEvent, ReadEvent, SeenEvent
from producers.preferences import critical_types
from producers.settings import Settings
from tests.integration.test_reporting import ready_queries
from tests.support.cli import run_notify
from tests.support.log import LOG_ONE, log_one
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration

WINDOW = timedelta(days=7)
DATA = {"booking_id": "b1", "tour_name": "Old City"}


@pytest.fixture(scope="module")
async def database_url(settings: Settings) -> AsyncIterator[str]:
    url = await create_database(settings.database_url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


def note(**audience: Any) -> Envelope:
    return Envelope.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "notification_type": "tour_started",
         "data": DATA, **audience}
    )  # fmt: skip


def read(user_id: str, *notes: Envelope) -> ReadEvent:
    return ReadEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.read",
         "user_id": user_id, "ids": [n.event_id for n in notes]}
    )  # fmt: skip


def month_start(months_back: int) -> datetime:
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(months_back):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


async def log_in_the_past(engine: AsyncEngine, at: datetime, events: list[Any]) -> None:
    """Log events as a dispatcher did at ``at`` (one transaction, one time: the rows a batch
    appended then, ids included); their projections come from the rebuild that follows."""
    async with engine.begin() as conn:
        for event in events:
            e = log_entry(event)
            row = log_one(e.event_id, e.event_type, e.payload, occurred=at, at=at,
                          producer=e.producer)  # fmt: skip
            await conn.execute(LOG_ONE, row)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def reports(engine: AsyncEngine) -> list[list[dict[str, Any]]]:
    """Every ready query of docs/reporting.md and both views, whole."""
    sqls = [
        *ready_queries(),
        "SELECT * FROM notification_history ORDER BY user_id, seq",
        "SELECT * FROM notification_daily_stats ORDER BY day, notification_type",
    ]
    found = []
    async with engine.connect() as conn:
        for sql in sqls:
            found.append([dict(row) for row in (await conn.execute(text(sql))).mappings()])
    return found


async def test_months_dedupe_retention_and_rebuild(
    engine: AsyncEngine, database_url: str, settings: Settings
) -> None:
    critical = critical_types()
    async with engine.begin() as conn:
        await conn.execute(
            text("SELECT notification_events_ensure_partitions(:since, now())"),
            {"since": month_start(2)},
        )
    two_back, one_back = month_start(2) + timedelta(days=3), month_start(1) + timedelta(days=3)
    old = {k: note(user_id=k) for k in ("alice", "bob", "carol")}
    old_room, old_broadcast = note(room="lobby"), note(broadcast=True)
    await log_in_the_past(
        engine,
        two_back,
        [*old.values(), old_room, old_broadcast,
         PreferencesEvent.model_validate(
             {"event_id": uuid.uuid4(), "schema_version": 1,
              "event_type": "notification.preferences", "user_id": "dave",
              "preferences": {"muted_categories": ["tour"]}})],
    )  # fmt: skip
    await log_in_the_past(
        engine,
        one_back,
        [read("alice", old["alice"]), note(user_id="dave"),
         SeenEvent.model_validate(
             {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.seen",
              "user_id": "carol", "up_to_seq": 3}),
         Pruned(event_id=uuid.uuid4(), cutoff=two_back + timedelta(hours=1),
                occurred_at=one_back)],
    )  # fmt: skip
    await rebuild(engine, WINDOW, critical)

    # Each month in its own partition.
    by_partition = await scalar(
        engine,
        "SELECT count(DISTINCT tableoid) FROM notification_events",
    )
    assert by_partition == 2

    # Dedupe across partitions: an old month's event appended again now is skipped, and a
    # writer that logs an event by hand, ids included, fails on their key rather than store it
    # twice.
    store = EventStore(engine, WINDOW)
    new = note(user_id="alice")
    done = await store.append([old["bob"], new, read("bob", old["bob"]), note(user_id="carol")])
    assert (done.received, done.logged) == (4, 3)
    assert await scalar(engine, "SELECT count(*) FROM notification_events") == 13
    assert await scalar(engine, "SELECT count(*) FROM notification_event_ids") == 13
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="pk_notification_event_ids"):
        await log_in_the_past(engine, one_back, [old["carol"]])
    # One that writes the log alone is refused by the log's foreign key to the ids.
    bare = text(
        "INSERT INTO notification_events (event_id, event_type, occurred_at, payload) "
        "VALUES (:id, 'notification.future', now(), '{}')"
    )
    for event_id in (old["carol"].event_id, uuid.uuid4()):
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="fk_notification_events_seq"):
            async with engine.begin() as conn:
                await conn.execute(bare, {"id": event_id})
    seqs = {n.event_id: n.seq for n in done.applied.notifications}
    await store.record_deliveries([("alice", seqs[new.event_id])])

    before, reported = await checksum(engine), await reports(engine)
    logged = await scalar(engine, "SELECT count(*) FROM notification_events")

    # Retention: both past months leave the log; the projections and reports do not change.
    detached = await detach(engine, timedelta(seconds=1), WINDOW, critical)
    assert [p.since for p in detached.partitions] == [month_start(2), month_start(1)]
    assert detached.archived
    attached = await partitions(engine)
    assert attached and all(p.since >= month_start(0) for p in attached)
    assert await scalar(engine, "SELECT count(*) FROM notification_events") == logged - 10
    assert await scalar(engine, "SELECT count(*) FROM notification_event_ids") == 13
    archive = await scalar(
        engine, "SELECT count(*) FROM notification_archive.notification_events_" + (
            month_start(2).strftime("y%Ym%m"))
    )  # fmt: skip
    assert archive == 6
    assert await checksum(engine) == before
    assert await reports(engine) == reported

    # A copy of a detached event is still a duplicate.
    again = await store.append([old["carol"]])
    assert again.logged == 0

    # The rebuild starts from what the detached months left and gives the same projections.
    code, out, err = await run_notify(
        "rebuild", env={"DATABASE_URL": database_url, "AMQP_URL": settings.amqp_url}
    )
    assert code == 0, err
    assert f"checksum {before.digest}" in out.splitlines()
    assert "rebuilt from 3 events" in out
    assert await checksum(engine) == before
    assert await reports(engine) == reported
    # Bob's old notification (its event detached) was read this month: the base kept it,
    # the log's read applied on top.
    bob_read = await scalar(
        engine,
        "SELECT read_at IS NOT NULL FROM notification_recipients r JOIN notifications n "
        "USING (seq) WHERE n.event_id = :id",
        id=old["bob"].event_id,
    )
    assert bob_read is True

    # Nothing detaches twice; the log stays append-only in every partition.
    assert (await detach(engine, timedelta(seconds=1), WINDOW, critical)).partitions == []
    for sql in ("UPDATE notification_events SET producer = 'x'", "DELETE FROM notification_events",
                f"TRUNCATE {attached[0].name}", "DELETE FROM notification_event_ids"):  # fmt: skip
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(sql))


async def test_partitions_commands(database_url: str, settings: Settings) -> None:
    env = {"DATABASE_URL": database_url, "AMQP_URL": settings.amqp_url}
    code, out, err = await run_notify("partitions", "create", "--months-ahead", "5", env=env)
    assert code == 0, err
    assert out.strip().endswith("partitions made")
    code, out, err = await run_notify("partitions", "list", env=env)
    assert code == 0, err
    assert month_start(0).strftime("notification_events_y%Ym%m") in out
    code, out, err = await run_notify("partitions", "detach", "--older-than", "soon", env=env)
    assert code == 2 and "is not an age" in err


async def test_keep_ahead_makes_the_coming_months_again_and_stops_when_asked(
    settings: Settings,
) -> None:
    """A dispatcher's hourly task (here a round every 50 ms): the coming months' partitions,
    dropped under it, are there again after its next round, and it ends on ``stop``."""
    url = await create_database(settings.database_url)
    engine = create_engine(url, pool_size=2)
    try:
        ahead = {p.name for p in await partitions(engine) if p.since > datetime.now(UTC)}
        assert len(ahead) == MONTHS_AHEAD
        async with engine.begin() as conn:
            for name in ahead:
                await conn.exec_driver_sql(f'DROP TABLE "{name}"')
        stop = asyncio.Event()
        task = asyncio.create_task(keep_ahead(engine, stop, every=0.05))
        for _ in range(200):  # 10 s at most: a few rounds of the task
            if ahead <= {p.name for p in await partitions(engine)}:
                break
            assert not task.done(), task
            await asyncio.sleep(0.05)
        stop.set()
        assert ahead <= {p.name for p in await partitions(engine)}, "not made again"
        await asyncio.wait_for(task, 5)
    finally:
        await engine.dispose()
        await drop_database(url)
