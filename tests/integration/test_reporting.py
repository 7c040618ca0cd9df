"""The ready queries of docs/reporting.md, run as written against known data in a
database of their own (the session's database holds every other test's notifications)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from dispatcher.store import EventStore
from producers.envelope import Envelope, PreferencesEvent, ReadEvent
from producers.settings import Settings
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration

REPORTING = Path(__file__).parents[2] / "docs" / "reporting.md"
DATA = {
    "payment_failed": {"booking_id": "b1", "amount": "10.00"},
    "booking_confirmed": {"booking_id": "b1", "tour_name": "Galilee"},
    "chat_message": {"conversation_id": "c1", "sender_id": "s1", "preview": "hi"},
}


def ready_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", REPORTING.read_text(), flags=re.S)


def note(kind: str, user_id: str) -> Envelope:
    return Envelope.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "notification_type": kind,
         "user_id": user_id, "data": DATA[kind]}
    )  # fmt: skip


def read(user_id: str, *notes: Envelope) -> ReadEvent:
    return ReadEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.read",
         "user_id": user_id, "ids": [n.event_id for n in notes]}
    )  # fmt: skip


@pytest.fixture
async def report_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    url = await create_database(settings.database_url)
    engine = create_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_database(url)


async def seed(engine: AsyncEngine) -> None:
    """u1: urgent p1 (read at once), high c1, medium m1 (read later); u2: urgent p2 (read at
    once), medium m2 and m3; u3: medium m4. Delivered: p1 c1 m1 p2 m2."""
    store = EventStore(engine)
    p1, c1, m1 = (
        note("payment_failed", "u1"),
        note("booking_confirmed", "u1"),
        note("chat_message", "u1"),
    )
    p2, m2, m3 = (
        note("payment_failed", "u2"),
        note("chat_message", "u2"),
        note("chat_message", "u2"),
    )
    done = await store.append([p1, c1, m1, p2, m2, m3, note("chat_message", "u3")])
    seq = {n.event_id: n.seq for n in done.applied.notifications}
    await store.record_deliveries(
        [("u1", seq[p1.event_id]), ("u1", seq[c1.event_id]), ("u1", seq[m1.event_id]),
         ("u2", seq[p2.event_id]), ("u2", seq[m2.event_id])]
    )  # fmt: skip
    await store.append([read("u1", p1), read("u2", p2)])
    await asyncio.sleep(0.3)  # time passes before the medium one is read: the report's subject
    await store.append([read("u1", m1)])


async def run(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(text(sql))).mappings()]


async def test_the_ready_queries_answer_correctly(report_engine: AsyncEngine) -> None:
    await seed(report_engine)
    # Unpacked: a query added to docs/reporting.md without a check here fails the test.
    queries = ready_queries()
    rate, backlog, slowest, ignored, daily = [await run(report_engine, sql) for sql in queries[:5]]

    assert [(r["notification_type"], r["sent"], r["read"], float(r["read_rate_pct"]))
            for r in rate] == [
        ("payment_failed", 2, 2, 100.0),
        ("chat_message", 4, 1, 25.0),
        ("booking_confirmed", 1, 0, 0.0),
    ]  # fmt: skip
    assert [(r["user_id"], r["unread"]) for r in backlog] == [("u2", 2), ("u1", 1), ("u3", 1)]
    assert [(r["priority"], r["read"]) for r in slowest] == [("medium", 1), ("urgent", 2)]
    assert slowest[0]["median_time_to_read"] >= timedelta(seconds=0.3)
    assert [(r["category"], r["delivered"], r["delivered_unread"], float(r["ignored_pct"]))
            for r in ignored] == [
        ("booking", 1, 1, 100.0),
        ("chat", 2, 1, 50.0),
        ("payment", 2, 0, 0.0),
    ]  # fmt: skip
    assert [(r["notification_type"], r["sent"], r["delivered"], r["read"]) for r in daily] == [
        ("chat_message", 4, 2, 1),
        ("payment_failed", 2, 2, 2),
        ("booking_confirmed", 1, 1, 0),
    ]
    assert daily[1]["median_time_to_read"] < daily[0]["median_time_to_read"]

    # Preferences: u3 mutes chat, u2 has quiet hours now; payment_failed is critical.
    await seed_preferences(report_engine)
    suppressed, muting, by_delivery = [await run(report_engine, sql) for sql in queries[5:]]
    assert [(r["category"], r["notification_type"], r["sent"], r["muted"], r["quiet"],
             float(r["suppressed_pct"])) for r in suppressed] == [
        ("chat", "chat_message", 6, 1, 1, 33.3),
    ]  # fmt: skip
    assert [(r["category"], r["users_muting"]) for r in muting] == [("chat", 1)]
    assert [(r["priority"], r["delivery"], r["read"]) for r in by_delivery] == [
        ("medium", "pushed", 1),
        ("medium", "quiet", 1),
        ("urgent", "pushed", 2),
    ]


def preferences(user_id: str, **prefs: Any) -> PreferencesEvent:
    return PreferencesEvent.model_validate(
        {"event_id": uuid.uuid4(), "schema_version": 1, "event_type": "notification.preferences",
         "user_id": user_id, "preferences": prefs}
    )  # fmt: skip


async def seed_preferences(engine: AsyncEngine) -> None:
    """u3 mutes chat, then gets a chat message (muted) and a booking (pushed); u2 has quiet
    hours around now, then gets a chat message (quiet, read later) and a payment failure
    (critical: pushed)."""
    store = EventStore(engine)
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
             "end": (now + timedelta(hours=1)).strftime("%H:%M"), "time_zone": "UTC"}  # fmt: skip
    held = note("chat_message", "u2")
    await store.append(
        [preferences("u3", muted_categories=["chat"]), note("chat_message", "u3"),
         note("booking_confirmed", "u3"), preferences("u2", quiet_hours=quiet), held,
         note("payment_failed", "u2")]
    )  # fmt: skip
    await store.append([read("u2", held)])
