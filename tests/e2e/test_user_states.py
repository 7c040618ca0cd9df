"""Seen, read, archive and unarchive through the real pipeline: a socket's action or a REST
call is an event in the log, and every device of the user gets its sync frame with counts that
agree with the REST API's. Personal notifications only (no broadcast: the counts are exact)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import topology
from producers.service import NotificationService
from tests.support.client import Client, ws_client
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


async def three(
    service: NotificationService, amqp: AbstractRobustConnection, user_id: str
) -> list[tuple[str, int]]:
    """Three notifications for the user, delivered: their ids and seqs."""
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        ids = [
            str(await service.notify("tour_started", user_id=user_id,
                                     data={"booking_id": f"b{i}", "tour_name": "T"}))
            for i in range(3)
        ]  # fmt: skip
        frames = [await deliveries.wait_for(i) for i in ids]
    return [(str(f["id"]), int(f["seq"])) for f in frames]  # type: ignore[call-overload]


async def both(devices: tuple[Client, Client], frame_type: str) -> dict[str, Any]:
    """The sync frame every device gets; the same on each."""
    first, second = [await device.expect(frame_type) for device in devices]
    assert first == second
    return first


async def counts(http: httpx.AsyncClient, user_id: str) -> tuple[int, int]:
    answer = await http.get(
        f"/api/users/{user_id}/notifications/unread-count", headers=as_user(user_id)
    )
    body = answer.json()
    assert body["user_id"] == user_id
    return body["unread_count"], body["unseen_count"]


async def page(http: httpx.AsyncClient, user_id: str, status: str | None = None) -> list[str]:
    params = {"status": status} if status else {}
    answer = await http.get(
        f"/api/users/{user_id}/notifications", params=params, headers=as_user(user_id)
    )
    return [n["id"] for n in answer.json()["notifications"]]


async def test_seen_read_archive_and_unarchive_sync_every_device_and_agree_with_rest(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    http: httpx.AsyncClient,
    user_id: str,
) -> None:
    (a, _), (b, b_seq), (c, c_seq) = await three(service, amqp, user_id)
    base = f"/api/users/{user_id}/notifications"
    async with ws_client(edge_url, user_id) as phone, ws_client(edge_url, user_id) as laptop:
        devices = (phone, laptop)
        done = phone.replay_complete["data"]
        assert (done["unread_count"], done["unseen_count"], done["seen_up_to_seq"]) == (3, 3, 0)

        await phone.send({"action": "mark_seen", "up_to_seq": b_seq})
        seen = await both(devices, "seen")
        assert seen == {"type": "seen", "up_to_seq": b_seq, "unseen_count": 1}
        assert await counts(http, user_id) == (3, 1)

        await laptop.send({"action": "mark_read", "ids": [a]})
        read = await both(devices, "read")
        assert (read["ids"], read["unread_count"], read["unseen_count"]) == ([a], 2, 1)

        await phone.send({"action": "archive", "ids": [b]})
        archived = await both(devices, "archived")
        assert archived == {"type": "archived", "ids": [b], "unread_count": 1, "unseen_count": 1}
        assert await counts(http, user_id) == (1, 1)
        assert await page(http, user_id) == [c, a]
        assert await page(http, user_id, "archived") == [b]
        assert await page(http, user_id, "unseen") == [c]
        assert await page(http, user_id, "read") == [a]

        await laptop.send({"action": "unarchive", "ids": [b]})
        back = await both(devices, "unarchived")
        assert back == {"type": "unarchived", "ids": [b], "unread_count": 2, "unseen_count": 1}

        # Every read one: a alone.
        await phone.send({"action": "archive", "all_read": True})
        archived = await both(devices, "archived")
        assert (archived["ids"], archived["unread_count"]) == ([a], 2)

        posted = await http.post(
            f"{base}/seen", json={"up_to_seq": c_seq}, headers=as_user(user_id)
        )
        assert posted.status_code == 202 and uuid.UUID(posted.json()["event_id"])
        seen = await both(devices, "seen")
        assert (seen["up_to_seq"], seen["unseen_count"]) == (c_seq, 0)
        history = (await http.get(base, headers=as_user(user_id))).json()
        assert (history["unread_count"], history["unseen_count"]) == (2, 0)

    # The connect replay: unread and not archived; the seen mark comes with the counts.
    async with ws_client(edge_url, user_id) as later:
        assert [f["id"] for f in later.replayed] == [b, c]
        done = later.replay_complete["data"]
        assert (done["unread_count"], done["unseen_count"], done["seen_up_to_seq"]) == (2, 0, c_seq)
        # An admin may act for the user; the REST archive syncs the socket like an action.
        posted = await http.post(f"{base}/archive", json={"ids": [c]}, headers=admin_headers())
        assert posted.status_code == 202
        archived = await later.expect("archived")
        assert (archived["ids"], archived["unread_count"]) == ([c], 1)
        posted = await http.post(f"{base}/unarchive", json={"ids": [c]}, headers=admin_headers())
        assert posted.status_code == 202
        assert (await later.expect("unarchived"))["unread_count"] == 2


async def test_bad_state_actions_get_an_error_frame_and_the_socket_stays(
    edge_url: str, user_id: str
) -> None:
    async with ws_client(edge_url, user_id) as client:
        for frame in (
            {"action": "mark_seen", "up_to_seq": "5"},
            {"action": "archive", "ids": [str(uuid.uuid4())], "all_read": True},
            {"action": "unarchive", "ids": []},
        ):
            await client.send(frame)
            assert (await client.expect("error"))["code"] == "invalid_frame"
        await client.nothing_more()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "ids": st.lists(st.uuids().map(str) | st.text(max_size=36), max_size=3) | json_values,
            "all_read": json_values,
            "up_to_seq": st.integers(-5, 2**64) | json_values,
            "muted_categories": st.lists(st.sampled_from(["chat", "tour", "nope"]), max_size=3)
            | json_values,
            "muted_types": st.lists(
                st.sampled_from(["chat_message", "system_alert", "payment_failed", "x"]),
                max_size=3,
            )
            | json_values,
            "quiet_hours": st.fixed_dictionaries(
                {
                    "start": st.sampled_from(["22:00", "24:00", "7:00", "07:00"]) | json_values,
                    "end": st.sampled_from(["07:00", "22:00", "00:00"]) | json_values,
                    "time_zone": st.sampled_from(["Europe/Berlin", "Mars/Olympus", "../etc", "UTC"])
                    | json_values,
                }
            )
            | json_values,
            "extra": json_values,
        },
    ),
)
CALLS = [
    ("POST", "notifications/seen"),
    ("POST", "notifications/archive"),
    ("POST", "notifications/unarchive"),
    ("PUT", "preferences"),
]


@settings(
    max_examples=80,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=st.sampled_from(CALLS), body=bodies)
def test_any_state_body_is_taken_or_refused_in_the_error_shape_never_a_server_error(
    edge_process: tuple[NotifyProcess, int], call: tuple[str, str], body: object
) -> None:
    user_id = "u-state-fuzz"
    method, path = call
    with httpx.Client(base_url=f"http://127.0.0.1:{edge_process[1]}") as http:
        try:
            content = httpx.Request("POST", "/", json=body).content
        except ValueError:  # NaN and infinities are no JSON: the client cannot send them
            return
        response = http.request(
            method,
            f"/api/users/{user_id}/{path}",
            content=content,
            headers={**as_user(user_id), "Content-Type": "application/json"},
        )
    assert response.status_code in (202, 422), response.text
    answer = response.json()
    if response.status_code == 422:
        assert answer["error"] == "invalid_request" and answer["fields"], answer
    else:
        assert answer["success"] is True and uuid.UUID(answer["event_id"])
