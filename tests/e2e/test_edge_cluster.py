"""Two edge processes behind one pipeline: every socket of a user and every subscriber of a
room gets each frame once, whichever process holds it, and the REST view adds both up."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection

from producers import topology
from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess, free_port, start_edge, wait_for_listener
from tests.support.reports import connections_are, wait_for_reports
from tests.support.tokens import admin_headers

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]


@pytest.fixture(scope="module")
async def second_edge(
    process_env: dict[str, str], dispatcher_process: NotifyProcess
) -> AsyncIterator[str]:
    proc, port = await start_edge(process_env)
    yield f"ws://127.0.0.1:{port}"
    await proc.stop()


def tour_started(user_id: str | None = None, room: str | None = None) -> dict[str, Any]:
    audience: dict[str, Any] = {"user_id": user_id} if user_id else {"room": room}
    return {**audience, "data": {"booking_id": "b1", "tour_name": "Old City Walk"}}


async def test_a_user_with_a_socket_on_each_edge_gets_each_notification_on_both_once(
    service: NotificationService, edge_url: str, second_edge: str, user_id: str
) -> None:
    async with ws_client(edge_url, user_id) as one, ws_client(second_edge, user_id) as two:
        first = await service.notify("tour_started", **tour_started(user_id))
        second = await service.notify("tour_completed", **tour_started(user_id))
        for client in (one, two):
            assert (await client.notification())["id"] == str(first)
            assert (await client.notification())["id"] == str(second)
            await client.nothing_more()


async def test_room_notifications_and_messages_reach_subscribers_on_both_edges(
    service: NotificationService, edge_url: str, second_edge: str
) -> None:
    room = f"tour_{uuid.uuid4().hex[:8]}"
    guide, traveller, outsider = (f"u-{uuid.uuid4().hex[:8]}" for _ in range(3))
    async with (
        ws_client(edge_url, guide) as a,
        ws_client(second_edge, traveller) as b,
        ws_client(second_edge, outsider) as c,
    ):
        for client in (a, b):
            replayed, subscribed = await client.subscribe(room)
            assert replayed == [] and subscribed == {"type": "subscribed", "room": room}
        event_id = await service.notify("tour_started", **tour_started(room=room))
        for client in (a, b):
            frame = await client.notification()
            assert frame["id"] == str(event_id) and frame["room"] == room

        await a.send({"action": "message", "room": room, "data": {"text": "bus leaves at 9"}})
        relayed = await b.expect("message")
        assert relayed == {
            "type": "message", "room": room, "from": guide, "data": {"text": "bus leaves at 9"}
        }  # fmt: skip
        await a.nothing_more()  # the sender does not get its own message back
        await c.nothing_more()  # nor does anyone outside the room

        await b.send({"action": "unsubscribe", "room": room})
        assert await b.expect("unsubscribed") == {"type": "unsubscribed", "room": room}
        later = await service.notify("tour_completed", **tour_started(room=room))
        assert (await a.notification())["id"] == str(later)
        await b.nothing_more()


async def test_subscribing_with_since_replays_the_room_then_goes_live(
    service: NotificationService, amqp: AbstractRobustConnection, edge_url: str, user_id: str
) -> None:
    room = f"tour_{uuid.uuid4().hex[:8]}"
    async with watch_deliveries(amqp, topology.room_key(room)) as deliveries:
        ids = [await service.notify("tour_started", **tour_started(room=room)) for _ in range(3)]
        first = await deliveries.wait_for(ids[0])
        await deliveries.wait_for(ids[-1])
    async with ws_client(edge_url, user_id) as client:
        replayed, subscribed = await client.subscribe(room, since=int(str(first["seq"])))
        assert [f["id"] for f in replayed] == [str(i) for i in ids[1:]]
        assert subscribed["replayed"] == 2 and subscribed["last_seq"] >= replayed[-1]["seq"]
        live = await service.notify("tour_completed", **tour_started(room=room))
        assert (await client.notification())["id"] == str(live)


async def test_messages_need_a_subscription_and_bad_rooms_get_an_error(
    edge_url: str, user_id: str
) -> None:
    async with ws_client(edge_url, user_id) as client:
        await client.send({"action": "message", "room": "tour_x", "data": {}})
        assert (await client.expect("error"))["code"] == "not_subscribed"
        await client.send({"action": "subscribe", "room": "no spaces allowed"})
        assert (await client.expect("error"))["code"] == "invalid_room"
        await client.nothing_more()


async def test_stats_and_connections_add_up_across_both_edges(
    amqp: AbstractRobustConnection,
    edge_process: tuple[NotifyProcess, int],
    second_edge: str,
    user_id: str,
) -> None:
    first_http = f"http://127.0.0.1:{edge_process[1]}"
    other = f"u-{uuid.uuid4().hex[:8]}"
    async with (
        ws_client(f"ws://127.0.0.1:{edge_process[1]}", user_id),
        ws_client(second_edge, user_id),
        ws_client(second_edge, other) as third,
    ):
        await third.subscribe("stats_room")
        reports = await wait_for_reports(amqp, connections_are([1, 2]))
        async with httpx.AsyncClient(base_url=first_http, headers=admin_headers()) as http:
            stats = (await http.get("/ws/stats")).json()
            rooms = (await http.get("/ws/rooms")).json()
            connections = (await http.get(f"/ws/users/{user_id}/connections")).json()
    assert stats["status"] == "online"
    assert len(stats["cluster"]["nodes"]) == 2 == len(reports)
    assert stats["stats"]["active_connections"] == 3
    assert {user_id, other} <= set(stats["online_users"])
    assert stats["stats"]["unique_users"] == len(stats["online_users"])
    assert {"room": "stats_room", "connections": 1} in rooms["rooms"]
    assert connections["count"] == 2 and connections["online"] is True
    assert {c["node_id"] for c in connections["connections"]} == set(reports)
    assert all(c["device_type"] == "test" for c in connections["connections"])
    # Frames go straight to each socket's transport, not through a writer task per socket.
    assert all(c["writer"] == "transport" for c in connections["connections"])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_clients_reconnecting_at_random_see_every_notification_once_in_order(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    second_edge: str,
    seed: int,
) -> None:
    """200 notifications to 20 users while their clients connect, drop and reconnect at
    random, to either edge, each reconnect with ``since`` = the last seq it saw."""
    rng = random.Random(seed)
    users = [f"r{seed}-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    envelopes = [
        service.build("chat_message", user_id=rng.choice(users),
                      data={"conversation_id": "c", "sender_id": "s", "preview": str(i)})
        for i in range(200)
    ]  # fmt: skip
    expected = {u: [str(e.event_id) for e in envelopes if e.user_id == u] for u in users}
    received: dict[str, list[dict[str, Any]]] = {u: [] for u in users}
    published = asyncio.Event()

    async def client_life(user: str) -> None:
        cursor: int | None = None
        while True:
            url = rng.choice([edge_url, second_edge])
            async with ws_client(url, user, since=cursor) as client:
                frames = list(client.mine)
                cursor = max([cursor or 0, client.replay_complete["data"]["last_seq"]])
                if published.is_set() and len(received[user]) + len(frames) >= len(expected[user]):
                    received[user].extend(frames)
                    while len(received[user]) < len(expected[user]):
                        received[user].append(await client.notification())
                    return
                for _ in range(rng.randint(0, 3)):
                    try:
                        frames.append(await client.notification(timeout=0.05 + rng.random() / 5))
                    except TimeoutError:
                        break
                received[user].extend(frames)
                cursor = max([cursor, *(int(f["seq"]) for f in frames)])

    async with watch_deliveries(amqp, *(topology.user_key(u) for u in users)) as deliveries:
        lives = [asyncio.create_task(client_life(u)) for u in users]
        for envelope in envelopes:
            await service.publisher.publish(envelope)
        await deliveries.wait_for(envelopes[-1].event_id)
        published.set()
        await asyncio.wait_for(asyncio.gather(*lives), 60)

    for user in users:
        ids = [f["id"] for f in received[user]]
        assert ids == expected[user], f"{user}: lost, duplicated or out of order"
        seqs = [f["seq"] for f in received[user]]
        assert seqs == sorted(seqs)


async def test_workers_are_edge_nodes_of_their_own_on_one_port(
    amqp: AbstractRobustConnection, process_env: dict[str, str], service: NotificationService
) -> None:
    port = free_port()
    proc = NotifyProcess(
        "notify edge --workers 2", ["edge", "--port", str(port), "--workers", "2"], process_env
    )
    await proc.start("Uvicorn running on")
    try:
        await proc.wait_for_lines("edge node", 2)
        # The supervisor binds the port; a worker listens on it only after its startup, and
        # prints nothing then: the port refuses connections until the first one does.
        await wait_for_listener(port)
        users = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(8)]
        contexts = [ws_client(f"ws://127.0.0.1:{port}", u) for u in users]
        clients = [await c.__aenter__() for c in contexts]
        try:
            reports = await wait_for_reports(
                amqp,
                lambda seen: sum(r["connections"] for r in seen.values() if r["node_id"]
                                 in workers(proc)) == len(users),
            )  # fmt: skip
            assert len([n for n in reports if n in workers(proc)]) == 2
            event_id = await service.notify("tour_started", **tour_started(users[-1]))
            assert (await clients[-1].notification())["id"] == str(event_id)
        finally:
            for context in contexts:
                await context.__aexit__(None, None, None)
    finally:
        assert await proc.stop() == 0


def workers(proc: NotifyProcess) -> set[str]:
    return {
        line.split("edge node ", 1)[1].split()[0] for line in proc.lines if "edge node " in line
    }


async def test_an_edge_that_stops_leaves_the_cluster_stats_at_once(
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    edge_process: tuple[NotifyProcess, int],
) -> None:
    """Without its last report, a stopped edge would be counted until its report went stale
    (three intervals): its sockets and users would stay in the stats after a deploy."""
    spare, _ = await start_edge(process_env)
    spare_id = (await spare.wait_for_line("edge node ")).split("edge node ")[1].split()[0]
    watching = asyncio.Event()

    def gone(seen: dict[str, Any]) -> bool:
        if spare_id in seen:
            watching.set()  # a report of the spare came through: the watch is bound
        return bool(seen.get(spare_id, {}).get("leaving"))

    leaving = asyncio.ensure_future(wait_for_reports(amqp, gone))
    await asyncio.wait_for(watching.wait(), 15)
    await spare.stop()
    await leaving
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{edge_process[1]}", headers=admin_headers()
    ) as http:
        for _ in range(15):  # 1.5 s at most: a stale report would stay for 4 s or more
            nodes = (await http.get("/ws/stats")).json()["cluster"]["nodes"]
            if spare_id not in {n["node_id"] for n in nodes}:
                break
            await asyncio.sleep(0.1)
    assert spare_id not in {n["node_id"] for n in nodes}
