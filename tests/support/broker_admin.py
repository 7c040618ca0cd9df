"""Closing one client connection on the broker, as a network blip would: the rest of the
broker, and every other test's connections, carry on."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote, urlsplit


def available() -> bool:
    return shutil.which("rabbitmqctl") is not None


async def _rabbitmqctl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {err.decode()}")
    return out.decode()


async def close_connections_named(name: str, reason: str = "blip") -> int:
    """Close every connection whose connection_name is ``name``; return how many."""
    listing = await _rabbitmqctl("list_connections", "-q", "--no-table-headers", "pid",
                                 "client_properties")  # fmt: skip
    needle = f'{{"connection_name","{name}"}}'
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if needle in line]
    for pid in pids:
        await _rabbitmqctl("close_connection", pid, reason)
    return len(pids)


@asynccontextmanager
async def no_new_connections(amqp_url: str) -> AsyncIterator[None]:
    """While inside, the URL's vhost accepts no new connection (open ones carry on): a client
    whose connection is closed stays away until the block ends."""
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    await _rabbitmqctl("set_vhost_limits", "-p", vhost, '{"max-connections": 0}')
    try:
        yield
    finally:
        await _rabbitmqctl("clear_vhost_limits", "-p", vhost)


async def list_bindings(amqp_url: str) -> list[tuple[str, str, str]]:
    """Every binding of the URL's vhost: (source exchange, destination, routing key)."""
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    listing = await _rabbitmqctl("list_bindings", "-q", "--no-table-headers", "-p", vhost,
                                 "source_name", "destination_name", "routing_key")  # fmt: skip
    rows = [line.split("\t") for line in listing.splitlines() if line.strip()]
    return [(row[0], row[1], row[2] if len(row) > 2 else "") for row in rows]


async def delete_queue(amqp_url: str, queue: str) -> bool:
    """Delete a queue of the URL's vhost, whoever owns it (an exclusive queue too), as the
    broker's own cleanup would; False if there was no such queue."""
    vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
    try:
        await _rabbitmqctl("delete_queue", "-p", vhost, queue)
    except RuntimeError as exc:
        if "Queue not found" in str(exc):
            return False
        raise
    return True
