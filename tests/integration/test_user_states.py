"""Seen, archive, preferences and scheduled notifications in the event store (dispatcher/
projection.py): what each event does to the projections and what it publishes, batches mixing
them, deliveries rebuilt from the log, and ``notify rebuild`` giving the same checksum after a
mixed history. On a database of this module's own (the checksum covers a whole database);
the events are appended with the dispatcher's own store, no broker involved."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher import queries
from dispatcher.database import create_engine
from dispatcher.events import LogEvent
from dispatcher.rebuild import checksum
from dispatcher.records import Delivery
from dispatcher.store import AppendResult, EventStore, rebuilt_delivery
from producers.envelope import (
    ArchiveEvent,
    Envelope,
    PreferencesEvent,
    ScheduleEvent,
    SeenEvent,
    release_event_id,
)
from producers.preferences import DEFAULT_CRITICAL_TYPES
from producers.settings import Settings
from tests.support.cli import run_notify
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration

CRITICAL = frozenset(t.value for t in DEFAULT_CRITICAL_TYPES)
WINDOW = timedelta(days=7)


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
def store(engine: AsyncEngine) -> EventStore:
    return EventStore(engine, WINDOW, critical=CRITICAL)


def note(
    notification_type: str = "chat_message", deliver_at: datetime | None = None, **audience: Any
) -> Envelope:
    data = {
        "chat_message": {"conversation_id": "c1", "sender_id": "s1", "preview": "hi"},
        "tour_completed": {"booking_id": "b1", "tour_name": "Old City"},
        "payment_failed": {"booking_id": "b1", "amount": 10},
        "tour_starting_soon": {"booking_id": "b1", "tour_name": "Old City",
                               "start_time": "2026-05-01T08:00:00Z", "meeting_point": "Gate"},
        "system_alert": {"component": "x"},
    }[notification_type]  # fmt: skip
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "schema_version": 1,
        "notification_type": notification_type,
        "data": data,
        **audience,
    }
    if deliver_at is not None:
        fields["deliver_at"] = deliver_at
    return Envelope.model_validate(fields)


def state(model: type[Any], event_type: str, user_id: str, **fields: Any) -> Any:
    return model.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": event_type,
         "user_id": user_id, **fields}
    )  # fmt: skip


def seen(user_id: str, up_to_seq: int) -> SeenEvent:
    event: SeenEvent = state(SeenEvent, "notification.seen", user_id, up_to_seq=up_to_seq)
    return event


def archive(user_id: str, **fields: Any) -> ArchiveEvent:
    event: ArchiveEvent = state(ArchiveEvent, "notification.archived", user_id, **fields)
    return event


def unarchive(user_id: str, ids: list[uuid.UUID]) -> ArchiveEvent:
    event: ArchiveEvent = state(ArchiveEvent, "notification.unarchived", user_id, ids=ids)
    return event


def preferences(user_id: str, **prefs: Any) -> PreferencesEvent:
    event: PreferencesEvent = state(
        PreferencesEvent, "notification.preferences", user_id, preferences=prefs
    )
    return event


def read_all(user_id: str) -> Any:
    from producers.envelope import ReadEvent

    return ReadEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.all_read",
         "user_id": user_id}
    )  # fmt: skip


def release(scheduled: uuid.UUID) -> ScheduleEvent:
    return ScheduleEvent(
        event_id=release_event_id(scheduled), schema_version=1,
        event_type="notification.released", scheduled_event_id=scheduled,
    )  # fmt: skip


def cancel(scheduled: uuid.UUID) -> ScheduleEvent:
    return ScheduleEvent(
        event_id=uuid.uuid4(), schema_version=1,
        event_type="notification.cancelled", scheduled_event_id=scheduled,
    )  # fmt: skip


def quiet_now() -> dict[str, Any]:
    """Quiet hours around the present moment, in UTC."""
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "time_zone": "UTC"}


def frames(result: AppendResult) -> list[tuple[int, str, dict[str, Any]]]:
    return [(d.seq, d.routing_key, orjson.loads(d.body)) for d in result.applied.deliveries()]


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def recipient(engine: AsyncEngine, user: str, event_id: uuid.UUID) -> Any:
    found = await rows(
        engine,
        """SELECT n.seq, r.suppressed, r.archived_at, r.archived_seq, r.read_at
           FROM notifications n JOIN notification_recipients r ON r.seq = n.seq
           WHERE r.user_id = :user AND n.event_id = :id""",
        user=user, id=event_id,
    )  # fmt: skip
    return found[0] if found else None


async def counts(engine: AsyncEngine, user: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        params = {"user_id": user, "window": WINDOW, "critical": sorted(CRITICAL)}
        row = (await conn.execute(queries.COUNTS, params)).one()
        return int(row.unread_count), int(row.unseen_count)


async def log_seq(engine: AsyncEngine, event_id: uuid.UUID) -> int:
    (row,) = await rows(
        engine, "SELECT seq FROM notification_events WHERE event_id = :id", id=event_id
    )
    return int(row.seq)


async def rebuilt(engine: AsyncEngine, event_id: uuid.UUID) -> Delivery | None:
    (row,) = await rows(
        engine,
        "SELECT seq, event_type, payload FROM notification_events WHERE event_id = :id",
        id=event_id,
    )
    async with engine.connect() as conn:
        return await rebuilt_delivery(
            conn, row.seq, row.event_type, row.payload, WINDOW, critical=CRITICAL
        )


async def test_preferences_mute_and_quiet_personal_notifications_from_their_place_in_the_log(
    store: EventStore, engine: AsyncEngine, user_id: str
) -> None:
    alice = user_id
    before = note(user_id=alice)  # before the preferences, in the same batch: delivered
    chat, alert, tour = (
        note(user_id=alice),
        note("system_alert", user_id=alice),
        note("tour_completed", user_id=alice),
    )
    result = await store.append(
        [before, preferences(alice, muted_categories=["chat"], muted_types=["tour_completed"]),
         chat, alert, tour]
    )  # fmt: skip
    sent = {f["id"]: (seq, key, f) for seq, key, f in frames(result) if f["type"] == "notification"}
    assert set(sent) == {str(before.event_id), str(alert.event_id)}
    assert (await recipient(engine, alice, before.event_id)).suppressed is None
    assert (await recipient(engine, alice, chat.event_id)).suppressed == "muted"
    assert (await recipient(engine, alice, tour.event_id)).suppressed == "muted"
    assert (await recipient(engine, alice, alert.event_id)).suppressed is None  # critical
    (prefs_frame,) = [f for _, _, f in frames(result) if f["type"] == "preferences"]
    assert prefs_frame["preferences"]["muted_categories"] == ["chat"]
    assert prefs_frame["critical_types"] == sorted(CRITICAL)
    # Muted ones are not counted: the first chat and the alert are.
    assert await counts(engine, alice) == (2, 2)

    # Quiet hours now: stored and counted, not pushed; urgent and critical ones still come.
    quiet = await store.append([preferences(alice, quiet_hours=quiet_now())])
    assert [f["type"] for _, _, f in frames(quiet)] == ["preferences"]
    calm, urgent = note(user_id=alice), note("tour_starting_soon", user_id=alice)
    result = await store.append([calm, urgent])
    assert [f["id"] for _, _, f in frames(result)] == [str(urgent.event_id)]
    assert (await recipient(engine, alice, calm.event_id)).suppressed == "quiet"
    assert (await recipient(engine, alice, urgent.event_id)).suppressed is None
    assert await counts(engine, alice) == (4, 4)

    # Rebuilt deliveries honour the decision the projection recorded.
    assert await rebuilt(engine, calm.event_id) is None
    assert await rebuilt(engine, chat.event_id) is None
    again = await rebuilt(engine, urgent.event_id)
    assert again is not None and orjson.loads(again.body)["id"] == str(urgent.event_id)


async def test_seen_moves_the_mark_forward_only_and_never_past_itself(
    store: EventStore, engine: AsyncEngine, user_id: str
) -> None:
    first, second = note(user_id=user_id), note(user_id=user_id)
    created = await store.append([first, second])
    s1, s2 = (n.seq for n in created.applied.notifications)
    assert await counts(engine, user_id) == (2, 2)

    result = await store.append([seen(user_id, s1)])
    assert frames(result) == [
        (result.applied.syncs[0].seq, f"user.{user_id}",
         {"type": "seen", "up_to_seq": s1, "unseen_count": 1})
    ]  # fmt: skip
    # A mark far ahead stops at the event itself; an older one does not move it back.
    ahead = seen(user_id, 10**12)
    result = await store.append([ahead, seen(user_id, 0)])
    ahead_seq = await log_seq(engine, ahead.event_id)
    assert [f for _, _, f in frames(result)] == [
        {"type": "seen", "up_to_seq": ahead_seq - 1, "unseen_count": 0},
        {"type": "seen", "up_to_seq": ahead_seq - 1, "unseen_count": 0},
    ]
    assert await counts(engine, user_id) == (2, 0)  # seen is not read
    third = note(user_id=user_id)
    await store.append([third])
    assert await counts(engine, user_id) == (3, 1)
    again = await rebuilt(engine, ahead.event_id)
    assert again is not None
    assert orjson.loads(again.body) == {"type": "seen", "up_to_seq": ahead_seq - 1,
                                        "unseen_count": 1}  # fmt: skip
    assert s2 < ahead_seq


async def test_archive_by_ids_all_read_and_unarchive(
    store: EventStore, engine: AsyncEngine, user_id: str
) -> None:
    alice, bob = f"{user_id}-a", f"{user_id}-b"
    a1, a2, a3, b1 = (note(user_id=alice), note(user_id=alice), note(user_id=alice),
                      note(user_id=bob))  # fmt: skip
    await store.append([a1, a2, a3, b1])
    # Bob's notification is not Alice's to archive; a1 twice is archived once.
    by_ids = archive(alice, ids=[a1.event_id, b1.event_id])
    result = await store.append([by_ids, archive(alice, ids=[a1.event_id])])
    first, second = (f for _, _, f in frames(result))
    assert first == {"type": "archived", "ids": [str(a1.event_id)], "unread_count": 2,
                     "unseen_count": 2}  # fmt: skip
    assert second["ids"] == []
    assert (await recipient(engine, bob, b1.event_id)).archived_at is None
    archived = await recipient(engine, alice, a1.event_id)
    assert archived.archived_seq == await log_seq(engine, by_ids.event_id)

    # all_read archives the read ones only, up to the event; a later one is not touched.
    await store.append([read_all(alice)])
    a4 = note(user_id=alice)
    everything = archive(alice, all_read=True)
    result = await store.append([a4, everything])
    (frame,) = [f for _, _, f in frames(result) if f["type"] == "archived"]
    assert frame["ids"] == [str(a2.event_id), str(a3.event_id)]
    assert (frame["unread_count"], frame["unseen_count"]) == (1, 1)  # a4
    assert (await recipient(engine, alice, a4.event_id)).archived_at is None

    back = unarchive(alice, [a2.event_id, a4.event_id])
    result = await store.append([back])
    assert [f for _, _, f in frames(result)] == [
        {"type": "unarchived", "ids": [str(a2.event_id)], "unread_count": 1, "unseen_count": 1}
    ]
    restored = await recipient(engine, alice, a2.event_id)
    assert restored.archived_at is None and restored.read_at is not None
    assert restored.archived_seq == await log_seq(engine, back.event_id)
    # Rebuilt syncs name what each event still stands for.
    again = await rebuilt(engine, everything.event_id)
    assert again is not None and orjson.loads(again.body)["ids"] == [str(a3.event_id)]
    again = await rebuilt(engine, back.event_id)
    assert again is not None and orjson.loads(again.body)["ids"] == [str(a2.event_id)]


async def test_a_scheduled_notification_waits_until_its_release_and_a_cancel_stops_it(
    store: EventStore, engine: AsyncEngine, user_id: str
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    waiting, withdrawn = (
        note(user_id=user_id, deliver_at=later),
        note(user_id=user_id, deliver_at=later),
    )
    past = note(user_id=user_id, deliver_at=datetime.now(UTC) - timedelta(minutes=1))
    result = await store.append([waiting, withdrawn, past])
    # Due already: at once. The others: in the schedule, not in notifications, not sent.
    assert [f["id"] for _, _, f in frames(result)] == [str(past.event_id)]
    assert result.applied.scheduled == [waiting.event_id, withdrawn.event_id]
    schedule = await rows(
        engine, "SELECT event_id, status FROM notification_schedule WHERE event_id = ANY(:ids)",
        ids=[waiting.event_id, withdrawn.event_id],
    )  # fmt: skip
    assert {r.status for r in schedule} == {"pending"} and len(schedule) == 2
    assert await recipient(engine, user_id, waiting.event_id) is None
    assert await rebuilt(engine, waiting.event_id) is None
    assert await counts(engine, user_id) == (1, 1)

    stop = cancel(withdrawn.event_id)
    result = await store.append([stop, release(withdrawn.event_id)])
    assert frames(result) == [] and result.applied.cancelled == 1
    assert result.applied.released == 0

    go = release(waiting.event_id)
    result = await store.append([go])
    release_seq = await log_seq(engine, go.event_id)
    ((seq, key, frame),) = frames(result)
    assert (seq, key, frame["id"], frame["seq"]) == (
        release_seq,
        f"user.{user_id}",
        str(waiting.event_id),
        release_seq,
    )
    assert (await recipient(engine, user_id, waiting.event_id)).seq == release_seq
    again = await rebuilt(engine, go.event_id)
    assert again is not None and again.seq == release_seq
    # A second release (another dispatcher's) is the same event: logged once, nothing new.
    assert (await store.append([release(waiting.event_id)])).logged == 0
    # Too late to cancel: nothing changes.
    result = await store.append([cancel(waiting.event_id)])
    assert frames(result) == [] and result.applied.cancelled == 0
    states = await rows(
        engine,
        """SELECT event_id, status, released_seq, cancelled_seq FROM notification_schedule
           WHERE event_id = ANY(:ids)""",
        ids=[waiting.event_id, withdrawn.event_id],
    )
    by_id = {r.event_id: r for r in states}
    assert (by_id[waiting.event_id].status, by_id[waiting.event_id].released_seq) == (
        "released",
        release_seq,
    )
    assert (by_id[withdrawn.event_id].status, by_id[withdrawn.event_id].cancelled_seq) == (
        "cancelled",
        await log_seq(engine, stop.event_id),
    )
    assert await counts(engine, user_id) == (2, 2)


async def test_a_release_is_decided_by_the_preferences_at_its_time(
    store: EventStore, engine: AsyncEngine, user_id: str
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = note(user_id=user_id, deliver_at=later)
    await store.append([scheduled])
    # Muted after it was scheduled, before it is due, in the release's own batch.
    result = await store.append(
        [preferences(user_id, muted_categories=["chat"]), release(scheduled.event_id)]
    )
    assert [f["type"] for _, _, f in frames(result)] == ["preferences"]
    assert (await recipient(engine, user_id, scheduled.event_id)).suppressed == "muted"
    assert result.applied.released == 1


@pytest.mark.broadcasts
async def test_broadcasts_are_archived_per_user_and_rebuild_gives_the_same_checksum(
    store: EventStore, engine: AsyncEngine, database_url: str, settings: Settings, user_id: str
) -> None:
    alice, bob = f"{user_id}-a", f"{user_id}-b"
    everyone = note("system_alert", broadcast=True)
    await store.append([everyone])
    before_alice, before_bob = await counts(engine, alice), await counts(engine, bob)
    result = await store.append([archive(alice, ids=[everyone.event_id])])
    (frame,) = [f for _, _, f in frames(result)]
    assert frame["ids"] == [str(everyone.event_id)]
    assert await counts(engine, alice) == (before_alice[0] - 1, before_alice[1] - 1)
    assert await counts(engine, bob) == before_bob

    # A mixed history in one batch, as a rebuild's page applies it: a scheduled notification
    # released in the same batch it was logged in, preferences, reads, seen, archive.
    due = note(user_id=bob, deliver_at=datetime.now(UTC) + timedelta(hours=2))
    dropped = note(user_id=bob, deliver_at=datetime.now(UTC) + timedelta(hours=2))
    history: list[LogEvent] = [
        note(user_id=bob), due, preferences(bob, quiet_hours=quiet_now()), note(user_id=bob),
        release(due.event_id), dropped, cancel(dropped.event_id), read_all(bob), seen(bob, 10**9),
        note(user_id=bob), archive(bob, all_read=True), unarchive(alice, [everyone.event_id]),
        preferences(alice, muted_types=["tour_completed"]), note("tour_completed", user_id=alice),
    ]  # fmt: skip
    mixed = await store.append(history)
    assert mixed.applied.released == 1 and mixed.applied.cancelled == 1
    assert (await recipient(engine, bob, due.event_id)).suppressed == "quiet"
    await store.record_deliveries([(bob, (await recipient(engine, bob, due.event_id)).seq)])

    summed = await checksum(engine)
    assert summed.users >= 2 and summed.scheduled >= 2
    env = {"DATABASE_URL": database_url, "AMQP_URL": settings.amqp_url}
    code, out, err = await run_notify("rebuild", env=env)
    assert code == 0, err
    assert f"checksum {summed.digest}" in out.splitlines()
    assert await checksum(engine) == summed
    # Another set of critical types decides differently, and the checksum says so.
    code, out, err = await run_notify(
        "rebuild", env={**env, "NOTIFY_CRITICAL_TYPES": "tour_completed"}
    )
    assert code == 0, err
    assert (await checksum(engine)).digest != summed.digest
    code, out, err = await run_notify("rebuild", env=env)
    assert code == 0, err
    assert await checksum(engine) == summed
