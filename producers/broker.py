"""Connecting to RabbitMQ, in one place for every process.

``connect_robust`` reconnects by itself once connected (and re-declares the queues, exchanges
and consumers of its robust channels); the first connect, though, fails fast, so a process
started against a broker that is down says so at once instead of hanging.

AMQP_URL may list the nodes of a cluster, comma-separated (``settings.amqp_urls``). The
connection is then a ``FailoverConnection``: each connection attempt, the first one and every
reconnection, tries the addresses in turn, starting after the one it last used, and takes the
first that answers. A process whose node dies thus comes back on another node of the list,
where the robust channels declare their exchanges, queues, bindings and consumers again (the
topology is idempotent from any node, and the cluster shares it). A single URL behaves as it
always did: one address, retried every ``RECONNECT_INTERVAL``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from producers.errors import BrokerUnavailable
from producers.settings import amqp_urls, redact

log = logging.getLogger("notify.broker")

CONNECT_TIMEOUT = 10.0
# Seconds between reconnection attempts after a connection is lost (aio-pika's default is 5):
# an edge's catch-up and a dispatcher's redeliveries start that much sooner after a blip.
# A ``reconnect_interval`` in AMQP_URL's query string takes precedence.
RECONNECT_INTERVAL = 1.0

# aio-pika's robust connection makes each connection attempt in this (name-mangled) method,
# called by its reconnection loop; ``FailoverConnection`` wraps it to pick the address.
# tests/unit/test_dependency_contracts.py checks the installed aio-pika still has it.
ATTEMPT_METHOD = "_RobustConnection__connect_transport"


class FailoverConnection(RobustConnection):
    """A robust connection over the nodes of one cluster (``addresses``, in AMQP_URL's order).

    Each attempt tries the addresses in turn from the one after the last used (the first
    address at the start), so a lost node is left for the next one at once, and a dead node
    costs one failed connect per attempt, not a reconnect interval. Only when every address
    failed does the attempt fail, and aio-pika retries after its interval."""

    def __init__(self, url: URL, addresses: Sequence[URL] = (), **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.addresses = list(addresses) or [url]
        self._turn = -1  # the index of the address in use, or last used

    @property
    def address(self) -> str:
        """The address of the node in use (or last used), password hidden."""
        return redact(str(self.url))

    async def _failover_attempt(self) -> None:
        attempt = cast(Callable[[], Awaitable[None]], getattr(super(), ATTEMPT_METHOD))
        failures = 0
        count = len(self.addresses)
        first = self._turn < 0
        for step in range(count):
            index = (self._turn + 1 + step) % count
            self.url = self.addresses[index]
            try:
                await attempt()
            except CONNECTION_EXCEPTIONS as exc:
                failures += 1
                if step + 1 == count:
                    raise
                log.warning("RabbitMQ at %s unreachable (%s: %s); trying the next address",
                            redact(str(self.url)), type(exc).__name__, exc)  # fmt: skip
                continue
            self._turn = index
            if count > 1 and (not first or failures):
                log.warning("connected to RabbitMQ at %s", redact(str(self.url)))
            return


# Under the mangled name, so that aio-pika's reconnection loop calls it.
setattr(FailoverConnection, ATTEMPT_METHOD, FailoverConnection._failover_attempt)


async def connect(amqp_url: str, name: str) -> AbstractRobustConnection:
    """Open a robust connection named ``name`` (shown in the management UI) to the first
    node of AMQP_URL that answers; it fails over to the others (``FailoverConnection``)."""
    try:
        addresses = [_with_interval(URL(url)) for url in amqp_urls(amqp_url)]
    except ValueError as exc:
        raise BrokerUnavailable(f"AMQP_URL is invalid: {exc}") from None
    try:
        # What ``aio_pika.connect_robust`` does, with the addresses handed to the connection.
        connection = FailoverConnection(
            addresses[0], addresses, client_properties={"connection_name": name}
        )
        await connection.connect(timeout=CONNECT_TIMEOUT)
        return connection
    except asyncio.CancelledError:
        raise
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        where = "any of the nodes" if len(addresses) > 1 else "RabbitMQ at"
        raise BrokerUnavailable(
            f"cannot reach {where} {redact(amqp_url)} ({type(exc).__name__}: {exc}): "
            "is it running, and are AMQP_URL's user, password and vhost right?"
        ) from exc


def _with_interval(url: URL) -> URL:
    if "reconnect_interval" not in url.query:
        url = url.update_query(reconnect_interval=RECONNECT_INTERVAL)
    return url
