"""compose/rabbitmq/definitions.json is the generator's output, and the generator declares
exactly what ``producers.topology`` declares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from producers import definitions, topology

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "compose" / "rabbitmq" / "definitions.json"


def test_the_committed_definitions_are_the_generators_output() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "producers.definitions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == COMMITTED.read_text(), (
        "compose/rabbitmq/definitions.json is stale: "
        "python -m producers.definitions > compose/rabbitmq/definitions.json"
    )


def test_the_definitions_hold_the_topology_with_its_arguments() -> None:
    document = definitions.definitions(delivery_limit=7)
    queues = {q["name"]: q for q in document["queues"]}
    assert set(queues) == {topology.DISPATCHER_QUEUE, topology.DEAD_LETTER_QUEUE}
    assert queues[topology.DISPATCHER_QUEUE]["arguments"] == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE,
    }
    exchanges = {e["name"]: e["type"] for e in document["exchanges"]}
    assert exchanges == {
        topology.EVENTS_EXCHANGE: "topic",
        topology.DELIVER_EXCHANGE: "topic",
        topology.DEAD_LETTER_EXCHANGE: "fanout",
        topology.EDGE_STATS_EXCHANGE: "fanout",
        topology.EDGE_CONTROL_EXCHANGE: "fanout",
    }
    assert all(e["durable"] and not e["auto_delete"] for e in document["exchanges"])
    bindings = {(b["source"], b["destination"], b["routing_key"]) for b in document["bindings"]}
    assert bindings == {
        (topology.EVENTS_EXCHANGE, topology.DISPATCHER_QUEUE, "#"),
        (topology.DEAD_LETTER_EXCHANGE, topology.DEAD_LETTER_QUEUE, topology.DEAD_LETTER_QUEUE),
    }
    # Every object lives in the one vhost the user may use.
    (vhost,) = document["vhosts"]
    assert {q["vhost"] for q in document["queues"]} == {vhost["name"]}
    assert document["permissions"][0]["user"] == document["users"][0]["name"]


def test_the_password_hash_is_rabbitmqs_salted_sha256() -> None:
    # RabbitMQ's documented example: salt 908D C60A, password "test12".
    salt = bytes.fromhex("908DC60A")
    assert definitions.password_hash("test12", salt) == (
        "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
    )


def test_the_generator_is_deterministic() -> None:
    first = definitions.render(definitions.definitions())
    assert first == definitions.render(definitions.definitions())
    json.loads(first)
