"""End to end, real processes: producer -> RabbitMQ -> ``notify dispatcher`` -> PostgreSQL ->
``notify edge`` -> a real WebSocket client."""

from __future__ import annotations

import asyncio
import random
import uuid

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection

from producers import topology
from producers.service import NotificationService
from tests.support.client import ws_client
from tests.support.deliveries import watch_deliveries

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dispatcher_process")]

LIVE_WITHIN = 2.0


async def test_a_published_notification_reaches_a_connected_client(
    service: NotificationService, edge_url: str, user_id: str
) -> None:
    async with ws_client(edge_url, user_id) as client:
        assert client.established["data"]["user_id"] == user_id
        assert client.established["data"]["heartbeat_interval"] == 30
        assert client.replay_complete["data"]["count"] == 0
        assert client.replay_complete["data"]["truncated"] is False

        event_id = await service.notify_booking_created(
            user_id=user_id,
            booking_id="b-7",
            tour_name="Jerusalem Day Tour",
            tour_date="2026-02-15",
            total_amount=250,
        )
        frame = await client.notification(timeout=LIVE_WITHIN)

    assert frame["id"] == str(event_id)
    assert frame["notification_type"] == "booking_created"
    assert frame["priority"] == "medium"
    assert frame["title"] == "Booking Created"
    assert frame["data"]["booking_id"] == "b-7"
    assert frame["action_url"] == "/bookings/b-7"
    assert frame["read"] is False
    assert "replayed" not in frame
    assert isinstance(frame["seq"], int) and frame["timestamp"].endswith("Z")


async def test_a_notification_sent_while_offline_is_replayed_before_replay_complete(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    user_id: str,
) -> None:
    async with ws_client(edge_url, user_id) as client:
        assert client.replay_complete["data"]["unread_count"] == 0
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        event_id = await service.notify(
            "payment_failed",
            user_id=user_id,
            data={"booking_id": "b-9", "amount": "99.90", "reason": "card declined"},
        )
        await deliveries.wait_for(event_id)  # committed

    async with ws_client(edge_url, user_id) as client:
        (replayed,) = client.mine
        assert replayed["id"] == str(event_id)
        assert replayed["replayed"] is True
        assert replayed["priority"] == "urgent"
        assert replayed["message"] == "Your payment of 99.90 for booking b-9 failed: card declined"
        done = client.replay_complete["data"]
        assert (done["count"], done["unread_count"]) == (1, 1)
        assert done["last_seq"] >= replayed["seq"]

        # A cursor replays only what came after it.
        later = await service.notify(
            "tour_started", user_id=user_id, data={"booking_id": "b-9", "tour_name": "T"}
        )
        live = await client.notification()
        assert live["id"] == str(later)
    async with ws_client(edge_url, user_id, since=replayed["seq"]) as client:
        assert [f["id"] for f in client.mine] == [str(later)]


async def test_ping_is_answered_with_pong(edge_url: str, user_id: str) -> None:
    async with ws_client(edge_url, user_id) as client:
        await client.send({"action": "ping"})
        assert await client.recv() == {"type": "pong"}
        await client.send({"action": "dance"})
        error = await client.recv()
        assert error["type"] == "error" and error["code"] == "unknown_action"
        await client.send({"action": "ping"})  # the socket stays open after an error
        assert await client.recv() == {"type": "pong"}


async def test_notifications_only_endpoint_refuses_client_actions(
    service: NotificationService, edge_url: str, user_id: str
) -> None:
    async with ws_client(edge_url, user_id, path="/ws/notifications") as client:
        await client.send({"action": "subscribe", "room": "tour_456"})
        error = await client.recv()
        assert error["code"] == "not_supported"
        event_id = await service.notify(
            "chat_read", user_id=user_id, data={"conversation_id": "c1", "reader_id": "u2"}
        )
        assert (await client.notification())["id"] == str(event_id)


async def test_invalid_user_id_is_refused_before_accept(edge_url: str) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        async with ws_client(edge_url, "not a valid id"):
            pass


async def test_a_user_never_receives_another_users_notification(
    service: NotificationService, edge_url: str, user_id: str
) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    async with ws_client(edge_url, user_id) as mine, ws_client(edge_url, other) as theirs:
        await service.notify(
            "tour_started", user_id=other, data={"booking_id": "b1", "tour_name": "T"}
        )
        assert (await theirs.notification())["notification_type"] == "tour_started"
        mark = await service.notify(
            "tour_completed", user_id=user_id, data={"booking_id": "b1", "tour_name": "T"}
        )
        # The first frame this user gets is its own, not the other user's.
        assert (await mine.notification())["id"] == str(mark)


@pytest.mark.parametrize("seed", range(12))
async def test_connecting_while_notifications_commit_gives_each_exactly_once(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    user_id: str,
    seed: int,
) -> None:
    """Invariant 4: whatever commits while a client connects arrives once, by replay or live."""
    rng = random.Random(seed)
    total = 30
    envelopes = [
        service.build("chat_message", user_id=user_id, data={
            "conversation_id": "c1", "sender_id": "s1", "preview": f"message {i}"})
        for i in range(total)
    ]  # fmt: skip
    connect_after = rng.randint(0, total)

    async def produce() -> None:
        for i, envelope in enumerate(envelopes):
            if i == connect_after:
                connected.set()
            await service.publisher.publish(envelope)
            for _ in range(rng.randint(0, 2)):
                await asyncio.sleep(0)
        connected.set()

    connected = asyncio.Event()
    async with watch_deliveries(amqp, topology.user_key(user_id)) as deliveries:
        producer = asyncio.create_task(produce())
        await connected.wait()
        async with ws_client(edge_url, user_id) as client:
            received = [f["id"] for f in client.mine]
            await producer
            await deliveries.wait_for(envelopes[-1].event_id)
            while len(received) < total:
                received.append((await client.notification())["id"])
            expected = [str(e.event_id) for e in envelopes]
            assert sorted(received) == sorted(expected), "lost or duplicated"
            # and nothing more arrives after the last one
            await client.send({"action": "ping"})
            assert await client.recv() == {"type": "pong"}


async def test_a_delivery_published_again_reaches_a_socket_once(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    edge_url: str,
    user_id: str,
) -> None:
    """A dispatcher that takes over an unconfirmed batch publishes its deliveries again
    (dispatcher/store.py, "Routing in log order"); the edge drops the copy."""
    async with ws_client(edge_url, user_id) as client:
        await service.notify_chat_read(user_id, "c1", "first")
        first = await client.notification(timeout=LIVE_WITHIN)
        channel = await amqp.channel()
        deliver = await channel.get_exchange(topology.DELIVER_EXCHANGE)
        copy = aio_pika.Message(
            orjson.dumps(first),
            content_type="application/json",
            headers={topology.SEQ_HEADER: first["seq"]},
        )
        await deliver.publish(copy, routing_key=topology.user_key(user_id))
        second_id = await service.notify_chat_read(user_id, "c1", "second")
        second = await client.notification(timeout=LIVE_WITHIN)
        assert second["id"] == str(second_id), "the copy of the first was sent again"
        await client.nothing_more()
        await channel.close()
