"""An edge's queues deleted out from under its live connection, again and again: what a
RabbitMQ cluster does when it cleans up the queues of a node it lost after the edge already
declared them again on another node. Each time the edge declares a queue under a new name,
binds its keys, and catches up the gap; its clients miss nothing and get nothing twice. The
cluster queues (node reports, questions, replies) come back the same way. While an edge has no
queue, its /readyz says so."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CollectorRegistry

from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.e2e.test_edge_faults import chat
from tests.support import broker_admin
from tests.support.client import BROADCAST_TYPE, Client, ws_client
from tests.support.processes import NotifyProcess, start_dispatcher, start_edge
from tests.support.reports import connections_are, wait_for_reports
from tests.support.services import create_database, drop_database, own_vhost
from tests.support.tokens import admin_headers

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.usefixtures("dispatcher_process"),
    pytest.mark.skipif(not broker_admin.available(), reason="needs rabbitmqctl on this machine"),
]

ROUNDS = 3


def consuming(edge: NotifyProcess) -> str:
    """The queue the edge said it consumes last."""
    line = [line for line in edge.lines if "consuming notifications.edge." in line][-1]
    return line.split("consuming ", 1)[1].split()[0]


async def bound_to(amqp_url: str, queue: str) -> set[str]:
    return {
        key
        for source, destination, key in await broker_admin.list_bindings(amqp_url)
        if source == topology.DELIVER_EXCHANGE and destination == queue
    }


@pytest.mark.parametrize("seed", [11, 12])
async def test_an_edge_queue_deleted_under_it_is_declared_anew_and_nothing_is_missed(
    service: NotificationService,
    process_env: dict[str, str],
    user_id: str,
    seed: int,
) -> None:
    rng = random.Random(seed)
    url = process_env["AMQP_URL"]
    edge, port = await start_edge(process_env)
    try:
        first = consuming(edge)
        async with ws_client(f"ws://127.0.0.1:{port}", user_id) as client:
            sent = [str(await service.notify("chat_message", **chat(user_id, 0)))]
            assert (await client.notification())["id"] == sent[0]
            names = [first]
            for round_ in range(1, ROUNDS + 1):
                caught_up = sum("caught up" in line for line in edge.lines)
                await broker_admin.delete_queue(url, names[-1])
                # Some of these are routed before the edge sees its queue gone, some to no
                # queue at all, some to the next one: the client gets each once, in order.
                for i in range(rng.randint(1, 6)):
                    sent.append(str(await service.notify("chat_message", **chat(user_id, i))))
                    await asyncio.sleep(rng.random() / 50)
                await edge.wait_for_lines("caught up", caught_up + 1)
                names.append(consuming(edge))
                assert names[-1] == f"{first}.{round_ + 1}", "\n".join(edge.lines)
                assert await bound_to(url, names[-1]) == {
                    topology.BROADCAST_KEY,
                    topology.user_key(user_id),
                }
                assert not await bound_to(url, names[-2])
            sent.append(str(await service.notify("chat_message", **chat(user_id, 99))))
            got = [(await client.notification())["id"] for _ in sent[1:]]
            assert got == sent[1:]
            await client.nothing_more()
        assert not [line for line in edge.lines if "catch-up failed" in line]
    finally:
        await edge.stop()


async def test_the_cluster_queues_deleted_under_an_edge_come_back(
    amqp: AbstractRobustConnection,
    process_env: dict[str, str],
    edge_process: tuple[NotifyProcess, int],
    user_id: str,
) -> None:
    """A user's sockets on both edges are listed by either edge: the question reaches the
    other edge's question queue and its answer this edge's reply queue, both declared anew
    after every queue of the edges' cluster exchanges was deleted."""
    url = process_env["AMQP_URL"]
    spare, spare_port = await start_edge(process_env)
    try:
        async with (
            ws_client(f"ws://127.0.0.1:{edge_process[1]}", user_id),
            ws_client(f"ws://127.0.0.1:{spare_port}", user_id),
        ):
            await wait_for_reports(amqp, connections_are([1, 1]))
            exchanges = {topology.EDGE_STATS_EXCHANGE, topology.EDGE_CONTROL_EXCHANGE}
            doomed = {
                destination
                for source, destination, _ in await broker_admin.list_bindings(url)
                if source in exchanges and destination.startswith("amq.gen")
            }
            assert len(doomed) >= 4, doomed  # a report and a question queue on each edge
            needle = "the cluster queues declared again"
            before = [sum(needle in line for line in e.lines) for e in (spare, edge_process[0])]
            for queue in doomed:
                # The first deletion on an edge makes it close the others with their channel.
                await broker_admin.delete_queue(url, queue)
            await spare.wait_for_lines(needle, before[0] + 1)
            await edge_process[0].wait_for_lines(needle, before[1] + 1)
            left = await broker_admin.list_bindings(url)
            assert not doomed & {destination for _, destination, _ in left}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{spare_port}", headers=admin_headers()
            ) as http:
                listed = (await http.get(f"/ws/users/{user_id}/connections")).json()
            assert listed["count"] == 2, listed
    finally:
        await spare.stop()


async def test_readyz_says_unavailable_while_the_edge_has_no_queue(
    process_env: dict[str, str],
) -> None:
    """An edge cut from the broker has no queue: its /readyz answers 503 (broker unreachable)
    until it has connected again and declared a new one."""
    edge, port = await start_edge(process_env)
    node_id = consuming(edge).removeprefix(topology.edge_queue_name(""))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/readyz")).status_code == 200
            async with broker_admin.no_new_connections(process_env["AMQP_URL"]):
                closed = await broker_admin.close_connections_named(f"notify-edge {node_id}")
                assert closed == 1
                for _ in range(100):  # 10 s at most
                    answer = await http.get("/readyz")
                    if answer.status_code == 503:
                        break
                    await asyncio.sleep(0.1)
                assert answer.status_code == 503
                assert answer.json()["checks"]["broker"] == "unreachable"
            await edge.wait_for_line("declared again")
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await edge.stop()


CLIENTS = 30
ROOMS = 3
PUBLISHED = 240
FAULTS = 5


@pytest.fixture(scope="module")
async def own_pipeline(
    settings: Settings, process_env: dict[str, str]
) -> AsyncIterator[tuple[dict[str, str], NotificationService]]:
    """A dispatcher on a vhost and database of this module's own: the broadcasts of the
    random test stay out of the session's database, whose unread counts other tests check."""
    with own_vhost(settings.amqp_url) as amqp_url:
        database = await create_database(settings.database_url)
        env = {**process_env, "DATABASE_URL": database, "AMQP_URL": amqp_url}
        dispatcher = await start_dispatcher(env)
        own = Settings(database_url=database, amqp_url=amqp_url)
        service = NotificationService(
            Publisher(own, name="notify-tests edge queues", registry=CollectorRegistry()),
            producer="tests",
        )
        try:
            yield env, service
        finally:
            await service.publisher.close()
            await dispatcher.stop()
            await drop_database(database)


@pytest.mark.parametrize("seed", [21, 22, 23])
async def test_two_edges_clients_miss_nothing_while_one_loses_its_queue_at_random(
    own_pipeline: tuple[dict[str, str], NotificationService], seed: int
) -> None:
    """Thirty clients on two edges, in three rooms, while personal, room and broadcast
    notifications flow: one edge loses its queue again and again at random moments (deleted
    under it, its connection closed, both at once), the other keeps its own. Every client
    gets what it is owed exactly once, each stream in seq order."""
    process_env, service = own_pipeline
    rng = random.Random(seed)
    url = process_env["AMQP_URL"]
    tag = f"{seed}-{uuid.uuid4().hex[:6]}"
    users = [f"lose-{tag}-{i}" for i in range(CLIENTS)]
    rooms = [f"lose-{tag}-room-{i}" for i in range(ROOMS)]
    faulted, faulted_port = await start_edge(process_env)
    steady, steady_port = await start_edge(process_env)
    node_id = consuming(faulted).removeprefix(topology.edge_queue_name(""))
    frames: dict[str, list[dict[str, object]]] = {u: [] for u in users}
    arrived = asyncio.Condition()

    async def read(user: str, client: Client) -> None:
        while True:
            frame = await client.recv(timeout=120)
            if frame["type"] == "notification":
                async with arrived:
                    frames[user].append(frame)
                    arrived.notify_all()

    sent: list[tuple[str, str, str]] = []  # (id, audience, user or room)

    async def publish() -> None:
        for i in range(PUBLISHED):
            pick = rng.random()
            if pick < 0.5:
                user = rng.choice(users)
                sent.append((str(await service.notify("chat_message", **chat(user, i))),
                             "user", user))  # fmt: skip
            elif pick < 0.9:
                room = rng.choice(rooms)
                data = {"conversation_id": "c", "sender_id": "s", "preview": str(i)}
                sent.append((str(await service.notify("chat_message", room=room, data=data)),
                             "room", room))  # fmt: skip
            else:
                alert = {"title": "t", "message": str(i)}
                sent.append((str(await service.notify(BROADCAST_TYPE, broadcast=True, **alert)),
                             "broadcast", ""))  # fmt: skip

    async def lose_queues() -> list[str]:
        done = []
        for _ in range(FAULTS):
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            kind = rng.choice(["delete", "close", "both"])
            if kind in ("delete", "both"):
                await broker_admin.delete_queue(url, consuming(faulted))
            if kind in ("close", "both"):
                await broker_admin.close_connections_named(f"notify-edge {node_id}")
            done.append(kind)
        return done

    try:
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[str, tuple[Client, str]] = {}
            for i, user in enumerate(users):
                port = steady_port if i % 3 == 0 else faulted_port
                client = await stack.enter_async_context(ws_client(f"ws://127.0.0.1:{port}", user))
                room = rooms[i % ROOMS]
                await client.subscribe(room)
                clients[user] = (client, room)
            readers = [asyncio.create_task(read(u, c)) for u, (c, _) in clients.items()]
            try:
                _, kinds = await asyncio.gather(publish(), lose_queues())
                marker = str(await service.notify(BROADCAST_TYPE, broadcast=True, title="end",
                                                  message="end"))  # fmt: skip
                sent.append((marker, "broadcast", ""))

                def everyone_has_it() -> bool:
                    return all(marker in {f["id"] for f in got} for got in frames.values())

                async with arrived:
                    await asyncio.wait_for(arrived.wait_for(everyone_has_it), 60)
            finally:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            for client, _ in clients.values():
                await client.nothing_more()
    finally:
        await faulted.stop()
        await steady.stop()
    for user, (_, room) in clients.items():
        owed = [i for i, audience, to in sent
                if audience == "broadcast" or to in (user, room)]  # fmt: skip
        got = frames[user]
        ids = [str(f["id"]) for f in got]
        assert sorted(ids) == sorted(owed), (user, kinds, set(owed) ^ set(ids))
        for stream in (None, room):
            seqs = [int(str(f["seq"])) for f in got if f.get("room") == stream]
            assert seqs == sorted(seqs), (user, stream, kinds)
    assert not [line for line in faulted.lines if "catch-up failed" in line], kinds
    # The faults happened: the edge declared new queues.
    assert len([line for line in faulted.lines if "consuming notifications.edge." in line]) > 1
