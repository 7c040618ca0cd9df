"""Read state across devices, the REST history, and admin broadcasts through the pipeline."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection

from producers import topology
from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess
from tests.support.tokens import admin_headers, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]


@pytest.fixture
async def http(edge_process: tuple[NotifyProcess, int]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge_process[1]}") as client:
        yield client


def as_user(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user_id)}"}


async def three_unread(
    service: NotificationService, amqp: AbstractRobustConnection, user_id: str
) -> list[str]:
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        ids = [
            str(await service.notify("tour_started", user_id=user_id,
                                     data={"booking_id": f"b{i}", "tour_name": "T"}))
            for i in range(3)
        ]  # fmt: skip
        await deliveries.wait_for(ids[-1])
    return ids


async def test_a_read_on_one_device_clears_the_badge_on_the_other(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    edge_process: tuple[NotifyProcess, int],
    user_id: str,
) -> None:
    ids = await three_unread(service, amqp, user_id)
    async with ws_client(edge_url, user_id) as phone, ws_client(edge_url, user_id) as laptop:
        assert phone.replay_complete["data"]["unread_count"] == 3
        await phone.send({"action": "mark_read", "ids": ids[:1]})
        for device in (phone, laptop):
            read = await device.expect("read")
            assert read["ids"] == ids[:1] and read["unread_count"] == 2
        await laptop.send({"action": "mark_all_read"})
        for device in (phone, laptop):
            read = await device.expect("read")
            assert read["unread_count"] == 0 and sorted(read["ids"]) == sorted(ids[1:])
    async with ws_client(edge_url, user_id) as later:
        assert later.replayed == [] and later.replay_complete["data"]["unread_count"] == 0


async def test_history_pages_by_seq_and_reads_go_through_the_pipeline(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    http: httpx.AsyncClient,
    user_id: str,
) -> None:
    ids = await three_unread(service, amqp, user_id)
    base = f"/api/users/{user_id}/notifications"
    first = (await http.get(base, params={"limit": 2}, headers=as_user(user_id))).json()
    assert [n["id"] for n in first["notifications"]] == ids[:0:-1]  # newest first
    assert first["unread_count"] == 3
    rest = await http.get(
        base, params={"limit": 2, "before_seq": first["next_before_seq"]}, headers=as_user(user_id)
    )
    assert [n["id"] for n in rest.json()["notifications"]] == ids[:1]
    assert rest.json()["next_before_seq"] is None

    async with ws_client(edge_url, user_id) as device:
        posted = await http.post(f"{base}/read", json={"ids": ids[:2]}, headers=as_user(user_id))
        assert posted.status_code == 202
        read = await device.expect("read")
        assert sorted(read["ids"]) == sorted(ids[:2]) and read["unread_count"] == 1
    count = await http.get(f"{base}/unread-count", headers=as_user(user_id))
    assert count.json() == {"user_id": user_id, "unread_count": 1, "unseen_count": 1}
    unread = (await http.get(base, params={"status": "unread"}, headers=as_user(user_id))).json()
    assert [n["id"] for n in unread["notifications"]] == ids[2:]
    read_page = (await http.get(base, params={"status": "read"}, headers=as_user(user_id))).json()
    assert {n["id"] for n in read_page["notifications"]} == set(ids[:2])
    assert all(n["read"] for n in read_page["notifications"])


@pytest.mark.broadcasts
async def test_admin_broadcasts_are_stored_then_delivered(
    edge_url: str, http: httpx.AsyncClient, user_id: str
) -> None:
    room = f"tour_{uuid.uuid4().hex[:8]}"
    async with ws_client(edge_url, user_id) as client:
        await client.subscribe(room)
        sent = await http.post(
            f"/ws/rooms/{room}/broadcast",
            json={"title": "Bus delayed", "message": "15 minutes", "priority": "urgent"},
            headers=admin_headers(),
        )
        assert sent.status_code == 202
        frame = await client.notification()
        assert frame["id"] == sent.json()["event_id"] and frame["room"] == room
        assert (frame["title"], frame["priority"]) == ("Bus delayed", "urgent")

        everyone = await http.post(
            "/ws/broadcast",
            json={"title": "Maintenance", "message": "2 AM"},
            headers=admin_headers(),
        )
        frame = await client.notification()
        assert frame["id"] == everyone.json()["event_id"]
        assert frame["notification_type"] == "system_alert"
        bad = await http.post("/ws/broadcast", json={"title": ""}, headers=admin_headers())
        assert bad.status_code == 422
