"""The event store on the real PostgreSQL: idempotent appends, gap-free positions for tailing
readers, delivery receipts, and the indexes the read side relies on."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dispatcher import queries, statements
from dispatcher.database import create_engine
from dispatcher.events import unique_entries
from dispatcher.store import EventStore
from producers.envelope import Envelope
from producers.settings import Settings
from tests.support.log import LOG_ONE, log_one

# Notes without a user are broadcasts, which every user of the session would see.
pytestmark = [pytest.mark.integration, pytest.mark.broadcasts]


def note(user_id: str | None = None, **fields: Any) -> Envelope:
    audience: dict[str, Any] = {"user_id": user_id} if user_id else {"broadcast": True}
    return Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "system_alert",
            "title": "t",
            "message": "m",
            "producer": "test-store",
            **audience,
            **fields,
        }
    )


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()


async def test_duplicates_in_a_batch_and_against_the_log_are_stored_once(
    engine: AsyncEngine, user_id: str
) -> None:
    store = EventStore(engine)
    first, second = note(user_id), note(user_id)
    result = await store.append([first, first, second])
    assert (result.received, result.logged, result.duplicates) == (3, 2, 1)
    again = await store.append([second, first])
    assert (again.logged, again.applied.notifications) == (0, [])
    stored = await scalar(
        engine,
        "SELECT count(*) FROM notification_events WHERE event_id IN (:a, :b)",
        a=first.event_id,
        b=second.event_id,
    )
    assert stored == 2
    seqs = [n.seq for n in result.applied.notifications]
    assert seqs == sorted(seqs) and len(seqs) == 2


async def test_the_append_statement_skips_copies_itself_and_draws_seqs_in_batch_order(
    engine: AsyncEngine, user_id: str
) -> None:
    """``INSERT_LOG`` without the store's own dedupe: a copy inside the batch (the first one
    wins) and an event_id logged before are skipped by the ids' key, the rest get increasing
    seqs in the batch's order, one recorded_at, and the same seq in the log and the ids."""
    logged = note(user_id)
    await EventStore(engine).append([logged])
    fresh = [note(user_id) for _ in range(5)]
    entries = unique_entries([*fresh, logged])
    batch = [entries[3], entries[0], entries[5], entries[3], entries[1], entries[4], entries[2]]
    rows = statements.rows(
        (e.event_id, e.event_type, e.occurred_at, "first" if i == 0 else "later",
         orjson.Fragment(e.payload))
        for i, e in enumerate(batch)
    )  # fmt: skip
    async with engine.begin() as conn:
        await conn.exec_driver_sql(statements.APPEND_LOCK)
        returned = (await conn.exec_driver_sql(statements.INSERT_LOG, (rows,))).all()
    order = [entries[3], entries[0], entries[1], entries[4], entries[2]]
    assert [r.event_id for r in returned] == [e.event_id for e in order]
    seqs = [r.seq for r in returned]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert len({r.recorded_at for r in returned}) == 1
    async with engine.connect() as conn:
        both = (
            await conn.execute(
                text(
                    "SELECT e.seq, e.event_id, e.producer FROM notification_events e "
                    "JOIN notification_event_ids i USING (seq, event_id, recorded_at) "
                    "WHERE e.event_id = ANY(:ids) ORDER BY e.seq"
                ),
                {"ids": [e.event_id for e in entries]},
            )
        ).all()
    assert [(r.seq, r.event_id) for r in both][1:] == [(r.seq, r.event_id) for r in returned]
    assert both[0].event_id == logged.event_id
    assert [r.producer for r in both[1:]] == ["first", "later", "later", "later", "later"]


async def test_delivery_receipts_set_delivered_at_once(engine: AsyncEngine, user_id: str) -> None:
    store = EventStore(engine)
    result = await store.append([note(user_id), note(None), note("someone-else")])
    personal, broadcast, others = (n.seq for n in result.applied.notifications)
    await store.record_deliveries([(user_id, personal), (user_id, broadcast), (user_id, others)])
    sql = "SELECT seq, delivered_at FROM notification_recipients WHERE user_id = :u ORDER BY seq"
    async with engine.connect() as conn:
        first: dict[int, Any] = {
            r.seq: r.delivered_at for r in await conn.execute(text(sql), {"u": user_id})
        }
    assert set(first) == {personal, broadcast}  # another user's notification is not theirs
    assert all(moment is not None for moment in first.values())

    await store.record_deliveries([(user_id, personal), (user_id, broadcast)])
    async with engine.connect() as conn:
        second = {r.seq: r.delivered_at for r in await conn.execute(text(sql), {"u": user_id})}
    assert second == first


# --- gap-free positions (docs/architecture.md, invariant 5) -------------------------------

TAIL_SQL = text("SELECT seq FROM notification_events WHERE seq > :after ORDER BY seq")


class Tail:
    """A reader that follows the log by ``seq > last``, as the edge's cursors do."""

    def __init__(self, engine: AsyncEngine, start: int) -> None:
        self.engine = engine
        self.last = start
        self.seen: list[int] = []

    async def poll(self) -> None:
        async with self.engine.connect() as conn:
            seqs = list((await conn.execute(TAIL_SQL, {"after": self.last})).scalars())
        self.seen.extend(seqs)
        if seqs:
            self.last = seqs[-1]

    async def skipped(self, start: int) -> set[int]:
        await self.poll()
        async with self.engine.connect() as conn:
            every = set((await conn.execute(TAIL_SQL, {"after": start})).scalars())
        assert self.seen == sorted(self.seen)
        return every - set(self.seen)


async def high_water(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT coalesce(max(seq), 0) FROM notification_events"))


async def waiting_for_lock(engine: AsyncEngine, conn: AsyncConnection) -> None:
    """Return once the backend of ``conn`` waits for a lock (polled: PostgreSQL has no
    notification for it)."""
    pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    sql = "SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"
    for _ in range(1000):
        if await scalar(engine, sql, pid=pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second append never waited for the append lock")


async def test_the_tailing_reader_detects_a_skip_when_appends_are_not_serialised(
    engine: AsyncEngine,
) -> None:
    """The check itself can fail: plain inserts commit out of seq order and the reader
    misses the lower seq. The store's appends must not behave like this."""
    start = await high_water(engine)
    tail = Tail(engine, start)
    async with engine.connect() as early, engine.connect() as late:
        await early.begin()
        await late.begin()
        lower = (await early.execute(LOG_ONE, log_one(uuid.uuid4(), "test.plain"))).scalar_one()
        await late.execute(LOG_ONE, log_one(uuid.uuid4(), "test.plain"))
        await late.commit()
        await tail.poll()
        await early.commit()
    assert await tail.skipped(start) == {lower}


async def test_an_append_waits_for_the_one_before_it_to_commit(
    engine: AsyncEngine, settings: Settings, user_id: str
) -> None:
    second_engine = create_engine(settings.database_url, pool_size=1)
    first_store, second_store = EventStore(engine), EventStore(second_engine)
    start = await high_water(engine)
    tail = Tail(engine, start)
    try:
        async with engine.connect() as first, second_engine.connect() as second:
            await first.begin()
            await second.begin()
            await first_store.append_in(first, unique_entries([note(user_id)]))
            blocked = asyncio.create_task(
                second_store.append_in(second, unique_entries([note(user_id)]))
            )
            await waiting_for_lock(engine, second)
            await tail.poll()
            assert tail.seen == [] and not blocked.done()
            await first.commit()
            await blocked
            await second.commit()
    finally:
        await second_engine.dispose()
    assert await tail.skipped(start) == set()
    assert len(tail.seen) == 2


async def _writer(
    store: EventStore, engine: AsyncEngine, rng: random.Random, user_id: str, batches: int
) -> None:
    for _ in range(batches):
        events = [note(user_id) for _ in range(rng.randint(1, 5))]
        async with engine.connect() as conn:
            await conn.begin()
            await store.append_in(conn, unique_entries(events))
            await asyncio.sleep(rng.uniform(0, 0.01))  # the commit is late on purpose
            await conn.commit()


async def _tail_until(tail: Tail, writers: Sequence[asyncio.Task[None]]) -> None:
    while not all(w.done() for w in writers):
        await tail.poll()


@pytest.mark.parametrize("seed", [11, 23, 37])
async def test_concurrent_appends_with_delayed_commits_never_make_a_reader_skip(
    engine: AsyncEngine, settings: Settings, user_id: str, seed: int
) -> None:
    rng = random.Random(seed)
    engines = [create_engine(settings.database_url, pool_size=1) for _ in range(2)]
    start = await high_water(engine)
    tail = Tail(engine, start)
    try:
        writers = [
            asyncio.create_task(_writer(EventStore(e), e, random.Random(rng.random()), user_id, 25))
            for e in engines
        ]
        await _tail_until(tail, writers)
        await asyncio.gather(*writers)
    finally:
        for e in engines:
            await e.dispose()
    assert await tail.skipped(start) == set(), f"seed {seed}"
    assert len(tail.seen) >= 50


# --- the read side's queries are index scans ------------------------------------------------

# Every read-side query of the product: each SQL text of dispatcher.queries.
PLANS = sorted(name for name, value in vars(queries).items() if isinstance(value, TextClause))
assert "UNREAD" in PLANS, "the queries are found"
PARAMS = {
    "user_id": "u",
    "users": ["u", "v"],
    "room": "r",
    "rooms": ["r"],
    "window": timedelta(days=7),
    "limit": 50,
    "since": 0,
    "high_water": 100,
    "before_seq": 1_000,
    "status": "all",
    "seq": 1_000,
    "critical": ["payment_failed", "system_alert"],
}


@pytest.mark.parametrize("name", PLANS)
async def test_read_side_queries_are_served_by_indexes(engine: AsyncEngine, name: str) -> None:
    """With sequential scans priced out, every table each product query touches is reached
    through an index; docs/event-store.md shows the plans chosen at 10 million notifications."""
    query = getattr(queries, name)
    params = {k: v for k, v in PARAMS.items() if f":{k}" in query.text}
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        explained = await conn.execute(text(f"EXPLAIN {query.text}"), params)
        plan = "\n".join(explained.scalars())
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan
