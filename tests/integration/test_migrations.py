"""The migrations and ``dispatcher.schema`` describe the same database, and 0006 carries a log
filled at 0005 into the partitioned one (and back)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import statements
from dispatcher.database import alembic_config, create_database_if_missing, create_engine
from dispatcher.rebuild import checksum, rebuild
from dispatcher.schema import include_name, metadata
from dispatcher.store import DEFAULT_BROADCAST_WINDOW, EventStore
from producers.envelope import Envelope, ReadEvent
from producers.preferences import critical_types
from producers.settings import Settings
from tests.support.services import drop_database

pytestmark = pytest.mark.integration


async def test_migrated_database_matches_the_metadata(engine: AsyncEngine) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == []


# The append of revision 0005 (dispatcher/statements.py before the log was partitioned): the
# real store fills a database at 0005 with it.
INSERT_LOG_0005 = """
INSERT INTO notification_events (event_id, event_type, occurred_at, producer, payload)
SELECT (r->>0)::uuid, r->>1, (r->>2)::timestamptz, r->>3, r->4
FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, position)
ORDER BY e.position
ON CONFLICT (event_id) DO NOTHING
RETURNING seq, event_id, recorded_at
"""
LOG = text(
    "SELECT seq, event_id, event_type, occurred_at, recorded_at, producer, md5(payload::text) "
    "FROM notification_events ORDER BY seq"
)


def note(user_id: str) -> Envelope:
    return Envelope.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "notification_type": "tour_started",
         "user_id": user_id, "data": {"booking_id": "b1", "tour_name": "Old City"}}
    )  # fmt: skip


async def test_0006_carries_the_log_into_partitions_and_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(settings.database_url).set(database=f"notify_test_{uuid.uuid4().hex[:8]}")
    database_url = url.render_as_string(hide_password=False)
    await create_database_if_missing(database_url)
    config = alembic_config(database_url)
    engine = create_engine(database_url, pool_size=2)
    try:
        await asyncio.to_thread(command.upgrade, config, "0005")
        # Months ago: events of a type this version leaves aside, and an old prune that
        # removes nothing, so that the carried log spans several months.
        async with engine.begin() as conn:
            for days in (70, 40):
                await conn.execute(
                    text(
                        "INSERT INTO notification_events (event_id, event_type, occurred_at, "
                        "recorded_at, payload) VALUES (:id, :type, now() - make_interval("
                        "days => :days), now() - make_interval(days => :days), :payload)"
                    ),
                    {"id": uuid.uuid4(), "type": "notification.future", "days": days,
                     "payload": '{"x": 1}'},
                )  # fmt: skip
        monkeypatch.setattr(statements, "INSERT_LOG", INSERT_LOG_0005)
        store = EventStore(engine)
        notes = [note(f"user-{i % 7}") for i in range(60)]
        done = await store.append(notes)
        seqs = {n.event_id: n.seq for n in done.applied.notifications}
        await store.append([
            ReadEvent.model_validate(
                {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.read",
                 "user_id": n.user_id, "ids": [n.event_id]})
            for n in notes[::3]
        ])  # fmt: skip
        await store.record_deliveries([(n.user_id or "", seqs[n.event_id]) for n in notes[::2]])
        monkeypatch.undo()
        async with engine.connect() as conn:
            log_before = (await conn.execute(LOG)).all()
            top = int(
                (await conn.execute(text("SELECT max(seq) FROM notification_events"))).scalar_one()
            )
        before = await checksum(engine)

        await asyncio.to_thread(command.upgrade, config, "head")
        await engine.dispose()
        async with engine.connect() as conn:
            assert (await conn.execute(LOG)).all() == log_before
            ids = (await conn.execute(text(
                "SELECT count(*) FROM notification_event_ids i JOIN notification_events e "
                "USING (seq, event_id, recorded_at)"))).scalar()  # fmt: skip
            sql = text("SELECT count(DISTINCT tableoid) FROM notification_events")
            months = (await conn.execute(sql)).scalar_one()
        assert ids == len(log_before)
        assert months >= 3
        assert await checksum(engine) == before
        rebuilt = await rebuild(engine, DEFAULT_BROADCAST_WINDOW, critical_types())
        assert rebuilt.checksum == before
        # The store at head goes on after the old seqs, and still knows the old event ids.
        later = await EventStore(engine).append([notes[0], note("user-new")])
        assert later.logged == 1
        assert later.applied.notifications[0].seq > top

        async with engine.connect() as conn:
            log_head = (await conn.execute(LOG)).all()
        await asyncio.to_thread(command.downgrade, config, "0005")
        await engine.dispose()
        async with engine.connect() as conn:
            assert (await conn.execute(LOG)).all() == log_head
    finally:
        await engine.dispose()
        await drop_database(database_url)
