"""``python -m tests.chaos``: the whole-pipeline chaos run and soak (docs/reliability.md).

The harness belongs to the tests, so the command is theirs too: it runs from a checkout of the
repository (its root as the current directory) with the development install, not from the
installed product.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from tests.chaos.harness.hosts import HOST_FAULT_KINDS
from tests.chaos.harness.runner import ChaosConfig, run_chaos, summary, write_json
from tests.chaos.harness.schedule import FAULT_KINDS

RESULTS = Path(__file__).resolve().parent / "results"


@click.command("chaos")
@click.option("--duration", default=300.0, show_default=True, help="seconds of traffic")
@click.option("--clients", default=1000, show_default=True, help="websocket clients")
@click.option("--rate", default=500.0, show_default=True, help="events published per second")
@click.option("--seed", default=7, show_default=True, help="seed of the fault schedule and clients")
@click.option("--no-faults", is_flag=True, help="inject no fault (a soak)")
@click.option("--fault-every", default=20.0, show_default=True, help="seconds between faults")
@click.option("--sample-every", default=10.0, show_default=True, help="seconds between RSS samples")
@click.option(
    "--cursor",
    type=click.Choice(["seen", "mark"]),
    default="seen",
    show_default=True,
    help="a client's `since`: the greatest seq it has seen, or the last replay_complete.last_seq",
)
@click.option(
    "--cluster",
    "hosts",
    is_flag=True,
    help="across network namespaces (two edge hosts, a dispatcher host, a client host, nginx) "
    "on a three-node RabbitMQ cluster, with the cluster's and the network's faults (needs root)",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the JSON report [default: tests/chaos/results/chaos-<seed>-<cursor>.json]",
)
def chaos(
    duration: float,
    clients: int,
    rate: float,
    seed: int,
    no_faults: bool,
    fault_every: float,
    sample_every: float,
    cursor: str,
    hosts: bool,
    output: Path | None,
) -> None:
    """Run the pipeline on private services under load and faults, then account for every
    notification; exit 1 on any loss, unexpected frame or order violation."""
    config = ChaosConfig(
        duration=duration,
        clients=clients,
        rate=rate,
        seed=seed,
        faults=not no_faults,
        fault_every=fault_every,
        sample_every=sample_every,
        cursor_from_live=cursor == "seen",
        hosts=hosts,
        kinds=HOST_FAULT_KINDS if hosts else FAULT_KINDS,
    )
    name = f"soak-{seed}.json" if no_faults else f"chaos-{seed}-{cursor}.json"
    if hosts:
        name = f"cluster-{name}"
    path = output or RESULTS / name
    result = asyncio.run(run_chaos(config))
    write_json(result, path)
    click.echo(summary(result))
    click.echo(f"report written to {path}")
    if not result.passed:
        sys.exit(1)


if __name__ == "__main__":
    chaos()
