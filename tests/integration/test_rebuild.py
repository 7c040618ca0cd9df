"""``notify rebuild`` and ``notify prune``: the projections rebuilt from the log equal the ones
built by appending, receipts included, and a prune is replayed by a rebuild instead of being
undone. They run on a database of this module's own: a checksum covers the whole database,
and the session's edges keep writing delivery receipts into theirs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from dispatcher.rebuild import checksum
from dispatcher.retention import prune
from dispatcher.store import EventStore
from producers.envelope import Envelope, ReadEvent
from producers.settings import Settings
from tests.support.cli import run_notify
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration


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


@pytest.fixture(scope="module")
def process_env(database_url: str, settings: Settings) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "AMQP_URL": settings.amqp_url}


def note(**audience: Any) -> Envelope:
    return Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "tour_started",
            "data": {"booking_id": "b1", "tour_name": "Old City"},
            **audience,
        }
    )


def read(user_id: str, **fields: Any) -> ReadEvent:
    kind = "notification.read" if "ids" in fields else "notification.all_read"
    return ReadEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": kind, "user_id": user_id}
        | fields
    )


async def states(engine: AsyncEngine, *users: str) -> list[tuple[Any, ...]]:
    sql = """SELECT r.user_id, n.event_id, r.delivered_at, r.read_at
             FROM notification_recipients r JOIN notifications n USING (seq)
             WHERE r.user_id = ANY(:users) ORDER BY r.user_id, r.seq"""
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(sql), {"users": list(users)})]


async def seed(engine: AsyncEngine, alice: str, bob: str) -> dict[str, Envelope]:
    """Personal, room and broadcast notifications; reads by id and read-all; receipts."""
    store = EventStore(engine)
    notes = {
        "a1": note(user_id=alice),
        "a2": note(user_id=alice),
        "a3": note(user_id=alice),
        "b1": note(user_id=bob),
        "room": note(room=f"room-{alice}"),
        "everyone": note(broadcast=True),
    }
    result = await store.append(list(notes.values()))
    seqs = {n.event_id: n.seq for n in result.applied.notifications}
    await store.append([read(alice, ids=[notes["a1"].event_id, notes["everyone"].event_id])])
    await store.append([read(bob), note(user_id=bob)])
    await store.record_deliveries(
        [(alice, seqs[notes["a1"].event_id]), (alice, seqs[notes["a2"].event_id]),
         (bob, seqs[notes["everyone"].event_id])]
    )  # fmt: skip
    return notes


async def test_rebuild_gives_the_same_state_and_checksum(
    engine: AsyncEngine, process_env: dict[str, str], user_id: str
) -> None:
    alice, bob = f"{user_id}-a", f"{user_id}-b"
    await seed(engine, alice, bob)
    before, state = await checksum(engine), await states(engine, alice, bob)
    assert [s[3] is not None for s in state if s[0] == alice] == [True, False, False, True]

    code, out, err = await run_notify("rebuild", env=process_env)

    assert code == 0, err
    assert f"checksum {before.digest}" in out.splitlines()
    assert await checksum(engine) == before
    assert await states(engine, alice, bob) == state


async def test_prune_removes_read_notifications_from_the_projections_never_from_the_log(
    engine: AsyncEngine, process_env: dict[str, str], user_id: str
) -> None:
    alice, bob = f"{user_id}-a", f"{user_id}-b"
    notes = await seed(engine, alice, bob)
    async with engine.connect() as conn:
        logged_before = await conn.execute(text("SELECT count(*) FROM notification_events"))
        logged = logged_before.scalar_one()

    done = await prune(engine, timedelta(0), timedelta(days=7))

    sql = "SELECT event_id FROM notifications WHERE event_id = ANY(:ids)"
    ids = [n.event_id for n in notes.values()]
    async with engine.connect() as conn:
        kept = set((await conn.execute(text(sql), {"ids": ids})).scalars())
        after = (await conn.execute(text("SELECT count(*) FROM notification_events"))).scalar_one()
    # a1 and b1 were read, the room's history has no read state; unread ones and broadcasts
    # inside the unread window stay.
    assert kept == {notes[k].event_id for k in ("a2", "a3", "everyone")}
    assert done.removed >= 3
    assert after == logged + 1  # the prune itself, logged

    pruned = await checksum(engine)
    code, _, err = await run_notify("rebuild", env=process_env)
    assert code == 0, err
    assert await checksum(engine) == pruned


async def test_prune_command_takes_an_age_and_refuses_nonsense(
    process_env: dict[str, str],
) -> None:
    code, out, err = await run_notify("prune", "--older-than", "90d", env=process_env)
    assert code == 0, err
    assert out.startswith("pruned ") and "logged as event" in out
    code, _, err = await run_notify("prune", "--older-than", "soon", env=process_env)
    assert code == 2 and "use a positive count of d, h, m or s" in err
    code, _, err = await run_notify("prune", "--older-than", "90", env=process_env)
    assert code == 2 and "is not an age" in err  # a bare number: which unit?
