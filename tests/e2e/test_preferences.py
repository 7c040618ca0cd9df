"""Per-user preferences through the real pipeline (a dispatcher and an edge of this module's
own, on a database and a vhost of its own, since its broadcasts reach every user): a muted
notification is stored and not pushed, replayed or counted; a critical type comes through
mutes and quiet hours; a quiet one is stored, counted, not pushed live and replayed with
``"quiet": true``; preferences set on one device reach the other; a broadcast is held back
for the connected user who mutes it and not for another.

Nothing is awaited by sleeping: a notification held back is followed by one that is not,
which the dispatchers route in log order, so when the second arrives the first was stored
and would have come before it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from dispatcher.database import create_engine
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.support.client import Client, ws_client
from tests.support.processes import start_dispatcher, start_edge
from tests.support.services import create_database, drop_database, own_vhost
from tests.support.tokens import token_for

pytestmark = pytest.mark.e2e

ZONE = "Asia/Tokyo"  # no DST: a window around now stays around now during the test


@dataclass
class Pipeline:
    database_url: str
    edge_port: int
    service: NotificationService

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.edge_port}"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.edge_port}")

    async def stored(self, event_id: str) -> bool:
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                found = await conn.execute(
                    text("SELECT count(*) FROM notifications WHERE event_id = :id"),
                    {"id": uuid.UUID(event_id)},
                )
                return bool(found.scalar_one())
        finally:
            await engine.dispose()


@pytest.fixture(scope="module")
def vhost(settings: Settings) -> Iterator[str]:
    with own_vhost(settings.amqp_url) as amqp_url:
        yield amqp_url


@pytest.fixture(scope="module")
async def pipeline(
    settings: Settings, vhost: str, process_env: dict[str, str]
) -> AsyncIterator[Pipeline]:
    database = await create_database(settings.database_url)
    env = {**process_env, "DATABASE_URL": database, "AMQP_URL": vhost}
    dispatcher = await start_dispatcher(env)
    edge, port = await start_edge(env)
    own = Settings(database_url=database, amqp_url=vhost)
    service = NotificationService(Publisher(own, name="notify-tests preferences"), producer="tests")
    try:
        yield Pipeline(database, port, service)
    finally:
        await service.close()
        await edge.stop()
        await dispatcher.stop()
        await drop_database(database)


@pytest.fixture
def user() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


def as_user(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user_id)}"}


def quiet_now() -> dict[str, str]:
    """Quiet hours from an hour ago to an hour from now, in Tokyo."""
    local = datetime.now(UTC).astimezone(ZoneInfo(ZONE))
    start, end = local - timedelta(hours=1), local + timedelta(hours=1)
    return {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "time_zone": ZONE}


async def put_preferences(
    pipeline: Pipeline, user_id: str, preferences: dict[str, Any], *devices: Client
) -> dict[str, Any]:
    """Set the user's preferences and await their ``preferences`` frame on every device."""
    async with pipeline.http() as http:
        answer = await http.put(
            f"/api/users/{user_id}/preferences", json=preferences, headers=as_user(user_id)
        )
    assert answer.status_code == 202, answer.text
    for device in devices:
        frame = await device.expect("preferences")
        assert frame["preferences"] == answer.json()["preferences"]
    body: dict[str, Any] = answer.json()
    return body


async def counts(pipeline: Pipeline, user_id: str) -> tuple[int, int]:
    async with pipeline.http() as http:
        answer = await http.get(
            f"/api/users/{user_id}/notifications/unread-count", headers=as_user(user_id)
        )
    return answer.json()["unread_count"], answer.json()["unseen_count"]


async def history(pipeline: Pipeline, user_id: str) -> list[dict[str, Any]]:
    async with pipeline.http() as http:
        answer = await http.get(f"/api/users/{user_id}/notifications", headers=as_user(user_id))
    notifications: list[dict[str, Any]] = answer.json()["notifications"]
    return notifications


async def send(pipeline: Pipeline, notification_type: str, **fields: Any) -> str:
    data = {
        "chat_message": {"conversation_id": "c1", "sender_id": "s1", "preview": "hi"},
        "booking_confirmed": {"booking_id": "b1", "tour_name": "T"},
        "tour_completed": {"booking_id": "b1", "tour_name": "T"},
        "payment_failed": {"booking_id": "b1", "amount": 10.0},
        "tour_starting_soon": {
            "booking_id": "b1",
            "tour_name": "T",
            "start_time": "2026-02-15T08:00:00+02:00",
            "meeting_point": "Jaffa Gate",
        },
        "maintenance_scheduled": {"starts_at": "2026-02-16T02:00:00+00:00"},
    }[notification_type]
    return str(await pipeline.service.notify(notification_type, data=data, **fields))


async def test_a_muted_category_is_stored_but_not_pushed_replayed_or_counted(
    pipeline: Pipeline, user: str
) -> None:
    async with ws_client(pipeline.ws, user) as device:
        answer = await put_preferences(
            pipeline, user, {"muted_categories": ["chat", "payment"]}, device
        )
        assert answer["preferences"] == {
            "muted_categories": ["chat", "payment"],
            "muted_types": [],
            "quiet_hours": None,
        }
        muted = await send(pipeline, "chat_message", user_id=user)
        critical = await send(pipeline, "payment_failed", user_id=user)  # muted category
        after = await send(pipeline, "booking_confirmed", user_id=user)
        assert (await device.notification())["id"] == critical
        assert (await device.notification())["id"] == after
    assert await pipeline.stored(muted)
    assert await counts(pipeline, user) == (2, 2)
    assert [n["id"] for n in await history(pipeline, user)] == [after, critical]
    async with ws_client(pipeline.ws, user) as later:
        assert [f["id"] for f in later.replayed] == [critical, after]
    async with ws_client(pipeline.ws, user, since=0) as since:
        assert [f["id"] for f in since.replayed] == [critical, after]


async def test_quiet_hours_hold_back_live_pushes_but_count_and_replay_them_quietly(
    pipeline: Pipeline, user: str
) -> None:
    async with ws_client(pipeline.ws, user) as device:
        await put_preferences(pipeline, user, {"quiet_hours": quiet_now()}, device)
        quiet = await send(pipeline, "booking_confirmed", user_id=user)  # high, not urgent
        critical = await send(pipeline, "payment_failed", user_id=user)
        urgent = await send(pipeline, "tour_starting_soon", user_id=user)
        assert (await device.notification())["id"] == critical
        assert (await device.notification())["id"] == urgent
    assert await counts(pipeline, user) == (3, 3)
    async with ws_client(pipeline.ws, user) as later:
        replayed = {f["id"]: f for f in later.replayed}
        assert list(replayed) == [quiet, critical, urgent]
        assert replayed[quiet]["quiet"] is True
        assert "quiet" not in replayed[critical] and "quiet" not in replayed[urgent]
        assert later.replay_complete["data"]["unread_count"] == 3
    quiet_in_history = [n for n in await history(pipeline, user) if n["id"] == quiet]
    assert quiet_in_history[0]["quiet"] is True


async def test_preferences_set_on_one_device_reach_the_other_and_are_read_back(
    pipeline: Pipeline, user: str
) -> None:
    wanted = {
        "muted_types": ["tour_completed", "chat_message", "chat_message"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Europe/Berlin"},
    }
    async with ws_client(pipeline.ws, user) as phone, ws_client(pipeline.ws, user) as laptop:
        answer = await put_preferences(pipeline, user, wanted, phone, laptop)
    normalised = {
        "muted_categories": [],
        "muted_types": ["chat_message", "tour_completed"],
        "quiet_hours": wanted["quiet_hours"],
    }
    assert answer["preferences"] == normalised and uuid.UUID(answer["event_id"])
    async with pipeline.http() as http:
        read = (await http.get(f"/api/users/{user}/preferences", headers=as_user(user))).json()
        assert read["user_id"] == user and read["preferences"] == normalised
        assert read["critical_types"] == ["payment_failed", "system_alert"]
        assert "chat" in read["categories"]
        assert {"type": "system_alert", "category": "system", "critical": True} in read["types"]
        refused = await http.put(
            f"/api/users/{user}/preferences",
            json={"muted_types": ["payment_failed"]},
            headers=as_user(user),
        )
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_request" and refused.json()["fields"]
        other = await http.get(f"/api/users/{user}/preferences", headers=as_user("someone"))
        assert other.status_code == 403


@pytest.mark.broadcasts
async def test_a_broadcast_is_held_back_for_the_user_who_mutes_it_only(
    pipeline: Pipeline, user: str
) -> None:
    other = f"{user}-b"
    async with ws_client(pipeline.ws, user) as muter, ws_client(pipeline.ws, other) as plain:
        await put_preferences(pipeline, user, {"muted_categories": ["tour"]}, muter)
        muted = await send(pipeline, "tour_completed", broadcast=True)
        after = await send(pipeline, "maintenance_scheduled", broadcast=True)
        assert [(await plain.notification())["id"] for _ in range(2)] == [muted, after]
        assert (await muter.notification())["id"] == after
        await muter.nothing_more()
    assert [n["id"] for n in await history(pipeline, user)][:1] == [after]
    assert muted not in [n["id"] for n in await history(pipeline, user)]
    assert muted in [n["id"] for n in await history(pipeline, other)]
    async with ws_client(pipeline.ws, user) as later:
        assert muted not in [f["id"] for f in later.replayed]
        assert after in [f["id"] for f in later.replayed]
