"""Connecting to RabbitMQ, in one place for every process.

``connect_robust`` reconnects by itself once connected (and re-declares the queues, exchanges
and consumers of its robust channels); the first connect, though, fails fast, so a process
started against a broker that is down says so at once instead of hanging.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

from producers.errors import BrokerUnavailable
from producers.settings import redact

CONNECT_TIMEOUT = 10.0
# Seconds between reconnection attempts after a connection is lost (aio-pika's default is 5):
# an edge's catch-up and a dispatcher's redeliveries start that much sooner after a blip.
# A ``reconnect_interval`` in AMQP_URL's query string takes precedence.
RECONNECT_INTERVAL = 1.0


async def connect(amqp_url: str, name: str) -> AbstractRobustConnection:
    """Open a robust connection named ``name`` (shown in the management UI)."""
    url = URL(amqp_url)
    if "reconnect_interval" not in url.query:
        url = url.update_query(reconnect_interval=RECONNECT_INTERVAL)
    try:
        return await aio_pika.connect_robust(
            url, timeout=CONNECT_TIMEOUT, client_properties={"connection_name": name}
        )
    except asyncio.CancelledError:
        raise
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise BrokerUnavailable(
            f"cannot reach RabbitMQ at {redact(amqp_url)} ({type(exc).__name__}: {exc}): "
            "is it running, and are AMQP_URL's user, password and vhost right?"
        ) from exc
