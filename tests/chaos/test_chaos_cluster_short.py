"""The short chaos run across hosts (``python -m tests.chaos --cluster``, docs/reliability.md):
60 s, 100 clients through nginx from the client host, two edge hosts, a dispatcher host, a
three-node RabbitMQ cluster, and each of the cluster's and the network's faults once, each shown
to have happened (the leader moved, the link was down, the sockets moved to the other edge).

Needs root (network namespaces), RabbitMQ's and PostgreSQL's server binaries and nginx;
skipped otherwise. ``CHAOS_SEED`` overrides the seed, to run a failure again as it was:
``python -m tests.chaos --cluster --duration 60 --clients 100 --rate 100 --fault-every 10
--seed <seed>``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.harness import hosts
from tests.chaos.harness.runner import ChaosConfig, run_chaos, summary, write_json

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(hosts.available() is not None, reason=str(hosts.available())),
]

SEED = int(os.environ.get("CHAOS_SEED", "7"))
SHORT = ChaosConfig(duration=60, clients=100, rate=100, seed=SEED, fault_every=10, hosts=True,
                    kinds=hosts.HOST_FAULT_KINDS)  # fmt: skip


async def test_short_chaos_run_across_hosts_loses_nothing(tmp_path: Path) -> None:
    result = await run_chaos(SHORT)
    write_json(result, tmp_path / "cluster-chaos-short.json")
    report, account = result.report, result.account
    table = summary(result)
    print(table)

    by_kind = {outcome["kind"]: outcome for outcome in report["faults"]}
    assert set(by_kind) == set(hosts.HOST_FAULT_KINDS), table
    assert report["faults_failed"] == 0, table
    assert report["faults_skipped"] == [], table
    # Each fault shown to have happened: the leader moved, the links were down.
    leader = by_kind["leader_kill"]["detail"].split("leader ", 2)[2].split(";")[0]
    before, after = leader.split(" -> ")
    assert before != after, table
    assert "bridge end DOWN, host end DOWN" in by_kind["edge_cut"]["detail"], table
    assert "bridge end DOWN, host end DOWN" in by_kind["dispatcher_partition"]["detail"], table
    assert "exit -9" in by_kind["edge_host_loss"]["detail"], table

    assert account.confirmed > 0 and account.deliveries_expected > 0, table
    assert account.confirmed_not_stored == 0, table
    assert account.stored_more_than_once == 0, table
    assert account.lost == 0, table
    assert account.unexpected == 0, table
    assert account.order_violations == 0, table
