"""A private RabbitMQ cluster of three nodes, for the tests that lose a broker node.

Each node is a ``PrivateRabbitMQ`` (its own name, AMQP and distribution ports, data and log
directories, 127.0.0.1 only) and all share one Erlang cookie; the second and third join the
first with ``rabbitmqctl join_cluster``. The machine's shared broker is never touched. Nodes
are started and stopped by the tests, each by its own PID: ``kill`` is ``kill -9`` of one node,
``start`` brings it back on its data (it rejoins the cluster by itself), ``halt`` stops it
cleanly. ``leader`` tells which node leads a quorum queue, from ``rabbitmqctl list_queues``.

Starting the three takes some seconds: a test module shares one cluster (see
``tests/e2e/test_broker_ha.py``), each test in a vhost of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Sequence
from urllib.parse import quote

from tests.support.private_rabbitmq import PrivateRabbitMQ, available

__all__ = ["PrivateCluster", "available", "private_cluster"]

SIZE = 3
# How long a change of the cluster (a node seen down, a leader elected) may take to show.
SETTLE_TIMEOUT = 30.0
POLL = 0.2


class PrivateCluster:
    def __init__(self, size: int = SIZE, addresses: tuple[str, ...] = ("127.0.0.1",)) -> None:
        """``addresses``: where each node's AMQP port listens (see ``PrivateRabbitMQ``)."""
        cookie = secrets.token_hex(16).upper()
        prefix = f"notify-ha-{secrets.token_hex(3)}"
        self.nodes = [
            PrivateRabbitMQ(cookie=cookie, name=f"{prefix}-{i}", addresses=addresses)
            for i in range(size)
        ]

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            await node.ctl("stop_app")
            await node.ctl("join_cluster", first.node)
            await node.ctl("start_app")
            await node.ctl("await_startup")
        await self.await_running(len(self.nodes))

    async def stop(self) -> None:
        """Stop every node by its PID and remove its directory, whatever happens."""
        await asyncio.gather(*(node.stop() for node in self.nodes), return_exceptions=True)

    async def kill(self, node: PrivateRabbitMQ) -> None:
        """``kill -9`` ``node`` (its peers see its distribution link close at once)."""
        await node.kill()

    async def restart(self, node: PrivateRabbitMQ) -> None:
        """Start ``node`` again on its data (killed or halted): it rejoins the cluster, and
        its start is complete (``rabbitmqctl await_startup``) once it has."""
        await node.start()

    async def halt(self, node: PrivateRabbitMQ) -> None:
        """Stop ``node`` cleanly, keeping its data for ``restart``."""
        await node.halt()

    @property
    def running(self) -> list[PrivateRabbitMQ]:
        return [node for node in self.nodes if node.running]

    def by_name(self, name: str) -> PrivateRabbitMQ:
        return next(node for node in self.nodes if node.node == name)

    # -- addresses -------------------------------------------------------------------------

    def amqp_urls(
        self,
        vhost: str = "/",
        nodes: Sequence[PrivateRabbitMQ] | None = None,
        host: str = "127.0.0.1",
    ) -> str:
        """``AMQP_URL`` listing every node (or ``nodes``), comma-separated, for ``vhost``, at
        ``host`` (one of the nodes' addresses)."""
        path = quote(vhost, safe="")
        return ",".join(
            f"amqp://guest:guest@{host}:{node.port}/{path}" for node in nodes or self.nodes
        )

    async def vhost(self) -> str:
        """A fresh vhost of the cluster (created on one node, seen by all). It goes with the
        cluster: deleting one whose quorum queues lost a node takes seconds for nothing."""
        name = f"notify-ha-{uuid.uuid4().hex[:8]}"
        await self.ctl("add_vhost", name)
        await self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return name

    # -- questions -------------------------------------------------------------------------

    async def ctl(self, *args: str) -> str:
        """``rabbitmqctl`` on the first running node."""
        return await self.running[0].ctl(*args)

    async def cluster_running(self, via: PrivateRabbitMQ | None = None) -> list[str]:
        """The names of the nodes the cluster sees running (asked of ``via``)."""
        out = await (via or self.running[0]).ctl(
            "eval", '[io:format("node ~s~n", [N]) || N <- rabbit_nodes:all_running()], ok.'
        )
        return sorted(line[5:] for line in out.splitlines() if line.startswith("node "))

    async def await_running(self, count: int, via: PrivateRabbitMQ | None = None) -> None:
        """Wait until the cluster sees ``count`` nodes running (the broker announces no such
        change: it is asked every ``POLL`` seconds)."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                if len(await self.cluster_running(via)) == count:
                    return
                await asyncio.sleep(POLL)

    async def queue_info(self, vhost: str, queue: str) -> dict[str, str]:
        """The quorum queue's leader, members and online members (node names)."""
        out = await self.ctl("list_queues", "-q", "--no-table-headers", "-p", vhost,
                             "name", "leader", "members", "online")  # fmt: skip
        for line in out.splitlines():
            fields = line.split("\t")
            if fields and fields[0] == queue:
                return {"leader": fields[1], "members": fields[2], "online": fields[3]}
        raise LookupError(f"no queue {queue!r} in vhost {vhost!r}:\n{out}")

    async def leader(self, vhost: str, queue: str) -> PrivateRabbitMQ:
        """The node that leads the quorum queue ``queue``."""
        return self.by_name((await self.queue_info(vhost, queue))["leader"])

    async def members(self, vhost: str, queue: str) -> list[str]:
        return parse_nodes((await self.queue_info(vhost, queue))["members"])

    async def await_leader(
        self, vhost: str, queue: str, not_on: PrivateRabbitMQ
    ) -> PrivateRabbitMQ:
        """Wait until a running node other than ``not_on`` leads the queue; that node."""
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while True:
                with contextlib.suppress(RuntimeError, LookupError, StopIteration):
                    leader = await self.leader(vhost, queue)
                    if leader is not not_on and leader.running:
                        return leader
                await asyncio.sleep(POLL)


def parse_nodes(text: str) -> list[str]:
    """``[a@h,b@h]`` (as list_queues prints a list of nodes) as names."""
    return sorted(part.strip(" []'\"") for part in text.split(",") if part.strip(" []"))


@contextlib.asynccontextmanager
async def private_cluster(
    size: int = SIZE, addresses: tuple[str, ...] = ("127.0.0.1",)
) -> AsyncIterator[PrivateCluster]:
    cluster = PrivateCluster(size, addresses)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
