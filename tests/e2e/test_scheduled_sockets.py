"""A scheduled notification as a socket client sees it: invisible until it is due, then live
on every connected device with a seq above everything sent before it, and in the replay of a
device that was away when it came. (tests/e2e/test_schedule.py covers the dispatcher's side:
kills, broker restarts, two dispatchers, cancels.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.processes import NotifyProcess
from tests.support.tokens import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

ON_TIME = 1.0  # seconds after deliver_at within which a connected client has it
WAIT = 15.0


async def tour_soon(service: NotificationService, user_id: str, **fields: object) -> str:
    event_id = await service.notify(
        "tour_starting_soon",
        user_id=user_id,
        data={
            "booking_id": "b1",
            "tour_name": "Old City Walk",
            "meeting_point": "Jaffa Gate",
            "start_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
        **fields,
    )
    return str(event_id)


async def history_ids(http: httpx.AsyncClient, user_id: str) -> tuple[list[str], int]:
    answer = await http.get(
        f"/api/users/{user_id}/notifications",
        headers={"Authorization": f"Bearer {token_for(user_id)}"},
    )
    body = answer.json()
    return [n["id"] for n in body["notifications"]], body["unread_count"]


async def test_a_scheduled_notification_reaches_every_device_when_due_and_replays_after(
    service: NotificationService,
    edge_process: tuple[NotifyProcess, int],
    edge_url: str,
    user_id: str,
) -> None:
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge_process[1]}") as http,
        ws_client(edge_url, user_id) as phone,
        ws_client(edge_url, user_id) as laptop,
    ):
        due = datetime.now(UTC) + timedelta(seconds=2.5)
        scheduled = await tour_soon(service, user_id, deliver_at=due)
        at_once = await tour_soon(service, user_id)
        # Sent after the scheduled one, the immediate one comes first, alone.
        first = [await device.notification(WAIT) for device in (phone, laptop)]
        assert [f["id"] for f in first] == [at_once, at_once]
        # Until it is due, nothing of it shows: not in the history, not in the counts.
        assert await history_ids(http, user_id) == ([at_once], 1)

        arrived = []
        for device in (phone, laptop):
            frame = await device.notification(WAIT)
            arrived.append(time.time())
            assert frame["id"] == scheduled and frame["seq"] > first[0]["seq"], frame
            assert frame["notification_type"] == "tour_starting_soon"
            last_seq = frame["seq"]
        assert all(0 <= at - due.timestamp() < ON_TIME for at in arrived), (
            [round(at - due.timestamp(), 3) for at in arrived]
        )  # fmt: skip
        await phone.nothing_more()
        assert await history_ids(http, user_id) == ([scheduled, at_once], 2)

        # A device away when it came gets it from its cursor, once.
        due_away = datetime.now(UTC) + timedelta(seconds=1)
        away = await tour_soon(service, user_id, deliver_at=due_away)
        live = await laptop.notification(WAIT)
        assert live["id"] == away
    async with ws_client(edge_url, user_id, since=last_seq) as tablet:
        assert [f["id"] for f in tablet.replayed] == [away]
        assert tablet.replay_complete["data"]["unread_count"] == 3
