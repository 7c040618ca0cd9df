"""Injecting the scheduled faults, each one followed by the recovery an operator would do
(a new process, the broker's app started again, the database started again), and a record of
what was seen: an outcome per fault, and a line for each fault that cannot run here."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

from tests.chaos.harness.clients import ChaosClient
from tests.chaos.harness.cluster import Cluster, Role, Services
from tests.chaos.harness.schedule import Fault
from tests.chaos.harness.traffic import Traffic

log = logging.getLogger("notify.chaos")

BROKER_OUTAGE = 3.0  # seconds the RabbitMQ app stays stopped
LIVE_WAIT = 30.0
# The client's receive buffer is small, but the server's kernel send buffer grows up to
# net.ipv4.tcp_wmem's maximum (4 MiB by default) before the edge's own buffer fills.
SLOW_BURST = 6 * 1024 * 1024
SLOW_CLOSE_WAIT = 45.0


@dataclass
class Outcome:
    at: float
    kind: str
    target: str
    ok: bool
    detail: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    def __init__(
        self,
        cluster: Cluster,
        services: Services,
        clients: list[ChaosClient],
        traffic: Traffic,
    ) -> None:
        self.cluster = cluster
        self.services = services
        self.clients = clients
        self.traffic = traffic
        self.outcomes: list[Outcome] = []
        self.skipped: list[str] = []

    async def run(self, plan: list[Fault], started_at: float) -> None:
        """Inject each fault at its time (relative to ``started_at``, the loop's clock)."""
        loop = asyncio.get_running_loop()
        for fault in plan:
            delay = started_at + fault.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule's own clock, nothing to await
            reason = self.services.skipped.get(fault.kind)
            if reason is not None:
                line = f"{fault.kind} at {fault.at:.0f}s skipped: {reason}"
                log.warning(line)
                self.skipped.append(line)
                continue
            began = time.monotonic()
            log.warning("fault at %.1fs: %s on %s", fault.at, fault.kind, fault.target)
            try:
                outcome = await self.inject(fault)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a fault that breaks is a finding to report
                log.exception("fault %s failed", fault.kind)
                outcome = Outcome(fault.at, fault.kind, str(fault.target), False, repr(exc))
            outcome.seconds = round(time.monotonic() - began, 2)
            self.outcomes.append(outcome)
            log.warning("fault %s: %s (%s)", fault.kind, "ok" if outcome.ok else "FAILED",
                        outcome.detail)  # fmt: skip
            await self.cluster.revive_crashed()

    async def inject(self, fault: Fault) -> Outcome:
        kind = fault.kind
        if kind == "dispatcher_kill":
            return await self._signal_and_restart(fault, self.cluster.dispatchers[fault.target],
                                                  signal.SIGKILL, -signal.SIGKILL)  # fmt: skip
        if kind == "edge_kill":
            return await self._signal_and_restart(fault, self.cluster.edges[fault.target],
                                                  signal.SIGKILL, -signal.SIGKILL)  # fmt: skip
        if kind == "edge_term":
            return await self._signal_and_restart(fault, self.cluster.edges[fault.target],
                                                  signal.SIGTERM, 0)  # fmt: skip
        if kind == "rabbitmq_restart":
            return await self._rabbitmq_restart(fault)
        if kind == "postgres_restart":
            return await self._postgres_restart(fault)
        if kind == "slow_consumer":
            return await self._slow_consumer(fault)
        raise ValueError(f"unknown fault kind {kind!r}")

    async def _signal_and_restart(
        self, fault: Fault, role: Role, sig: int, expected: int
    ) -> Outcome:
        code = await self.cluster.signal(role, sig)
        await self.cluster.restart(role)
        name = signal.Signals(sig).name
        detail = f"{name}: exit status {code} (expected {expected}); started again"
        return Outcome(fault.at, fault.kind, role.name, code == expected, detail)

    async def _rabbitmq_restart(self, fault: Fault) -> Outcome:
        node = self.services.rabbitmq
        assert node is not None
        await node.stop_app()
        await asyncio.sleep(BROKER_OUTAGE)  # the length of the outage is the fault itself
        await node.start_app()
        return Outcome(fault.at, fault.kind, "rabbitmq", True,
                       f"stop_app, {BROKER_OUTAGE:g}s down, start_app")  # fmt: skip

    async def _postgres_restart(self, fault: Fault) -> Outcome:
        server = self.services.postgres
        assert server is not None
        await asyncio.to_thread(server.stop, "fast")
        await asyncio.to_thread(server.start)
        return Outcome(fault.at, fault.kind, "postgres", True, "pg_ctl stop -m fast, start")

    async def _slow_consumer(self, fault: Fault) -> Outcome:
        client = self.clients[fault.target % len(self.clients)]
        await asyncio.wait_for(client.live.wait(), LIVE_WAIT)
        port = client.port
        role = next(r for r in self.cluster.edges if r.port == port)
        assert role.process is not None
        process, mark = role.process, len(role.process.lines)
        if not client.stall():
            return Outcome(fault.at, fault.kind, client.user_id, False, "no open socket")
        try:
            await self.traffic.burst(client.user_id, SLOW_BURST)
            needle = f"user={client.user_id} open>: it does not read its frames"
            await process.wait_for_line(needle, timeout=SLOW_CLOSE_WAIT, after=mark)
        finally:
            client.resume()
        await asyncio.wait_for(client.ended.wait(), SLOW_CLOSE_WAIT)
        code = client.last_close
        return Outcome(fault.at, fault.kind, client.user_id, code == 1013,
                       f"edge {role.name} closed the stalled socket; client saw close code "
                       f"{code} (expected 1013), then reconnects and replays")  # fmt: skip
