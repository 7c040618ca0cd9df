"""RabbitMQ definitions (the management plugin's JSON) of the pipeline's durable topology.

    python -m producers.definitions > compose/rabbitmq/definitions.json

A broker that loads them at boot has the exchanges, queues and bindings of
``producers.topology`` before any process starts, so that the management UI shows them from
the first moment and a producer may publish before any dispatcher ran. They are not written
by hand: the declarations of ``producers.topology`` are run against a channel that records
them, so the arguments are the very ones every process declares (a declaration with other
arguments would be refused with PRECONDITION_FAILED). The edge's fanout exchanges are
declared by ``socket_edge.cluster``; they are listed here with the same arguments, and each
edge's exclusive queue is its own, made when it starts.

A broker that imports definitions at boot creates no default user, so the file also holds
the one user the pipeline's processes connect as (``--user``/``--password``, for a local
stack: production brokers get their users from their operators, docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import sys
from typing import Any

from aio_pika.abc import ExchangeType

from producers import topology
from producers.settings import Settings

DEFAULT_VHOST = "/"
DEFAULT_USER = "notify"
DEFAULT_PASSWORD = "notify"
# The exchanges of socket_edge.cluster, as it declares them.
EDGE_FANOUTS = (topology.EDGE_STATS_EXCHANGE, topology.EDGE_CONTROL_EXCHANGE)


class _Exchange:
    def __init__(self, name: str) -> None:
        self.name = name


class _Queue:
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    async def bind(self, exchange: _Exchange | str, routing_key: str | None = None) -> None:
        source = exchange if isinstance(exchange, str) else exchange.name
        # aio-pika binds with the queue's name when no routing key is given.
        self.recorder.bindings.append((source, self.name, routing_key or self.name))


class _Recorder:
    """Enough of an aio-pika channel for ``producers.topology``'s declarations."""

    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: list[tuple[str, str, str]] = []

    async def declare_exchange(
        self,
        name: str,
        type: ExchangeType | str = ExchangeType.DIRECT,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> _Exchange:
        kind = type.value if isinstance(type, ExchangeType) else type
        self.exchanges[name] = {
            "type": kind,
            "durable": durable,
            "auto_delete": auto_delete,
            "internal": internal,
            "arguments": dict(arguments or {}),
        }
        return _Exchange(name)

    async def declare_queue(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> _Queue:
        if exclusive:
            raise ValueError(f"an exclusive queue ({name}) belongs to a connection, not to a file")
        self.queues[name] = {
            "durable": durable,
            "auto_delete": auto_delete,
            "arguments": dict(arguments or {}),
        }
        return _Queue(self, name)


async def _record(delivery_limit: int) -> _Recorder:
    recorder = _Recorder()
    channel: Any = recorder
    await topology.declare_events_exchange(channel)
    await topology.declare_dispatcher_queue(channel, delivery_limit)  # and the dead letters
    await topology.declare_deliver_exchange(channel)
    for name in EDGE_FANOUTS:
        await recorder.declare_exchange(name, ExchangeType.FANOUT, durable=True)
    return recorder


def password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    *,
    vhost: str = DEFAULT_VHOST,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    delivery_limit: int | None = None,
) -> dict[str, Any]:
    """The definitions document; the same inputs give the same document, byte for byte."""
    if delivery_limit is None:
        delivery_limit = Settings.model_fields["dispatcher_delivery_limit"].default
    recorded = asyncio.run(_record(delivery_limit))
    # A fixed salt keeps the file reproducible; the password is a local stack's, not a secret.
    salt = hashlib.sha256(f"{vhost}:{user}".encode()).digest()[:4]
    return {
        "users": [
            {
                "name": user,
                "password_hash": password_hash(password, salt),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
                "limits": {},
            }
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        # None: the queues' arguments carry everything (policies would override them silently).
        "policies": [],
        "queues": [
            {"name": name, "vhost": vhost, **spec} for name, spec in sorted(recorded.queues.items())
        ],
        "exchanges": [
            {"name": name, "vhost": vhost, **spec}
            for name, spec in sorted(recorded.exchanges.items())
        ],
        "bindings": [
            {
                "source": source,
                "vhost": vhost,
                "destination": destination,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for source, destination, key in sorted(recorded.bindings)
        ],
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m producers.definitions",
        description="Print the RabbitMQ definitions (JSON) of the pipeline's topology.",
    )
    parser.add_argument("--vhost", default=DEFAULT_VHOST)
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument(
        "--delivery-limit",
        type=int,
        help="x-delivery-limit of the dispatcher's queue (DISPATCHER_DELIVERY_LIMIT; default: "
        "that setting's default)",
    )
    args = parser.parse_args(argv)
    document = definitions(
        vhost=args.vhost,
        user=args.user,
        password=args.password,
        delivery_limit=args.delivery_limit,
    )
    sys.stdout.write(render(document))


if __name__ == "__main__":
    main()
