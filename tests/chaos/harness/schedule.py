"""The seeded fault schedule: which fault, on which target, at which second of the run.

Pure: the same seed, duration and kinds give the same plan, so a failing run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FAULT_KINDS = (
    "dispatcher_kill",  # kill -9 of a dispatcher, then a new one
    "edge_kill",  # kill -9 of an edge, then a new one on the same port
    "edge_term",  # SIGTERM of an edge: sockets closed with 1012, then a new one
    "rabbitmq_restart",  # stop_app / start_app of the private RabbitMQ node
    "postgres_restart",  # restart of the private PostgreSQL cluster
    "slow_consumer",  # a client stops reading: closed with 1013, recovers by replay
)

# Faults need room to play out: none in the first seconds (clients connecting) nor in the last
# (the run must end quiet), and a few seconds between two.
WARMUP = 5.0
COOLDOWN = 8.0
MIN_GAP = 6.0


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the start of the traffic
    kind: str
    target: int  # which dispatcher or edge (0 or 1); for slow_consumer, a client index


def plan(
    seed: int,
    duration: float,
    kinds: tuple[str, ...] = FAULT_KINDS,
    *,
    clients: int = 1,
    every: float = 20.0,
) -> list[Fault]:
    """Rounds of every kind once, in a seeded order, one fault each ``every`` seconds (at
    least one round, squeezed into the window if the run is short), with jitter."""
    rng = random.Random(seed)
    start, end = WARMUP, duration - COOLDOWN
    window = end - start
    if not kinds or window <= 0:
        return []
    count = max(len(kinds), int(window // every) // len(kinds) * len(kinds))
    step = window / count
    if step < MIN_GAP and count > len(kinds):
        count = len(kinds)
        step = window / count
    faults: list[Fault] = []
    order: list[str] = []
    for slot in range(count):
        if not order:
            order = list(kinds)
            rng.shuffle(order)
        kind = order.pop()
        at = start + slot * step + rng.uniform(0, step * 0.3)
        target = rng.randrange(clients) if kind == "slow_consumer" else rng.randrange(2)
        faults.append(Fault(round(at, 2), kind, target))
    return faults
