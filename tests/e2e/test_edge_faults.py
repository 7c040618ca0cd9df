"""An edge process dies, is stopped, loses its broker connection, or a client goes silent:
no notification is lost, none is sent twice, and nothing lingers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractRobustConnection
from websockets.exceptions import ConnectionClosed

from producers import topology
from producers.envelope import SCHEMA_VERSION, ReadEvent, ReadEventType
from producers.service import NotificationService
from tests.support import broker_admin
from tests.support.client import Client, ws_client
from tests.support.deliveries import watch_deliveries
from tests.support.processes import NotifyProcess, start_edge
from tests.support.reports import node_has, wait_for_reports
from tests.support.tokens import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.usefixtures("dispatcher_process")]


def chat(user_id: str, i: int) -> dict[str, object]:
    return {
        "user_id": user_id,
        "data": {"conversation_id": "c1", "sender_id": "guide", "preview": f"message {i}"},
    }


async def node_id_of(edge: NotifyProcess) -> str:
    line = await edge.wait_for_line("edge node")
    return line.split("edge node ", 1)[1].split()[0]


@contextlib.asynccontextmanager
async def broker_cut(env: dict[str, str], node_id: str) -> AsyncIterator[None]:
    """The edge's broker connection is closed and cannot come back until the block ends:
    what is routed meanwhile reaches no queue of it, for certain."""
    async with broker_admin.no_new_connections(env["AMQP_URL"]):
        assert await broker_admin.close_connections_named(f"notify-edge {node_id}") == 1
        yield


async def publish_committed(
    service: NotificationService, amqp: AbstractRobustConnection, users: list[str], count: int
) -> dict[str, list[str]]:
    """Publish ``count`` notifications round-robin to ``users`` and wait until all committed."""
    sent: dict[str, list[str]] = {u: [] for u in users}
    async with watch_deliveries(amqp, *(topology.user_key(u) for u in users)) as deliveries:
        last = None
        for i in range(count):
            user = users[i % len(users)]
            last = await service.notify("chat_message", **chat(user, i))
            sent[user].append(str(last))
        await deliveries.wait_for(last)
    return sent


async def test_killing_an_edge_loses_no_notification(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    edge_url: str,
) -> None:
    doomed, port = await start_edge(process_env)
    users = [f"k-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    clients: list[Client] = []
    contexts = [ws_client(f"ws://127.0.0.1:{port}", u) for u in users]
    for context in contexts:
        clients.append(await context.__aenter__())
    try:
        before = await publish_committed(service, amqp, users, 10)
        for user, client in zip(users, clients, strict=True):
            got = [(await client.notification())["id"] for _ in before[user]]
            assert got == before[user]
        await doomed.kill()
        for client in clients:
            with pytest.raises(ConnectionClosed):
                await client.recv()
    finally:
        for context in contexts:
            await context.__aexit__(None, None, None)
    during = await publish_committed(service, amqp, users, 10)

    for user in users:  # each client reconnects to the surviving edge
        async with ws_client(edge_url, user) as client:
            assert [f["id"] for f in client.mine] == before[user] + during[user]
            await client.nothing_more()


async def test_sigterm_closes_every_socket_with_1012_and_exits(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    edge_url: str,
    user_id: str,
) -> None:
    stopping, port = await start_edge(process_env)
    async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
        assert await stopping.stop(signal.SIGTERM) == 0  # by itself, before any kill
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert not any("Traceback" in line for line in stopping.lines)
    missed = await publish_committed(service, amqp, [user_id], 3)
    async with ws_client(edge_url, user_id) as client:  # reconnect elsewhere
        assert [f["id"] for f in client.mine] == missed[user_id]


async def test_a_client_that_stops_answering_pings_is_dropped(
    amqp: AbstractRobustConnection, process_env: dict[str, str], user_id: str
) -> None:
    interval = 1
    env = {
        **process_env,
        "WEBSOCKET_HEARTBEAT_INTERVAL": str(interval),
        "EDGE_REPORT_INTERVAL": "0.3",
    }
    edge, port = await start_edge(env)
    try:
        node_id = await node_id_of(edge)
        # A raw TCP client: it completes the handshake, then never reads nor answers.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws/connect?user_id={user_id}&token={token_for(user_id)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = await reader.readline()
        assert b"101" in status

        # The server closes the connection once two intervals pass without a pong.
        async def until_eof() -> None:
            while await reader.read(65536):
                pass

        await asyncio.wait_for(until_eof(), 2 * interval + 5)
        writer.close()
        # ... and forgets the socket: the node reports no connection left.
        await wait_for_reports(amqp, node_has(node_id, 0))
    finally:
        await edge.stop()


@pytest.mark.skipif(not broker_admin.available(), reason="needs rabbitmqctl on this machine")
async def test_a_broker_blip_is_invisible_to_connected_clients(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """Invariant 4b: the edge's connection (and so its queue) is lost; what is routed in the
    gap reaches the client once, by the catch-up, and nothing is sent twice."""
    edge, port = await start_edge(process_env)
    try:
        node_id = await node_id_of(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            before = await publish_committed(service, amqp, [user_id], 3)
            assert [(await client.notification())["id"] for _ in range(3)] == before[user_id]

            # The edge cannot reconnect until the block ends: what is published meanwhile is
            # routed to no queue of it, for certain.
            async with broker_cut(process_env, node_id):
                gap = await publish_committed(service, amqp, [user_id], 10)
            caught_up = await edge.wait_for_line("caught up")
            assert int(caught_up.split("caught up ", 1)[1].split()[0]) >= 1, "\n".join(edge.lines)
            after = await publish_committed(service, amqp, [user_id], 3)

            expected = gap[user_id] + after[user_id]
            got = [(await client.notification())["id"] for _ in expected]
            assert sorted(got) == sorted(expected)
            await client.nothing_more()
    finally:
        await edge.stop()


async def test_a_read_done_elsewhere_during_a_broker_blip_reaches_the_socket(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """The catch-up after a blip carries the read syncs of the gap too: a device connected
    through it learns of a read done on another device meanwhile, with the new count."""
    edge, port = await start_edge(process_env)
    try:
        node_id = await node_id_of(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            sent = (await publish_committed(service, amqp, [user_id], 2))[user_id]
            assert [(await client.notification())["id"] for _ in range(2)] == sent
            read = ReadEvent.model_validate(
                {
                    "event_id": uuid.uuid4(),
                    "schema_version": SCHEMA_VERSION,
                    "event_type": ReadEventType.READ,
                    "user_id": user_id,
                    "ids": [sent[0]],
                }
            )
            async with (
                watch_deliveries(amqp, topology.user_key(user_id)) as deliveries,
                broker_cut(process_env, node_id),
            ):
                await service.publisher.publish(read)
                await deliveries.wait_until(lambda f: f.get("type") == "read")
            await edge.wait_for_line("caught up")
            sync = await client.expect("read")
            assert (sync["ids"], sync["unread_count"]) == ([sent[0]], 1)
            await client.nothing_more()
    finally:
        await edge.stop()


async def test_after_a_broker_blip_keys_restored_last_miss_nothing_and_stay_in_order(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """Regression test for a loss the chaos run found: the robust connection re-binds the
    edge's keys one by one, and deliveries for the keys bound first arrived before the
    catch-up had taken its mark, so a room bound last lost what was routed before its
    binding came back, and frames arrived before the gap's. Here the user key is bound first
    and the room after 300 others, and notifications to both flow while the keys come back."""
    room = f"late-{uuid.uuid4().hex[:8]}"
    edge, port = await start_edge({**process_env, "WEBSOCKET_MAX_ROOMS": "400"})
    try:
        node_id = await node_id_of(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            for i in range(300):
                await client.subscribe(f"filler-{room}-{i}")
            await client.subscribe(room)
            keys = (topology.user_key(user_id), topology.room_key(room))
            sent: list[str] = []
            async with watch_deliveries(amqp, *keys) as deliveries:

                async def publish(count: int) -> None:
                    for i in range(count):
                        to = {"room": room} if (len(sent) + i) % 2 else {"user_id": user_id}
                        data = {"conversation_id": "c", "sender_id": "s", "preview": str(i)}
                        sent.append(str(await service.notify("chat_message", **to, data=data)))

                await publish(2)  # and the publisher is connected before the block
                async with broker_cut(process_env, node_id):
                    await publish(10)  # routed to no queue of this edge
                # While the edge reconnects and re-binds, notifications keep coming.
                caught_up = asyncio.create_task(edge.wait_for_line("caught up"))
                while not caught_up.done():
                    await publish(2)
                await caught_up
                await publish(10)
                await deliveries.wait_for(uuid.UUID(sent[-1]))
            frames: list[dict[str, object]] = []
            with contextlib.suppress(TimeoutError):
                while len(frames) < len(sent):
                    frames.append(await client.notification())
            if len(frames) == len(sent):
                await client.nothing_more()
    finally:
        await edge.stop()
    missing = set(sent) - {str(f["id"]) for f in frames}
    assert not missing, f"{len(missing)} of {len(sent)} never arrived"
    assert sorted(str(f["id"]) for f in frames) == sorted(sent), "sent twice"
    for stream in (None, room):
        seqs = [int(str(f["seq"])) for f in frames if f.get("room") == stream]
        assert seqs == sorted(seqs), f"out of order on {stream or 'the user stream'}: {seqs}"


async def test_a_replay_that_ends_during_a_broker_blip_is_caught_up_too(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """Regression test for a loss the chaos run found: a room replayed (``subscribe`` with
    ``since``) while the edge's broker connection was down went live at its snapshot, and
    what was committed after that snapshot, in the gap, was caught up for the other streams
    but not for it."""
    room = f"gap-{uuid.uuid4().hex[:8]}"
    edge, port = await start_edge(process_env)

    async def to_room(text: str) -> str:
        data = {"conversation_id": "c", "sender_id": "s", "preview": text}
        return str(await service.notify("chat_message", room=room, data=data))

    try:
        node_id = await node_id_of(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            await client.subscribe(room)
            await to_room("before")
            before = await client.notification()
            async with watch_deliveries(amqp, topology.room_key(room)) as deliveries:
                async with broker_cut(process_env, node_id):
                    in_replay = [await to_room("a"), await to_room("b")]
                    await deliveries.wait_for(uuid.UUID(in_replay[-1]))
                    replayed, _ = await client.subscribe(room, since=int(before["seq"]))
                    assert [f["id"] for f in replayed] == in_replay
                    after_replay = await to_room("c")  # committed after the room's snapshot
                    await deliveries.wait_for(uuid.UUID(after_replay))
                await edge.wait_for_line("caught up")
                live = await to_room("d")
            got = []
            with contextlib.suppress(TimeoutError):
                for _ in range(2):
                    got.append(str((await client.notification())["id"]))
            assert got == [after_replay, live], "the gap after the room's snapshot was lost"
            await client.nothing_more()
    finally:
        await edge.stop()


async def test_a_gap_too_large_to_catch_up_closes_with_1012_and_the_replay_has_it_all(
    service: NotificationService,
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    user_id: str,
) -> None:
    """Past EDGE_CATCH_UP_LIMIT deliveries routed while the edge had no queue, the edge does
    not send the gap itself: the socket closes with 1012, and the client's next connection
    with its cursor replays every notification of the gap, once, in order."""
    edge, port = await start_edge({**process_env, "EDGE_CATCH_UP_LIMIT": "4"})
    try:
        node_id = await node_id_of(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            before = (await publish_committed(service, amqp, [user_id], 2))[user_id]
            frames = [await client.notification() for _ in before]
            assert [f["id"] for f in frames] == before
            cursor = frames[-1]["seq"]
            async with broker_cut(process_env, node_id):
                gap = (await publish_committed(service, amqp, [user_id], 6))[user_id]
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        await edge.wait_for_line("too large")
        async with ws_client(f"ws://127.0.0.1:{port}", user_id, since=cursor) as again:
            assert [f["id"] for f in again.mine] == gap
            await again.nothing_more()
    finally:
        await edge.stop()
