"""One chaos run from start to verdict.

1. Private services, then two dispatchers and two edges on them.
2. N clients come and go; producers publish at the given rate; faults follow the seeded plan;
   the RSS of every process is sampled.
3. The end: producers stop, crashed processes are started again, every confirmed event is
   awaited in the log (bounded), a quiet period lets live frames arrive, the clients leave,
   and each comes back once more to replay what it missed.
4. The checker's account, printed as a table and written as JSON.

Every process the run starts is stopped by its PID, and the private services are removed, on
success, on error and on Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from dispatcher.database import create_engine
from producers.publisher import Publisher
from producers.service import NotificationService
from producers.settings import Settings
from tests.chaos.harness import checker, schedule
from tests.chaos.harness.clients import ChaosClient, Ledger
from tests.chaos.harness.cluster import (
    Cluster,
    Services,
    postmaster_pid,
    private_services,
    process_env,
    rss_of,
    rss_of_tree,
)
from tests.chaos.harness.faults import FaultInjector
from tests.chaos.harness.hosts import (
    HostedCluster,
    HostedServices,
    HostFaultInjector,
    hosted_services,
)
from tests.chaos.harness.traffic import Traffic

log = logging.getLogger("notify.chaos")

PUBLISH_TIMEOUT = 30.0
STORE_WAIT = 90.0
QUIET = 3.0
FINAL_CONCURRENCY = 50
CLIENTS_PER_ROOM = 10
NEAR = 300  # seqs around a lost one that its explanation shows


@dataclass
class ChaosConfig:
    duration: float = 300.0
    clients: int = 1000
    rate: float = 500.0
    seed: int = 7
    faults: bool = True
    fault_every: float = 20.0
    broadcast_every: float = 5.0
    sample_every: float = 10.0
    output: Path | None = None
    kinds: tuple[str, ...] = schedule.FAULT_KINDS
    cursor_from_live: bool = True  # see ChaosClient
    hosts: bool = False  # across network namespaces, on a broker cluster (harness.hosts)


@dataclass
class ChaosResult:
    account: checker.Account
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.account.passed


async def _by_event(database_url: str, sql: str) -> dict[str, int]:
    """``sql`` selects an event_id (as text) and a number per row: those, by event_id."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return {row[0]: int(row[1]) for row in await conn.execute(text(sql))}
    finally:
        await engine.dispose()


async def stored_counts(database_url: str) -> dict[str, int]:
    return await _by_event(database_url, "SELECT CAST(event_id AS text), count(*) "
                           "FROM notification_events WHERE event_type = 'notification.created' "
                           "GROUP BY event_id")  # fmt: skip


async def await_stored(database_url: str, confirmed: set[str], timeout: float) -> float:
    """Poll the log (there is no event to await across two dispatchers) until every confirmed
    event is in it, or ``timeout``; return the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        stored = await stored_counts(database_url)
        if confirmed.issubset(stored):
            break
        await asyncio.sleep(1.0)
    return round(time.monotonic() - began, 1)


async def stored_seqs(database_url: str) -> dict[str, int]:
    return await _by_event(database_url, "SELECT CAST(event_id AS text), seq "
                           "FROM notification_events "
                           "WHERE event_type = 'notification.created'")  # fmt: skip


def explain_losses(lost: list[Any], seqs: dict[str, int], ledger: Ledger) -> list[str]:
    """For each lost example: its seq, and each connection of the user on that stream with
    its handover mark and the live seqs around the lost one, in arrival order."""
    lines = []
    for user_id, event_id, audience, target in lost:
        seq = seqs.get(event_id, -1)
        stream = checker.room_stream(target) if audience == "room" else checker.USER_STREAM
        by_connection: dict[int, list[str]] = {}
        for frame in ledger.seen:
            near = abs(frame.seq - seq) <= NEAR
            if near and frame.user_id == user_id and frame.stream == stream:
                tag = "r" if frame.replayed else ""
                by_connection.setdefault(frame.connection, []).append(f"{frame.seq}{tag}")
        history = "; ".join(
            f"conn {c} mark {ledger.marks.get((c, stream))} since {ledger.since.get(c)}: "
            + " ".join(s)
            for c, s in sorted(by_connection.items())
        )
        lines.append(f"{user_id} lost {audience} {event_id} seq {seq} on {stream}: {history}")
    return lines


class RssSampler:
    def __init__(self, cluster: Cluster, services: Services, every: float) -> None:
        self.cluster = cluster
        self.services = services
        self.every = every
        self.samples: list[dict[str, Any]] = []

    def sample(self, elapsed: float) -> None:
        row: dict[str, Any] = {"t": round(elapsed, 1), "harness": rss_of(os.getpid())}
        for name, pid in self.cluster.pids().items():
            row[name] = rss_of(pid)
        node = self.services.rabbitmq
        if node is not None and node._server is not None:
            row["rabbitmq"] = rss_of_tree(node._server.pid)
        if self.services.postgres is not None:
            postmaster = postmaster_pid(self.services.postgres)
            if postmaster is not None:
                row["postgres"] = rss_of_tree(postmaster)
        self.samples.append(row)

    async def run(self, stop: asyncio.Event) -> None:
        began = time.monotonic()
        while not stop.is_set():
            self.sample(time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)
        self.sample(time.monotonic() - began)


async def _final_check_ins(clients: list[ChaosClient]) -> int:
    window = asyncio.Semaphore(FINAL_CONCURRENCY)

    async def one(client: ChaosClient) -> bool:
        async with window:
            return await client.final_check_in()

    done = await asyncio.gather(*(one(c) for c in clients))
    return sum(1 for ok in done if not ok)


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_chaos(config: ChaosConfig) -> ChaosResult:
    """A whole run; the result's ``passed`` is the verdict."""
    began = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="notify-chaos-logs-"))
    rng = random.Random(config.seed)
    run_id = f"{config.seed}-{os.getpid()}"
    users = [f"chaos-{run_id}-{i:05d}" for i in range(config.clients)]
    room_count = max(1, config.clients // CLIENTS_PER_ROOM)
    rooms = [f"tour_{run_id}_{i:03d}" for i in range(room_count)]
    room_of = {user: rooms[i % room_count] for i, user in enumerate(users)}
    kinds = config.kinds if config.faults else ()
    plan = schedule.plan(config.seed, config.duration, kinds, clients=config.clients,
                         every=config.fault_every)  # fmt: skip
    timings: dict[str, float] = {}

    async with contextlib.AsyncExitStack() as stack:
        if config.hosts:
            hosted = await stack.enter_async_context(hosted_services())
            services: Services = hosted
            cluster: Cluster = HostedCluster(hosted, log_dir)
        else:
            services = await stack.enter_async_context(private_services())
            cluster = Cluster(process_env(services.database_url, services.amqp_url), log_dir)
        timings["services_ready"] = round(time.monotonic() - began, 1)
        settings = Settings(database_url=services.database_url, amqp_url=services.amqp_url,
                            publish_timeout=PUBLISH_TIMEOUT)  # fmt: skip
        service = NotificationService(Publisher(settings, name="notify-chaos"), producer="chaos")
        ledger = Ledger()
        if isinstance(cluster, HostedCluster):
            # Through nginx, from the client host.
            address, port = cluster.proxy
            where: dict[str, Any] = {"ports": [port], "host": address,
                                     "open_socket": cluster.client_socket}  # fmt: skip
        else:
            where = {"ports": cluster.edge_ports}
        clients = [
            ChaosClient(user, room_of[user], ledger=ledger,
                        rng=random.Random(f"{config.seed}/{user}"),
                        cursor_from_live=config.cursor_from_live, **where)
            for user in users
        ]  # fmt: skip
        traffic = Traffic(service, users, rooms, config.rate, config.broadcast_every,
                          random.Random(f"{config.seed}/traffic"))  # fmt: skip
        if isinstance(cluster, HostedCluster):
            assert isinstance(services, HostedServices)
            injector: FaultInjector = HostFaultInjector(cluster, services, clients, traffic)
        else:
            injector = FaultInjector(cluster, services, clients, traffic)
        sampler = RssSampler(cluster, services, config.sample_every)
        stop_clients, stop_traffic, stop_sampler = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        hosts_layout = cluster.describe() if isinstance(cluster, HostedCluster) else None
        try:
            await cluster.start()
            timings["processes_ready"] = round(time.monotonic() - began, 1)
            spread = min(5.0, config.duration / 10)
            tasks += [asyncio.create_task(c.run(stop_clients, rng.uniform(0, spread)))
                      for c in clients]  # fmt: skip
            sampler_task = asyncio.create_task(sampler.run(stop_sampler))
            started_at = asyncio.get_running_loop().time()
            traffic_task = asyncio.create_task(traffic.run(stop_traffic))
            faults_task = asyncio.create_task(injector.run(plan, started_at))
            tasks += [sampler_task, traffic_task, faults_task]

            await asyncio.sleep(config.duration)  # the length of the run
            stop_traffic.set()
            await traffic_task
            await traffic.drain(PUBLISH_TIMEOUT + 5)
            try:
                await asyncio.wait_for(faults_task, schedule.COOLDOWN + 120)
            except TimeoutError:
                injector.skipped.append("the fault still running at the end was cut short")
            crashed = await cluster.revive_crashed()

            confirmed = set(traffic.confirmed)
            timings["store_wait"] = await await_stored(services.database_url, confirmed,
                                                       STORE_WAIT)  # fmt: skip
            await asyncio.sleep(QUIET)  # live frames still on their way to connected clients
            stop_clients.set()
            await asyncio.gather(*tasks[: len(clients)], return_exceptions=True)
            final_failures = await _final_check_ins(clients)
            stop_sampler.set()
            await sampler_task
            stored = await stored_counts(services.database_url)
            seqs = await stored_seqs(services.database_url)
        finally:
            stop_clients.set()
            stop_traffic.set()
            stop_sampler.set()
            await _cancel(*(t for t in tasks if not t.done()))
            with contextlib.suppress(Exception):
                await service.close()
            await cluster.stop()

    rooms_of = {user: frozenset((room_of[user],)) for user in users}
    account = checker.check(traffic.ledger(), stored, ledger.seen, rooms_of, ledger.marks)
    timings["total"] = round(time.monotonic() - began, 1)
    losses = explain_losses(account.examples.get("lost", []), seqs, ledger)
    report = {
        "config": {
            "duration": config.duration, "clients": config.clients, "rate": config.rate,
            "seed": config.seed, "faults": config.faults, "rooms": room_count,
            "broadcast_every": config.broadcast_every, "hosts": config.hosts,
        },
        "hosts": hosts_layout,
        "verdict": "PASS" if account.passed else "FAIL",
        "counts": account.counts(),
        "examples": {k: [repr(x) for x in v] for k, v in account.examples.items()},
        "losses_explained": losses,
        "faults": [o.as_dict() for o in injector.outcomes],
        "faults_planned": [{"at": f.at, "kind": f.kind, "target": f.target} for f in plan],
        "faults_skipped": injector.skipped,
        "faults_failed": sum(1 for o in injector.outcomes if not o.ok),
        "audience_mix": checker.audience_mix(traffic.sent.values()),
        "achieved_rate": round(traffic.achieved_rate(), 1),
        "publish_errors": traffic.errors,
        "connections": ledger.connections,
        "close_codes": dict(ledger.close_codes),
        "connect_failures": dict(ledger.connect_failures),
        "truncated_replays": ledger.truncated_replays,
        "final_check_in_failures": final_failures,
        "process_restarts": {r.name: r.restarts for r in cluster.roles},
        "unexpected_exits": {r.name: r.unexpected_exits for r in cluster.roles
                             if r.unexpected_exits},
        "crashed_at_end": crashed,
        "timings": timings,
        "logs": str(log_dir),
        "rss": sampler.samples,
    }  # fmt: skip
    return ChaosResult(account, report)


def summary(result: ChaosResult) -> str:
    """The table and the lines around it, for a terminal or a test's failure message."""
    r = result.report
    c = r["config"]
    lines = [
        f"chaos run: seed {c['seed']}, {c['duration']:g} s, {c['clients']} clients, "
        f"rate {c['rate']:g}/s (achieved {r['achieved_rate']}/s), {c['rooms']} rooms",
    ]
    for outcome in r["faults"]:
        verdict = "ok" if outcome["ok"] else "FAILED"
        lines.append(f"  fault {outcome['at']:>6.1f}s {outcome['kind']:<17} "
                     f"{outcome['target']:<13} {verdict}: {outcome['detail']}")  # fmt: skip
    lines += [f"  {line}" for line in r["faults_skipped"]]
    lines.append(checker.table(result.account))
    lines.append(f"close codes seen by clients: {r['close_codes']}; connections: "
                 f"{r['connections']}; truncated replays: {r['truncated_replays']}; "
                 f"final check-in failures: {r['final_check_in_failures']}")  # fmt: skip
    if r["unexpected_exits"]:
        lines.append(f"processes that exited by themselves: {r['unexpected_exits']}")
    for kind, items in r["examples"].items():
        lines.append(f"examples of {kind}: " + "; ".join(items[:5]))
    lines += [f"  {line}" for line in r["losses_explained"]]
    lines.append(f"process logs: {r['logs']}")
    return "\n".join(lines)


def write_json(result: ChaosResult, path: Path) -> None:
    """The report as JSON, without the temporary folder of the process logs (printed by
    ``summary``), which is of this machine only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {key: value for key, value in result.report.items() if key != "logs"}
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
