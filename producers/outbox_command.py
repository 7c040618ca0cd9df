"""``notify outbox-relay``: the relay as a process of its own, stopped by SIGTERM or Ctrl-C
after the batch in hand."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from datetime import timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from producers import outbox
from producers.outbox_relay import OutboxRelay
from producers.publisher import Publisher
from producers.settings import Settings, redact

log = logging.getLogger("notify.outbox")


async def relay_outbox(
    settings: Settings,
    database_url: str,
    *,
    batch_size: int,
    poll_interval: float,
    keep_sent: timedelta,
    create_table: bool,
    once: bool,
) -> None:
    engine = create_async_engine(database_url, pool_size=2, pool_pre_ping=True)
    name = f"notify-outbox-relay {socket.gethostname()}:{os.getpid()}"
    publisher = Publisher(settings, name=name)
    relay = OutboxRelay(
        engine, publisher, batch_size=batch_size, poll_interval=poll_interval, keep_sent=keep_sent
    )
    try:
        if create_table:
            await outbox.create_table(engine)
        await relay.check()
        await publisher.__aenter__()  # fail fast on a wrong AMQP_URL
        if once:
            sent = await relay.drain()
            log.info("outbox relay published %d pending events", sent)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "outbox relay publishing from %s to %s (batch %d)",
            redact(database_url),
            redact(settings.amqp_url),
            batch_size,
        )
        await relay.run(stop)
        log.info("outbox relay stopped: %d events published", relay.published)
    finally:
        await publisher.close()
        await engine.dispose()
