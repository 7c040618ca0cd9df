"""The read side of seen, archive and preferences (``dispatcher.queries`` through the edge's
``ReplayReader``), on projection rows written directly into a database of the test's own: what
a connect replay, a replay since a seq, the history and the counts leave out (archived, muted)
and how they mark what came during quiet hours."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.database import create_engine
from producers.settings import Settings
from socket_edge.replay import ReplayReader
from tests.support.log import LOG_ONE, log_one
from tests.support.services import create_database, drop_database

pytestmark = pytest.mark.integration

WINDOW = timedelta(days=7)
CRITICAL = frozenset({"system_alert", "payment_failed"})
USER = "alice"


@dataclass
class Store:
    engine: AsyncEngine
    reader: ReplayReader

    async def notification(
        self,
        notification_type: str,
        category: str,
        *,
        user_id: str | None = USER,
        priority: str = "medium",
        created_at: datetime | None = None,
        suppressed: str | None = None,
    ) -> tuple[int, str]:
        """A stored notification (personal, or a broadcast for ``user_id=None``): its seq and
        event id."""
        event_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            seq = (
                await conn.execute(LOG_ONE, log_one(event_id, "notification.created"))
            ).scalar_one()
            await conn.execute(
                text(
                    """INSERT INTO notifications (seq, event_id, audience, user_id,
                         notification_type, category, priority, title, message, data,
                         occurred_at, created_at)
                       VALUES (:seq, :id, :audience, :user_id, :type, :category, :priority,
                         't', 'm', '{}', now(), coalesce(:created_at, now()))"""
                ),
                {
                    "seq": seq,
                    "id": event_id,
                    "audience": "user" if user_id else "broadcast",
                    "user_id": user_id,
                    "type": notification_type,
                    "category": category,
                    "priority": priority,
                    "created_at": created_at,
                },
            )
            if user_id is not None:
                await conn.execute(
                    text(
                        """INSERT INTO notification_recipients (user_id, seq, suppressed)
                           VALUES (:user_id, :seq, :suppressed)"""
                    ),
                    {"user_id": user_id, "seq": seq, "suppressed": suppressed},
                )
        return int(seq), str(event_id)

    async def state(self, seq: int, *, read: bool = False, archived: bool = False) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO notification_recipients (user_id, seq, read_at, archived_at)
                       VALUES (:user_id, :seq,
                               CASE WHEN :read THEN now() END, CASE WHEN :archived THEN now() END)
                       ON CONFLICT (user_id, seq) DO UPDATE
                       SET read_at = excluded.read_at, archived_at = excluded.archived_at"""
                ),
                {"user_id": USER, "seq": seq, "read": read, "archived": archived},
            )

    async def user(self, seen_seq: int, preferences: dict[str, Any], seq: int = 1) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO notification_users
                         (user_id, seen_seq, preferences, preferences_seq)
                       VALUES (:user_id, :seen, CAST(:prefs AS jsonb), :seq)"""
                ),
                {
                    "user_id": USER,
                    "seen": seen_seq,
                    "prefs": orjson.dumps(preferences).decode(),
                    "seq": seq,
                },
            )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    url = await create_database(settings.database_url)
    engine = create_engine(url)
    reader = ReplayReader(url, 2, 100, WINDOW, CRITICAL)
    await reader.start()
    try:
        yield Store(engine, reader)
    finally:
        await reader.close()
        await engine.dispose()
        await drop_database(url)


def quiet_around(moment: datetime) -> dict[str, str]:
    """Quiet hours in Asia/Tokyo (no DST) from an hour before ``moment`` to an hour after."""
    local = moment.astimezone(ZoneInfo("Asia/Tokyo"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "time_zone": "Asia/Tokyo"}


async def test_the_connect_replay_and_the_counts_leave_out_read_archived_and_muted(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    plain, plain_id = await store.notification("booking_confirmed", "booking")
    read, _ = await store.notification("booking_confirmed", "booking")
    archived, _ = await store.notification("booking_confirmed", "booking")
    muted, _ = await store.notification("chat_message", "chat", suppressed="muted")
    quiet, quiet_id = await store.notification("tour_started", "tour", suppressed="quiet")
    # Broadcasts: muted by category, critical despite the mute, quiet (not urgent), urgent.
    b_muted, _ = await store.notification("maintenance_scheduled", "system", user_id=None)
    _, b_critical_id = await store.notification("system_alert", "system", user_id=None)
    _, b_quiet_id = await store.notification("tour_completed", "tour", user_id=None)
    _, b_urgent_id = await store.notification(
        "tour_completed", "tour", user_id=None, priority="urgent"
    )
    b_archived, _ = await store.notification("tour_completed", "tour", user_id=None)
    await store.state(read, read=True)
    await store.state(archived, archived=True)
    await store.state(b_archived, archived=True)
    preferences = {"muted_categories": ["chat", "system"], "quiet_hours": quiet_around(now)}
    await store.user(seen_seq=quiet, preferences=preferences, seq=b_archived)

    replay = await store.reader.for_user(USER)
    frames = [orjson.loads(f) for f in replay.frames]
    ids = [f["id"] for f in frames]
    assert ids == [plain_id, quiet_id, b_critical_id, b_quiet_id, b_urgent_id]
    quiet_ones = {f["id"] for f in frames if f.get("quiet")}
    assert quiet_ones == {quiet_id, b_quiet_id}
    # Unread: plain, quiet, b_critical, b_quiet, b_urgent; unseen: those after the seen mark.
    assert (replay.user.counts.unread, replay.user.counts.unseen) == (5, 3)
    assert replay.user.seen_seq == quiet
    assert replay.user.preferences.muted_categories == ["chat", "system"]
    assert replay.user.preferences_seq == b_archived
    counts = await store.reader.counts(USER)
    assert (counts.unread, counts.unseen) == (5, 3)
    assert replay.high_water == b_archived
    del muted, b_muted, plain


async def test_a_replay_since_a_seq_and_the_history_by_status(store: Store) -> None:
    first, first_id = await store.notification("booking_confirmed", "booking")
    read, read_id = await store.notification("booking_confirmed", "booking")
    archived, archived_id = await store.notification("booking_confirmed", "booking")
    await store.notification("chat_message", "chat", suppressed="muted")
    await store.notification("tour_completed", "tour", user_id=None)  # muted by type
    _, late_id = await store.notification("payment_received", "payment")
    await store.state(read, read=True)
    await store.state(archived, archived=True)
    await store.user(seen_seq=read, preferences={"muted_types": ["tour_completed"]})

    since = await store.reader.for_user(USER, since=first)
    assert [orjson.loads(f)["id"] for f in since.frames] == [read_id, late_id]
    assert [orjson.loads(f)["read"] for f in since.frames] == [True, False]

    async def page(status: str) -> list[str]:
        frames, user = await store.reader.history(USER, status, 50, None)
        assert (user.counts.unread, user.counts.unseen) == (2, 1)
        return [f["id"] for f in frames]

    assert await page("all") == [late_id, read_id, first_id]
    assert await page("unread") == [late_id, first_id]
    assert await page("read") == [read_id]
    assert await page("unseen") == [late_id]
    assert await page("archived") == [archived_id]
    frames, _ = await store.reader.history(USER, "archived", 50, None)
    assert frames[0]["archived"] is True


async def test_preferences_as_stored_and_none_for_a_new_user(store: Store) -> None:
    preferences, seq = await store.reader.preferences(USER)
    assert (preferences.document(), seq) == (
        {"muted_categories": [], "muted_types": [], "quiet_hours": None},
        0,
    )
    await store.user(seen_seq=0, preferences={"muted_categories": ["chat"]}, seq=42)
    preferences, seq = await store.reader.preferences(USER)
    assert (preferences.muted_categories, seq) == (["chat"], 42)
    replay = await store.reader.for_user(USER)
    assert replay.count == 0 and replay.user.counts.unread == 0
