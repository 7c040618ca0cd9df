"""The pipeline on a three-node RabbitMQ cluster loses a node under load: nothing is lost.

A private cluster (``tests.support.rabbitmq_cluster``) serves the whole module, each test in
a vhost and a database of its own. The real processes (one ``notify dispatcher``, two
``notify edge``) and the producers get an AMQP_URL listing all three nodes, each list starting
with the node a test wants the process on. Real WebSocket clients stay connected for the whole
run (each a user in a room of ten) while the producers publish a few hundred events a second
with broker confirms (``tests.chaos.harness.traffic``); then a node fails:

- the node leading the dispatcher's quorum queue is killed with SIGKILL (the leader is shown
  to move to another node);
- the leader is restarted cleanly (stopped and started again: it rejoins the cluster);
- the node an edge is connected to is killed (the edge's exclusive queue goes with it; the
  edge reconnects to another node, declares its queue and bindings there, and catches up).

Every process on the lost node fails over. The account is the chaos checker's
(``tests.chaos.harness.checker``): every confirmed event stored once, every stored event
received by each of its recipients on the connection they never left, in order, once; events
published without a confirm in time are counted as in doubt and accounted either way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest

from producers import topology
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.chaos.harness import checker
from tests.chaos.harness.clients import ChaosClient, Ledger
from tests.chaos.harness.cluster import process_env
from tests.chaos.harness.runner import stored_counts
from tests.chaos.harness.traffic import Traffic
from tests.support import rabbitmq_cluster
from tests.support.private_rabbitmq import PrivateRabbitMQ
from tests.support.processes import NotifyProcess, start_dispatcher, start_edge
from tests.support.rabbitmq_cluster import PrivateCluster
from tests.support.services import create_database, drop_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.skipif(
        not rabbitmq_cluster.available(), reason="rabbitmq-server is not installed here"
    ),
]

RATE = 300.0  # events/s
BEFORE = 3.0  # seconds of load before the fault
AFTER = 5.0  # seconds of load after it
AFTER_RESTART = 2.0  # after a restart, which itself takes several seconds under the load
CLIENTS_PER_EDGE = 40
ROOM_SIZE = 10
BROADCAST_EVERY = 2.0
PUBLISH_TIMEOUT = 10.0
SETTLE = 60.0  # at most this long for the log and the clients to have everything
POLL = 0.25


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[PrivateCluster]:
    async with rabbitmq_cluster.private_cluster() as started:
        yield started


@pytest.fixture
async def nodes(cluster: PrivateCluster) -> AsyncIterator[PrivateCluster]:
    """The module's cluster with all its nodes running (a node a test before lost is
    started again on its data)."""
    for node in cluster.nodes:
        if not node.running:
            await cluster.restart(node)
    yield cluster


@pytest.fixture
async def vhost(nodes: PrivateCluster) -> str:
    return await nodes.vhost()


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[str]:
    url = await create_database(settings.database_url)
    yield url
    await drop_database(url)


def urls_from(cluster: PrivateCluster, vhost: str, first: PrivateRabbitMQ) -> str:
    """AMQP_URL listing every node, ``first`` first (a process connects to it at start)."""
    others = [node for node in cluster.nodes if node is not first]
    return cluster.amqp_urls(vhost, [first, *others])


async def node_of_queue(cluster: PrivateCluster, vhost: str, queue: str) -> str:
    """The node a classic queue (an edge's) lives on, from its process id."""
    out = await cluster.ctl("list_queues", "-q", "--no-table-headers", "-p", vhost, "name", "pid")
    for line in out.splitlines():
        name, _, pid = line.partition("\t")
        if name == queue:
            return pid.strip("<>").split(".")[0]
    raise LookupError(f"no queue {queue} in {vhost}:\n{out}")


async def bound_keys(cluster: PrivateCluster, vhost: str, queue: str) -> set[str]:
    out = await cluster.ctl("list_bindings", "-q", "--no-table-headers", "-p", vhost,
                            "source_name", "destination_name", "routing_key")  # fmt: skip
    rows = [line.split("\t") for line in out.splitlines()]
    return {row[2] for row in rows if len(row) > 2 and row[0] and row[1] == queue}


@dataclass
class Edge:
    process: NotifyProcess
    port: int
    queue: str  # the queue of its first connection
    clients: list[ChaosClient] = field(default_factory=list)

    @property
    def current_queue(self) -> str:
        """The queue of its latest connection: each declares one under a new name."""
        lines = [line for line in self.process.lines if " consuming notifications.edge." in line]
        return lines[-1].rsplit(" ", 1)[1]


@dataclass
class Run:
    """The pipeline of one test on the cluster, and what it saw."""

    cluster: PrivateCluster
    vhost: str
    database: str
    dispatcher: NotifyProcess | None = None
    edges: list[Edge] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    rooms_of: dict[str, frozenset[str]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    async def start(self, dispatcher_on: PrivateRabbitMQ, edges_on: list[PrivateRabbitMQ]) -> None:
        env = process_env(self.database, urls_from(self.cluster, self.vhost, dispatcher_on))

        async def dispatcher() -> None:
            self.dispatcher = await start_dispatcher(env)

        async def edge_on(index: int, node: PrivateRabbitMQ) -> None:
            process, port = await start_edge(
                {**env, "AMQP_URL": urls_from(self.cluster, self.vhost, node)}
            )
            line = await process.wait_for_line("edge node")
            edges[index] = Edge(process, port, queue=line.rsplit(" ", 1)[1])

        # Started together; whatever started is stopped by ``stop`` even if another failed.
        edges: list[Edge | None] = [None] * len(edges_on)
        try:
            await asyncio.gather(dispatcher(), *(edge_on(i, n) for i, n in enumerate(edges_on)))
        finally:
            self.edges = [edge for edge in edges if edge is not None]

    async def stop(self) -> None:
        running = [e.process for e in self.edges]
        if self.dispatcher is not None:
            running.append(self.dispatcher)
        await asyncio.gather(*(p.stop() for p in running), return_exceptions=True)


async def connect_clients(run: Run) -> list[asyncio.Task[int | None]]:
    """``CLIENTS_PER_EDGE`` clients on each edge, ``ROOM_SIZE`` to a room; each stays
    connected until its task is cancelled. Returns once every one has had its replay."""
    rng = random.Random(17)
    sessions = []
    for e, edge in enumerate(run.edges):
        for i in range(CLIENTS_PER_EDGE):
            user = f"ha-{run.vhost[-8:]}-{e}-{i}"
            room = f"ha-{run.vhost[-8:]}-{e}-{i // ROOM_SIZE}"
            client = ChaosClient(user, room, [edge.port], run.ledger, rng)
            edge.clients.append(client)
            run.rooms_of[user] = frozenset((room,))
            sessions.append(asyncio.create_task(client.session(edge.port, None, None)))
    clients = [c for edge in run.edges for c in edge.clients]
    async with asyncio.timeout(30):
        await asyncio.gather(*(c.live.wait() for c in clients))
    return sessions


async def under_load(
    run: Run, fault: Callable[[], Awaitable[None]], after: float = AFTER
) -> checker.Account:
    """Clients connected, producers publishing; ``fault`` after ``BEFORE`` seconds, load for
    ``AFTER`` more; then the account once everything confirmed is stored and received."""
    producers_on = run.cluster.nodes[-1]
    settings = Settings(
        database_url=run.database,
        amqp_url=urls_from(run.cluster, run.vhost, producers_on),
        publish_timeout=PUBLISH_TIMEOUT,
    )
    service = NotificationService(Publisher(settings, name="notify-ha-tests"), producer="ha")
    sessions = await connect_clients(run)
    users = sorted(run.rooms_of)
    rooms = sorted({room for rooms in run.rooms_of.values() for room in rooms})
    traffic = Traffic(service, users, rooms, RATE, BROADCAST_EVERY, random.Random(7))
    stop = asyncio.Event()
    load = asyncio.create_task(traffic.run(stop))
    await asyncio.sleep(BEFORE)  # the load itself, before the fault: nothing to await
    began = time.monotonic()
    await fault()
    run.figures["fault_seconds"] = round(time.monotonic() - began, 1)
    await asyncio.sleep(after)  # the load after the fault
    stop.set()
    await load
    await traffic.drain(PUBLISH_TIMEOUT + 5)
    await service.close()
    run.figures["rate"] = round(traffic.achieved_rate())
    run.figures["publish_errors"] = dict(traffic.errors)

    ledger = traffic.ledger()
    confirmed = {event_id for event_id, sent in ledger.items() if sent.confirmed}
    settled_at = time.monotonic()
    try:
        account = await settled(run, ledger, confirmed)
    finally:
        for session in sessions:
            session.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
    run.figures["settled_seconds"] = round(time.monotonic() - settled_at, 1)
    run.figures["account"] = account.counts()
    return account


async def settled(
    run: Run, ledger: dict[str, checker.Sent], confirmed: set[str]
) -> checker.Account:
    """The account once every confirmed event is in the log and every stored one reached
    its recipients (or ``SETTLE`` seconds passed: the account then says what is missing).
    Neither the log nor the clients announce "everything": both are looked at every POLL."""
    deadline = time.monotonic() + SETTLE
    while True:
        stored = await stored_counts(run.database)
        account = checker.check(ledger, stored, list(run.ledger.seen), run.rooms_of,
                                dict(run.ledger.marks))  # fmt: skip
        done = confirmed.issubset(stored) and account.lost == 0
        if done or time.monotonic() > deadline:
            return account
        await asyncio.sleep(POLL)


def assert_clean(run: Run, account: checker.Account) -> None:
    print(f"\n{run.figures}\n{checker.table(account)}")  # shown with -s, and on failure
    assert account.passed, checker.table(account) + f"\n{account.examples}"
    assert account.duplicates == 0, account.examples
    assert account.stored_never_sent == 0
    assert account.confirmed > 0 and account.deliveries_expected > 0
    # Nobody was disconnected: every frame reached the connection it was owed on.
    assert sum(run.ledger.close_codes.values()) == len(run.rooms_of), run.ledger.close_codes
    assert run.ledger.connections == len(run.rooms_of)
    processes = [*(e.process for e in run.edges), run.dispatcher]
    for proc in processes:
        assert proc is not None and proc.returncode is None, f"{proc and proc.name} exited"
        assert not any("Traceback" in line for line in proc.lines), "\n".join(proc.lines)


async def declare_led_by(cluster: PrivateCluster, vhost: str, node: PrivateRabbitMQ) -> None:
    """Declare the dispatcher queue from ``node``: its leader starts there (RabbitMQ places
    a new quorum queue's leader on the declaring node)."""
    connection = await aio_pika.connect(cluster.amqp_urls(vhost, [node]))
    try:
        channel = await connection.channel()
        await topology.declare_dispatcher_queue(channel, Settings().dispatcher_delivery_limit)
    finally:
        await connection.close()


async def test_killing_the_quorum_queue_leader_under_load_loses_nothing(
    nodes: PrivateCluster, vhost: str, database: str
) -> None:
    leader = nodes.nodes[1]
    await declare_led_by(nodes, vhost, leader)
    queue = topology.DISPATCHER_QUEUE
    assert await nodes.leader(vhost, queue) is leader
    # Replicated on every node of the cluster.
    assert await nodes.members(vhost, queue) == sorted(n.node for n in nodes.nodes)
    other = nodes.nodes[0]
    run = Run(nodes, vhost, database)
    new_leader: list[PrivateRabbitMQ] = []

    async def kill_the_leader() -> None:
        await nodes.kill(leader)
        new_leader.append(await nodes.await_leader(vhost, queue, not_on=leader))

    try:
        # The dispatcher and one edge on the leader's node, the other edge elsewhere.
        await run.start(dispatcher_on=leader, edges_on=[leader, other])
        account = await under_load(run, kill_the_leader)
        run.figures["leader"] = f"{leader.node} -> {new_leader[0].node}"
        assert new_leader[0] is not leader
        assert await nodes.leader(vhost, queue) is not leader
        # The dispatcher and the edge on the killed node came back on another node.
        assert run.dispatcher is not None
        await run.dispatcher.wait_for_line("connected to RabbitMQ at")
        await run.edges[0].process.wait_for_line("caught up")
        edge = run.edges[0]
        assert edge.current_queue.startswith(f"{edge.queue}.")
        assert await node_of_queue(nodes, vhost, edge.current_queue) != leader.node
        assert_clean(run, account)
    finally:
        await run.stop()


async def test_restarting_the_leader_node_under_load_loses_nothing(
    nodes: PrivateCluster, vhost: str, database: str
) -> None:
    leader = nodes.nodes[2]
    await declare_led_by(nodes, vhost, leader)
    queue = topology.DISPATCHER_QUEUE
    run = Run(nodes, vhost, database)
    seen: dict[str, str] = {}

    async def restart_the_leader() -> None:
        await nodes.halt(leader)
        seen["while_down"] = (await nodes.await_leader(vhost, queue, not_on=leader)).node
        await nodes.restart(leader)
        seen["members_online"] = (await nodes.queue_info(vhost, queue))["online"]

    try:
        await run.start(dispatcher_on=leader, edges_on=[leader, nodes.nodes[0]])
        account = await under_load(run, restart_the_leader, after=AFTER_RESTART)
        run.figures["leader"] = f"{leader.node} -> {seen['while_down']} (while it was down)"
        assert seen["while_down"] != leader.node
        # Back in the cluster, and a member of the queue again.
        assert rabbitmq_cluster.parse_nodes(seen["members_online"]) == sorted(
            n.node for n in nodes.nodes
        )
        await run.edges[0].process.wait_for_line("caught up")
        assert_clean(run, account)
    finally:
        await run.stop()


async def test_an_edge_whose_node_is_killed_rebinds_on_another_and_its_clients_miss_nothing(
    nodes: PrivateCluster, vhost: str, database: str
) -> None:
    leader, lost = nodes.nodes[0], nodes.nodes[1]
    await declare_led_by(nodes, vhost, leader)
    run = Run(nodes, vhost, database)
    marks: dict[str, Any] = {}

    async def kill_the_edges_node() -> None:
        edge = run.edges[0]
        assert await node_of_queue(nodes, vhost, edge.queue) == lost.node
        marks["keys_before"] = await bound_keys(nodes, vhost, edge.queue)
        after = len(edge.process.lines)
        await nodes.kill(lost)
        await edge.process.wait_for_line("caught up", after=after)

    try:
        await run.start(dispatcher_on=leader, edges_on=[lost, nodes.nodes[2]])
        edge = run.edges[0]
        account = await under_load(run, kill_the_edges_node)
        # A queue of the new connection's own, under a new name: a cleanup of the lost node's
        # queue by name cannot take it.
        queue = edge.current_queue
        assert queue.startswith(f"{edge.queue}.")
        moved_to = await node_of_queue(nodes, vhost, queue)
        keys_after = await bound_keys(nodes, vhost, queue)
        run.figures["edge_queue"] = f"{edge.queue} on {lost.node} -> {queue} on {moved_to}"
        assert moved_to != lost.node
        # Every key its clients wanted is bound again on the new node, and broadcast too.
        wanted = {topology.user_key(c.user_id) for c in edge.clients}
        wanted |= {topology.room_key(c.room) for c in edge.clients}
        assert wanted | {topology.BROADCAST_KEY} <= keys_after
        assert marks["keys_before"] <= keys_after
        assert_clean(run, account)
    finally:
        await run.stop()
