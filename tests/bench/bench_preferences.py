"""What the users' preferences cost an edge per broadcast (not collected by pytest).

    python -m tests.bench.bench_preferences --users 10000

An edge decides each broadcast for the users it holds that have preferences
(``socket_edge.preferences.HeldPreferences.held_back``). Measured in-process, for ``--users``
users whose preferences are shared (40 distinct sets: a muted category or none, quiet hours
22:00-07:00 in one of four zones) and all different (each its own quiet hours): the time one
broadcast's decision takes on the event loop, averaged over ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import time

import orjson

from producers.preferences import Preferences, parse_critical_types
from socket_edge.preferences import HeldPreferences
from socket_edge.sinks import OutFrame

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Jerusalem", "Asia/Tokyo"]
CATEGORIES = ["chat", "tour", "agent", "booking", "system"]


def preferences(i: int, distinct: bool) -> Preferences:
    if distinct:
        quiet = {"start": f"{i % 24:02d}:{(i // 24) % 60:02d}", "end": f"{(i + 7) % 24:02d}:00"}
    else:
        quiet = {"start": "22:00", "end": "07:00"}
    return Preferences.model_validate(
        {
            "muted_categories": [CATEGORIES[i % 5]] if i % 2 else [],
            "quiet_hours": {**quiet, "time_zone": ZONES[i % 4]},
        }
    )


def broadcast() -> OutFrame:
    frame = {
        "type": "notification",
        "id": "b",
        "seq": 5,
        "notification_type": "maintenance_scheduled",
        "priority": "high",
        "title": "t",
        "message": "m",
        "data": {},
        "action_url": None,
        "timestamp": "2026-12-04T10:00:00Z",
        "read": False,
    }
    return OutFrame(orjson.dumps(frame).decode())


def measure(users: int, distinct: bool, rounds: int) -> dict[str, object]:
    held = HeldPreferences(parse_critical_types(None))
    for i in range(users):
        held.load(f"u{i}", 1, preferences(i, distinct))
    frame = broadcast()
    held.held_back(frame)  # warm the caches
    started = time.perf_counter()
    for _ in range(rounds):
        kept_from = held.held_back(frame)
    elapsed = (time.perf_counter() - started) / rounds
    return {
        "users": users,
        "preferences": "all different" if distinct else "shared",
        "ms_per_broadcast": round(elapsed * 1000, 2),
        "held_back": len(kept_from),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for distinct in (False, True):
        print(json.dumps(measure(args.users, distinct, args.rounds)), flush=True)
