"""Routing in log order (dispatcher/store.py): deliveries are handed to the broker one batch
at a time across dispatchers, in seq order, and what a batch committed without a confirmed
publish is published again, first, by whoever routes next.

These run on the real PostgreSQL, in a database of their own (the session's dispatcher would
otherwise share the routing lock and the mark). The routers stand in for the broker and
record what they were given.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from dispatcher.records import Delivery
from dispatcher.routing import NotDelivered
from dispatcher.store import EventStore, Pending
from producers.envelope import Envelope, ReadEvent, ReadEventType
from producers.settings import Settings
from socket_edge.edge import read_event
from tests.support.log import LOG_ONE, log_one
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration


async def advisory_lock_waiters(engine: AsyncEngine) -> int:
    """Sessions of this database waiting for an advisory lock."""
    async with engine.connect() as conn:
        waiting = await conn.execute(
            text(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
            )
        )
        return int(waiting.scalar_one())


@pytest.fixture
async def own_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    url = await create_database(settings.database_url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()
    await drop_database(url)


def note(user_id: str | None) -> Envelope:
    """A notification to ``user_id``; to everybody for None."""
    audience: dict[str, object] = {"user_id": user_id} if user_id else {"broadcast": True}
    return Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "system_alert",
            "title": "t",
            "message": "m",
            **audience,
        }
    )


async def routed_seq(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sql = text("SELECT routed_seq FROM notification_routing")
        return int((await conn.execute(sql)).scalar_one())


class Outcome:
    def __init__(self, confirmed: bool) -> None:
        self.confirmed = confirmed

    async def wait(self) -> None:
        if not self.confirmed:
            raise NotDelivered("no confirm")


class Broker:
    """Records every batch handed to it, in the order the hand-overs happened; confirms them
    or not."""

    def __init__(self, handed: list[list[Delivery]], confirms: bool = True) -> None:
        self.handed = handed
        self.confirms = confirms

    async def send(self, deliveries: Sequence[Delivery], after: Pending | None = None) -> Pending:
        self.handed.append(list(deliveries))
        return Outcome(self.confirms)


async def test_a_batch_without_confirms_is_published_again_before_the_next(
    own_engine: AsyncEngine,
) -> None:
    store = EventStore(own_engine)
    handed: list[list[Delivery]] = []
    refusing, confirming = Broker(handed, confirms=False), Broker(handed)
    first = await store.append_and_route([note("u1"), note("u2")], refusing)
    seqs_first = [n.seq for n in first.applied.notifications]
    assert await routed_seq(own_engine) == 0
    async with store.turn(confirming) as turn:
        assert turn.rerouted == 2
        second = await turn.append([note("u1")])
    (seq_second,) = (n.seq for n in second.applied.notifications)
    assert handed[1] == handed[0]  # sent again, first, as they were
    assert [d.seq for d in handed[1] + handed[2]] == [*seqs_first, seq_second]
    assert await routed_seq(own_engine) == seq_second
    async with store.turn(confirming) as turn:
        assert turn.rerouted == 0  # confirmed once, never again


async def test_a_read_sync_is_published_again_with_the_current_unread_count(
    own_engine: AsyncEngine,
) -> None:
    store = EventStore(own_engine)
    handed: list[list[Delivery]] = []
    created = await store.append_and_route([note("reader"), note("reader")], Broker(handed))
    first, _ = created.applied.notifications
    read = ReadEvent(
        event_id=uuid.uuid4(),
        schema_version=1,
        event_type=ReadEventType.READ,
        user_id="reader",
        ids=[first.event_id],
    )
    await store.append_and_route([read], Broker(handed, confirms=False))
    async with store.turn(Broker(handed)) as turn:
        assert turn.rerouted == 1
    sync = handed[-1][0]
    assert sync.routing_key == "user.reader"
    assert b'"type":"read"' in sync.body and b'"unread_count":1' in sync.body
    assert str(first.event_id).encode() in sync.body


async def test_a_dispatcher_that_dies_holding_the_lock_leaves_its_batch_to_the_next(
    own_engine: AsyncEngine,
) -> None:
    """The first append commits and then never finishes publishing (its task is cancelled,
    as a process killed between commit and confirm): the second waits for the lock, then
    publishes the first batch's deliveries before its own."""
    store = EventStore(own_engine)
    hung = asyncio.Event()

    class Hanging:
        async def wait(self) -> None:
            hung.set()
            await asyncio.Event().wait()

    class HangingBroker(Broker):
        async def send(
            self, deliveries: Sequence[Delivery], after: Pending | None = None
        ) -> Pending:
            await super().send(deliveries)
            return Hanging()

    given: list[list[Delivery]] = []
    handed: list[list[Delivery]] = []
    dying = asyncio.create_task(
        store.append_and_route([note("a"), note("b")], HangingBroker(given))
    )
    await hung.wait()
    waiting = asyncio.create_task(store.append_and_route([note("a")], Broker(handed)))
    # The second append is seen waiting on the routing lock in PostgreSQL itself: it is
    # blocked by the lock, not merely slow.
    while not await advisory_lock_waiters(own_engine):
        assert not waiting.done(), "the second append routed while the first held the lock"
        await asyncio.sleep(0.01)
    assert not waiting.done(), "the second append routed while the first held the routing lock"
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    await waiting
    seqs = [d.seq for batch in handed for d in batch]
    assert seqs[:2] == [d.seq for d in given[0]]  # the first batch's, sent again first
    assert len(seqs) == 3 and seqs == sorted(seqs)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_concurrent_appenders_hand_deliveries_over_in_seq_order(
    own_engine: AsyncEngine, seed: int
) -> None:
    """Three stores on separate pools append and route at once, each route taking a random
    while (and one in five failing to confirm): the hand-overs, taken together, are in seq
    order with every event present, and copies only of unconfirmed batches."""
    rng = random.Random(seed)
    handed: list[int] = []

    class Slow:
        def __init__(self, deliveries: Sequence[Delivery]) -> None:
            self.seqs = [d.seq for d in deliveries]

        async def wait(self) -> None:
            # A publish takes a while; the broker has the messages once it is over.
            await asyncio.sleep(rng.random() * 0.01)
            handed.extend(self.seqs)
            if rng.random() < 0.2:
                raise NotDelivered("no confirm")

    class SlowBroker:
        async def send(
            self, deliveries: Sequence[Delivery], after: Pending | None = None
        ) -> Pending:
            return Slow(deliveries)

    async def appender(count: int) -> list[int]:
        engine = create_engine(own_engine.url.render_as_string(hide_password=False))
        try:
            store = EventStore(engine)
            seqs: list[int] = []
            for _ in range(count):
                batch = [note(f"u{rng.randrange(5)}") for _ in range(rng.randrange(1, 6))]
                result = await store.append_and_route(batch, SlowBroker())
                seqs.extend(n.seq for n in result.applied.notifications)
            return seqs
        finally:
            await engine.dispose()

    stored = await asyncio.gather(*(appender(30) for _ in range(3)))
    every: set[int] = {seq for seqs in stored for seq in seqs}
    firsts: list[int] = []
    seen: set[int] = set()
    for seq in handed:
        if seq not in seen:
            seen.add(seq)
            firsts.append(seq)
    assert every <= seen
    assert firsts == sorted(firsts), "a delivery was handed over before an earlier seq"


def read_sync(delivery: Delivery) -> tuple[str, list[str], object]:
    frame = orjson.loads(delivery.body)
    assert frame["type"] == "read"
    return delivery.routing_key, frame["ids"], frame.get("up_to_seq")


@pytest.mark.parametrize("seed", range(6))
async def test_a_read_sync_rebuilt_from_the_log_says_what_the_live_one_said(
    own_engine: AsyncEngine, seed: int
) -> None:
    """Random histories of notifications (two users' and broadcasts) and read events naming
    their own, the other user's, already-read, repeated and unknown ids, or marking all (with
    and without a bound), in batches of several events: every read sync published again from
    the log (after a dispatcher died before the confirm) carries the ids the live one carried,
    the ones the event actually marked, and the same bound."""
    rng = random.Random(seed)
    store = EventStore(own_engine)
    live: list[list[Delivery]] = []
    users = ("ann", "bob")
    ids: list[uuid.UUID] = []
    for _ in range(12):
        batch: list[Envelope | ReadEvent] = []
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            if roll < 0.45 or not ids:
                batch.append(note(None if rng.random() < 0.3 else rng.choice(users)))
            elif roll < 0.85:
                named = rng.sample(ids, k=min(len(ids), rng.randint(1, 4)))
                named += [uuid.uuid4()] if rng.random() < 0.2 else []
                named += named[:1] if rng.random() < 0.2 else []
                batch.append(read_event(rng.choice(users), ids=named))
            else:
                bound = rng.choice([None, rng.randint(0, 40)])
                batch.append(read_event(rng.choice(users), up_to_seq=bound, all=True))
        result = await store.append_and_route(batch, Broker(live))
        ids.extend(n.event_id for n in result.applied.notifications)
    syncs = {d.seq: read_sync(d) for batch in live for d in batch if b'"type":"read"' in d.body}
    assert syncs, "the history has read events"
    assert any(ids for _, ids, _ in syncs.values()), "some read event marked something"
    async with own_engine.connect() as conn:
        top = int(
            (await conn.execute(text("SELECT max(seq) FROM notification_events"))).scalar_one()
        )
        rebuilt = await store.unrouted(conn, 0, top)
    again = {d.seq: read_sync(d) for d in rebuilt if b'"type":"read"' in d.body}
    assert again == syncs


async def test_events_that_cannot_be_delivered_again_do_not_stop_routing(
    own_engine: AsyncEngine,
) -> None:
    """Above the routing mark, the log holds a type this version does not know and events of
    known types whose payloads it refuses (as a different version may have logged them): the
    next turn publishes the rest, in order, and moves the mark past all of them."""
    store = EventStore(own_engine)
    handed: list[list[Delivery]] = []
    first = await store.append_and_route([note("u1")], Broker(handed, confirms=False))
    async with own_engine.begin() as conn:
        for kind, payload in [
            ("notification.archived", "{}"),
            ("notification.created", '{"title": 5}'),
            ("notification.read", '{"user_id": "u1", "ids": "x"}'),
            ("notification.all_read", "[]"),
        ]:
            await conn.execute(LOG_ONE, log_one(uuid.uuid4(), kind, payload))
    later = await store.append_and_route([note("u2")], Broker(handed, confirms=False))
    async with store.turn(Broker(handed)) as turn:
        assert turn.rerouted == 2
    expected = [n.seq for n in (*first.applied.notifications, *later.applied.notifications)]
    assert [d.seq for d in handed[-1]] == expected
    assert await routed_seq(own_engine) == expected[-1]
