"""The chaos run across hosts (``python -m tests.chaos --cluster``): the pipeline spread over
network namespaces (``tests.support.netns``) against a three-node RabbitMQ cluster, and the
faults of a cluster and a network.

- The root namespace holds the three broker nodes and a private PostgreSQL (listening on the
  ``core`` bridge's address as well as 127.0.0.1), nginx (on the ``front`` bridge's address)
  and the harness's producers (on 127.0.0.1).
- ``edge-0`` and ``edge-1``: one ``notify edge`` each, on ``core`` (broker, database) and
  ``front`` (nginx); ``dispatcher``: both ``notify dispatcher`` processes, on ``core`` only;
  ``client``: every WebSocket client's socket, on ``front`` only, through nginx.

The faults, each with what shows it happened:

- ``leader_kill``: ``kill -9`` of the node leading the dispatcher quorum queue; the leader
  before and after (asked of the cluster), then the node started again on its data;
- ``node_restart``: a node that does not lead the queue stopped cleanly and started again; the
  queue's online members before, while it is down, and after;
- ``edge_cut``: the link to ``core`` of the edge host with the most sockets down at the
  bridge (broker and database out of reach) for ``CUT`` seconds while its clients' sockets
  stay open on ``front``; the link's state and the edge's established sockets before, during
  and after;
- ``dispatcher_partition``: the dispatcher host's only link down for ``PARTITION`` seconds and
  back; the link's state and the dispatchers' PIDs before and after;
- ``edge_host_loss``: an edge host lost (its edge killed with ``kill -9``, its links down) for
  ``LOSS`` seconds: its clients come back through nginx on the other edge (that edge's
  established sockets before and after); then the host comes back with a new edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.database import migrate
from producers import topology
from tests.chaos.harness.clients import ChaosClient
from tests.chaos.harness.cluster import Cluster, Role, Services, process_env
from tests.chaos.harness.faults import FaultInjector, Outcome
from tests.chaos.harness.schedule import Fault
from tests.chaos.harness.traffic import Traffic
from tests.support import netns, nginx
from tests.support import private_postgres as pg_support
from tests.support import rabbitmq_cluster as mq_cluster
from tests.support.processes import NotifyProcess, free_port

log = logging.getLogger("notify.chaos")

HOST_FAULT_KINDS = (
    "leader_kill",
    "node_restart",
    "edge_cut",
    "dispatcher_partition",
    "edge_host_loss",
)
EDGE_PORT = 8000  # each edge host has its own addresses: the same port on both
VHOST = "/"
QUEUE = topology.DISPATCHER_QUEUE
NODE_DOWN = 3.0  # seconds a killed or stopped node stays down
CUT = 8.0  # seconds an edge host is cut from the broker (under the AMQP heartbeat's 60 s)
PARTITION = 8.0  # seconds the dispatcher host is partitioned away
LOSS = 10.0  # seconds an edge host is gone


def available() -> str | None:
    """Why the run across hosts cannot run here, or None."""
    if not netns.available():
        return "network namespaces need root and iproute2"
    if not mq_cluster.available():
        return "no RabbitMQ server binaries for a private cluster"
    if not (pg_support.BIN / "initdb").exists():
        return f"no PostgreSQL server binaries in {pg_support.BIN} (set PG_BIN)"
    if nginx.binary() is None:
        return "nginx is not installed"
    return None


@dataclass(kw_only=True)
class HostedServices(Services):
    hosts: netns.Hosts
    brokers: mq_cluster.PrivateCluster
    host_database_url: str  # from inside the hosts: the core bridge's address
    host_amqp_url: str


@contextlib.asynccontextmanager
async def hosted_services() -> AsyncIterator[HostedServices]:
    """The hosts, the broker cluster and PostgreSQL, all removed at the end whatever happens."""
    why = available()
    if why is not None:
        raise RuntimeError(f"the run across hosts cannot run here: {why}")
    with netns.hosts(netns.PIPELINE) as hosts:
        core = hosts.gateway("core")
        core_net = core.rsplit(".", 1)[0] + ".0/24"
        async with mq_cluster.private_cluster(addresses=("127.0.0.1", core)) as brokers:
            with pg_support.private_postgres((core_net,)) as postgres:
                await migrate(postgres.url)
                yield HostedServices(
                    database_url=postgres.url,
                    amqp_url=brokers.amqp_urls(VHOST),
                    rabbitmq=None,
                    postgres=postgres,
                    hosts=hosts,
                    brokers=brokers,
                    host_database_url=postgres.url.replace("127.0.0.1", core),
                    host_amqp_url=brokers.amqp_urls(VHOST, host=core),
                )


class HostedCluster(Cluster):
    """Two dispatchers on the dispatcher host, an edge on each edge host, nginx in front."""

    def __init__(self, services: HostedServices, log_dir: Path) -> None:
        env = process_env(services.host_database_url, services.host_amqp_url)
        env["TRUSTED_PROXIES"] = services.hosts.gateway("front")
        super().__init__(env, log_dir)
        self.services = services
        self.hosts = services.hosts
        for role in self.edges:
            role.port = EDGE_PORT
        self.proxy_port = free_port()
        self.nginx_pid: int | None = None
        self._nginx = contextlib.AsyncExitStack()
        self._nginx_dir = Path(tempfile.mkdtemp(prefix="notify-chaos-nginx-"))

    @property
    def proxy(self) -> tuple[str, int]:
        """Where clients connect: nginx on the front bridge."""
        return self.hosts.gateway("front"), self.proxy_port

    def host_of(self, role: Role) -> netns.Host:
        return self.hosts["dispatcher" if role.name.startswith("dispatcher") else role.name]

    def client_socket(self) -> Any:
        return self.hosts["client"].socket()

    async def start(self) -> None:
        await super().start()
        host, port = self.proxy
        edges = [f"{self.hosts[r.name].address('front')}:{EDGE_PORT}" for r in self.edges]
        self.nginx_pid = await self._nginx.enter_async_context(
            nginx.running(self._nginx_dir, f"{host}:{port}", edges)
        )

    async def start_role(self, role: Role) -> None:
        prefix = self.host_of(role).exec_prefix
        if role.name.startswith("dispatcher"):
            proc = NotifyProcess(f"notify dispatcher {role.name}", ["dispatcher"], self.env,
                                 prefix=prefix)  # fmt: skip
            role.process = await proc.start("dispatcher consuming")
        else:
            address = self.hosts[role.name].address("front")
            args = ["edge", "--host", address, "--port", str(EDGE_PORT)]
            proc = NotifyProcess(f"notify edge {role.name}", args, self.env, prefix=prefix)
            role.process = await proc.start("Uvicorn running on")
        role.expected_exit = False

    async def stop(self) -> None:
        await self._nginx.aclose()
        await super().stop()

    def describe(self) -> dict[str, Any]:
        """The hosts and their addresses, for the report."""
        return {
            "root": {"core": self.hosts.gateway("core"), "front": self.hosts.gateway("front"),
                     "runs": "3 RabbitMQ nodes and PostgreSQL on core, nginx on front, "
                             "the producers on 127.0.0.1"},
            **{name: {net: link.address for net, link in host.links.items()}
               for name, host in self.hosts.hosts.items()},
            "brokers": [node.node for node in self.services.brokers.nodes],
        }  # fmt: skip


class HostFaultInjector(FaultInjector):
    def __init__(
        self,
        cluster: HostedCluster,
        services: HostedServices,
        clients: list[ChaosClient],
        traffic: Traffic,
    ) -> None:
        super().__init__(cluster, services, clients, traffic)
        self.hosted = cluster
        self.brokers = services.brokers

    async def inject(self, fault: Fault) -> Outcome:
        kind = fault.kind
        if kind == "leader_kill":
            return await self._leader_kill(fault)
        if kind == "node_restart":
            return await self._node_restart(fault)
        if kind == "edge_cut":
            return await self._edge_cut(fault)
        if kind == "dispatcher_partition":
            return await self._dispatcher_partition(fault)
        if kind == "edge_host_loss":
            return await self._edge_host_loss(fault)
        return await super().inject(fault)

    async def _leader_kill(self, fault: Fault) -> Outcome:
        leader = await self.brokers.leader(VHOST, QUEUE)
        await self.brokers.kill(leader)
        new = await self.brokers.await_leader(VHOST, QUEUE, not_on=leader)
        await asyncio.sleep(NODE_DOWN)  # the node stays down a while: that is the fault
        await self.brokers.restart(leader)
        await self.brokers.await_running(len(self.brokers.nodes))
        after = await self.brokers.queue_info(VHOST, QUEUE)
        detail = (f"kill -9 of the leader {leader.node}: leader {leader.node} -> {new.node}; "
                  f"started again, online {after['online']}, "
                  f"leader now {after['leader']}")  # fmt: skip
        return Outcome(fault.at, fault.kind, leader.node, new is not leader, detail)

    async def _node_restart(self, fault: Fault) -> Outcome:
        leader = await self.brokers.leader(VHOST, QUEUE)
        others = [n for n in self.brokers.nodes if n is not leader]
        node = others[fault.target % len(others)]
        before = (await self.brokers.queue_info(VHOST, QUEUE))["online"]
        await self.brokers.halt(node)
        await self.brokers.await_running(len(self.brokers.nodes) - 1)
        during = (await self.brokers.queue_info(VHOST, QUEUE))["online"]
        await asyncio.sleep(NODE_DOWN)
        await self.brokers.restart(node)
        await self.brokers.await_running(len(self.brokers.nodes))
        after = await self.brokers.queue_info(VHOST, QUEUE)
        ok = node.node not in mq_cluster.parse_nodes(during) and len(
            mq_cluster.parse_nodes(after["online"])
        ) == len(self.brokers.nodes)
        detail = (f"{node.node} stopped and started again (leader {leader.node} -> "
                  f"{after['leader']}); queue online {before} -> {during} -> "
                  f"{after['online']}")  # fmt: skip
        return Outcome(fault.at, fault.kind, node.node, ok, detail)

    async def _edge_cut(self, fault: Fault) -> Outcome:
        # The edge holding the most sockets (after a host loss, nginx's least_conn refills the
        # new edge only as clients come and go).
        by_sockets = sorted(
            self.cluster.edges, key=lambda r: -self.hosted.hosts[r.name].established(EDGE_PORT)
        )
        role = by_sockets[0]
        host = self.hosted.hosts[role.name]
        before = (host.state("core"), host.established(EDGE_PORT))
        host.cut("core")
        try:
            await asyncio.sleep(CUT / 2)
            during = (host.state("core"), host.established(EDGE_PORT))
            await asyncio.sleep(CUT / 2)
        finally:
            host.mend("core")
        await asyncio.sleep(1.0)
        after = (host.state("core"), host.established(EDGE_PORT))
        ok = "DOWN" in during[0] and during[1] > 0 and after[0].count("UP") == 2
        detail = (f"{role.name} cut from the broker for {CUT:g}s: core link {before[0]} -> "
                  f"{during[0]} -> {after[0]}; its open sockets {before[1]} -> {during[1]} "
                  f"(cut) -> {after[1]}")  # fmt: skip
        return Outcome(fault.at, fault.kind, role.name, ok, detail)

    async def _dispatcher_partition(self, fault: Fault) -> Outcome:
        host = self.hosted.hosts["dispatcher"]
        pids = [r.process.pid for r in self.cluster.dispatchers if r.process is not None]
        host.cut("core")
        try:
            await asyncio.sleep(PARTITION / 2)
            during = host.state("core")
            await asyncio.sleep(PARTITION / 2)
        finally:
            host.mend("core")
        await asyncio.sleep(1.0)
        after = host.state("core")
        alive = [r.process.pid for r in self.cluster.dispatchers
                 if r.process is not None and r.process.returncode is None]  # fmt: skip
        ok = "DOWN" in during and after.count("UP") == 2
        detail = (f"dispatcher host partitioned away for {PARTITION:g}s: link {during} -> "
                  f"{after}; dispatcher PIDs {pids} before, {alive} running after")  # fmt: skip
        return Outcome(fault.at, fault.kind, "dispatcher", ok, detail)

    async def _edge_host_loss(self, fault: Fault) -> Outcome:
        role = self.cluster.edges[fault.target]
        other = next(r for r in self.cluster.edges if r is not role)
        host, other_host = self.hosted.hosts[role.name], self.hosted.hosts[other.name]
        before = (host.established(EDGE_PORT), other_host.established(EDGE_PORT))
        # The host goes: its edge dies first (its peers see the connections close), then its
        # links (nothing reaches it any more, nginx's connects to it time out).
        code = await self.cluster.signal(role, signal.SIGKILL)
        for net in host.links:
            host.cut(net)
        try:
            await asyncio.sleep(LOSS)
            states = {net: host.state(net) for net in host.links}
            moved = other_host.established(EDGE_PORT)
        finally:
            for net in host.links:
                host.mend(net)
        await self.cluster.restart(role)
        ok = (
            code == -signal.SIGKILL
            and moved > before[1]
            and all("DOWN" in s for s in states.values())
        )
        detail = (f"{role.name} lost for {LOSS:g}s (edge exit {code}, links {states}); sockets "
                  f"{role.name}/{other.name}: {before[0]}/{before[1]} before, 0/{moved} while "
                  f"it was gone; back with a new edge")  # fmt: skip
        return Outcome(fault.at, fault.kind, role.name, ok, detail)
