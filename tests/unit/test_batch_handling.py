"""The dispatcher's handling of one batch (dispatcher/consumer.py), with the store and the
broker replaced by recorders: what is dead-lettered, appended, acknowledged and returned to
the queue, for every mix of valid, refused, poison and transient failures.

Integration tests drive the same paths through real services (tests/integration,
tests/chaos); these pin down the decisions themselves, over many generated batches."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher import consumer
from dispatcher.batching import Inbox
from dispatcher.consumer import Dispatcher
from dispatcher.failures import DELIVERY_COUNT_HEADER
from dispatcher.settings import DispatcherSettings
from dispatcher.store import AppendResult
from producers.envelope import Envelope

DELIVERY_LIMIT = 3


class Message:
    """What the dispatcher uses of an incoming message; records how it was settled."""

    def __init__(self, index: int, body: bytes, returned: int = 0) -> None:
        self.index = index
        self.body = body
        self.headers: dict[str, Any] = {DELIVERY_COUNT_HEADER: returned}
        self.routing_key = "notification.created"
        self.content_type = "application/json"
        self.message_id = f"m{index}"
        self.type = None
        self.app_id = None
        self.settled: list[str] = []

    async def _record(self, outcome: str) -> None:
        self.settled.append(outcome)

    def ack(self, multiple: bool = False) -> Any:
        return self._record("ack-multiple" if multiple else "ack")

    def nack(self, requeue: bool = True) -> Any:
        return self._record("requeue" if requeue else "drop")


def event_body(poison: bool = False) -> bytes:
    envelope = Envelope.model_validate(
        {
            "event_id": uuid.uuid4(),
            "schema_version": 1,
            "notification_type": "system_alert",
            "title": "poison" if poison else "t",
            "message": "m",
            "user_id": "u",
        }
    )
    return envelope.to_json()


class Unreachable(OSError):
    """The database is away (a transient failure)."""


class Store:
    """Appends succeed unless the batch holds a poison event (a failure of the events
    themselves) or the database is set to be away for the next ``away`` appends."""

    def __init__(self) -> None:
        self.appended: list[list[str]] = []
        self.away = 0
        self.turns = 0
        self.changed = asyncio.Event()

    @asynccontextmanager
    async def turn(self, router: object) -> AsyncIterator[Store]:
        self.turns += 1
        yield self

    rerouted = 0
    lag = 0

    async def append(self, events: Sequence[Any]) -> AppendResult:
        if self.away:
            self.away -= 1
            raise Unreachable("connection refused")
        titles = [e.title for e in events]
        if "poison" in titles:
            raise ValueError("cannot store this event")
        self.appended.append([str(e.event_id) for e in events])
        self.changed.set()
        return AppendResult(received=len(events), logged=len(events))


class Exchange:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    async def publish(self, message: Any, routing_key: str) -> None:
        self.published.append((message.message_id, message.headers["x-notify-error"]))


@pytest.fixture
def dispatcher(monkeypatch: pytest.MonkeyPatch) -> Dispatcher:
    monkeypatch.setattr(consumer, "RETRY_FIRST", 0.0)
    settings = DispatcherSettings(dispatcher_delivery_limit=DELIVERY_LIMIT)
    # Never connected: the store is replaced below.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    d = Dispatcher(settings, engine)
    d.store = Store()  # type: ignore[assignment]
    d._route_to = object()  # type: ignore[assignment]
    d._dead_letter = Exchange()  # type: ignore[assignment]
    return d


def batch_of(kinds: Sequence[str], returned: int = 0) -> list[Message]:
    bodies: dict[str, Callable[[], bytes]] = {
        "valid": lambda: event_body(),
        "refused": lambda: b'{"schema_version": 1, "notification_type": 5}',
        "junk": lambda: b"\xff not json",
        "poison": lambda: event_body(poison=True),
    }
    return [Message(i, bodies[kind](), returned) for i, kind in enumerate(kinds)]


async def test_a_batch_is_validated_appended_once_and_acknowledged_with_one_multiple_ack(
    dispatcher: Dispatcher,
) -> None:
    batch = batch_of(["valid", "refused", "valid", "junk", "valid"])
    await dispatcher.handle_batch(batch)
    store: Store = dispatcher.store  # type: ignore[assignment]
    assert len(store.appended) == 1 and len(store.appended[0]) == 3
    dead: Exchange = dispatcher._dead_letter  # type: ignore[assignment]
    assert [m for m, _ in dead.published] == ["m1", "m3"]
    assert all(reason for _, reason in dead.published)
    assert [m.settled for m in batch] == [[], [], [], [], ["ack-multiple"]]


async def test_a_database_that_is_away_holds_the_batch_unacknowledged_until_it_returns(
    dispatcher: Dispatcher,
) -> None:
    store: Store = dispatcher.store  # type: ignore[assignment]
    store.away = 4
    batch = batch_of(["valid", "valid"])
    await dispatcher.handle_batch(batch)
    assert dispatcher.counters.retried == 4
    assert len(store.appended) == 1
    assert [m.settled for m in batch] == [[], ["ack-multiple"]]


async def test_a_stop_while_the_database_is_away_leaves_the_batch_unacknowledged(
    dispatcher: Dispatcher,
) -> None:
    store: Store = dispatcher.store  # type: ignore[assignment]
    store.away = 1_000
    dispatcher._stopping.set()
    batch = batch_of(["valid", "refused"])
    await dispatcher.handle_batch(batch)
    assert store.appended == []
    assert [m.settled for m in batch] == [[], []]  # the refused one is dead-lettered, not acked


@pytest.mark.parametrize("seed", range(40))
async def test_generated_batches_settle_every_message_exactly_as_the_rules_say(
    dispatcher: Dispatcher, seed: int
) -> None:
    """Any mix of valid, refused and poison events, delivered for the first or the last
    time: a batch without poison is appended whole and acknowledged with one multiple ack;
    with poison, every valid event is stored on its own and acknowledged, each poison event is
    returned to the queue (requeue) or, on its last delivery, dead-lettered and acknowledged,
    and refused ones are dead-lettered and acknowledged. Every message is settled once."""
    rng = random.Random(seed)
    kinds = rng.choices(["valid", "refused", "poison"], weights=[6, 2, 1], k=rng.randint(1, 12))
    last = rng.random() < 0.5
    batch = batch_of(kinds, returned=DELIVERY_LIMIT - 1 if last else 0)
    store: Store = dispatcher.store  # type: ignore[assignment]
    dead: Exchange = dispatcher._dead_letter  # type: ignore[assignment]
    await dispatcher.handle_batch(batch)

    valid = sum(k == "valid" for k in kinds)
    refused = [m.message_id for m, k in zip(batch, kinds, strict=True) if k == "refused"]
    poison = [m for m, k in zip(batch, kinds, strict=True) if k == "poison"]
    if not poison:
        assert [len(a) for a in store.appended] == ([valid] if valid else [0])
        assert [m.settled for m in batch[:-1]] == [[]] * (len(batch) - 1)
        assert batch[-1].settled == ["ack-multiple"]
        assert [m for m, _ in dead.published] == refused
        return
    assert sorted(len(a) for a in store.appended) == [1] * valid
    for message, kind in zip(batch, kinds, strict=True):
        if kind == "valid" or kind == "refused":
            assert message.settled == ["ack"], (kind, message.settled)
        else:
            assert message.settled == (["ack"] if last else ["requeue"])
    expected_dead = refused + ([m.message_id for m in poison] if last else [])
    assert sorted(m for m, _ in dead.published) == sorted(expected_dead)
    assert dispatcher.counters.dead_lettered == len(expected_dead)


async def appended(store: Store, count: int) -> None:
    while len(store.appended) < count:
        store.changed.clear()
        await store.changed.wait()


async def test_the_batch_loop_hands_the_routing_lock_on_when_nothing_waits(
    dispatcher: Dispatcher,
) -> None:
    """Batches that arrive back to back share a turn (up to TURN_BATCHES); a pause, or the
    end of the inbox, ends it."""
    inbox: Inbox[consumer.Message] = Inbox()
    inbox.extend(batch_of(["valid"] * 3))
    dispatcher.settings.dispatcher_batch_size = 1
    task = asyncio.create_task(dispatcher._batch_loop(inbox))
    store: Store = dispatcher.store  # type: ignore[assignment]
    await asyncio.wait_for(appended(store, 3), 5)
    assert store.turns == 1  # three batches waiting: one turn
    inbox.put(batch_of(["valid"])[0])
    inbox.close()
    await asyncio.wait_for(task, 5)
    assert store.turns == 2 and len(store.appended) == 4
