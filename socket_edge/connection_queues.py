"""Queues that live with one connection to RabbitMQ, declared anew, under new names, on each.

An edge's queues are exclusive: they go when the connection goes. aio-pika's robust channel
would declare them again after a reconnect under the same names, and in a cluster that is a
race. When the node the connection was on is lost, the surviving nodes delete its queues by
name once they notice, and that can come after the same name was declared again on the node
the connection moved to: the new queue goes with the old one, its bindings and consumer too.
Whatever touches it next gets NOT_FOUND, and the robust channel that answer closes is not
restored. Nothing routed to the edge arrives any more.

So these queues are not left to the robust channel. For the first connection, for each
connection aio-pika makes after a loss, whenever their channel closes while the connection
stays, and whenever the broker cancels one of their consumers (it does when a queue is
deleted under it, which is how that race shows, with the channel left open), a
``ConnectionQueues`` opens a plain channel of its own and runs its owner's
``declare`` on it, which declares the queues under names no earlier declaration of the
process used (a number that grows with each, or names the broker makes up), binds and consumes
them.
A failure is tried again, a growing pause apart, for as long as the connection is up; after
a loss the next connection starts over. Once the queues are back, ``on_restored`` runs (the
edge's catch-up): until then the owner's ``channel()`` waits.

``on_lost`` is called as soon as the queues are known to be gone (the connection dropped,
their channel closed, a consumer cancelled), before anything is declared again; what remains
of the old ones (a channel, queues) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from producers.waiting import cancel_and_wait

log = logging.getLogger("notify.edge")

# Declares the queues on ``channel``; ``generation`` counts the declarations (1 for the first,
# then one more after each loss), for the owner to make names no earlier declaration used.
Declare = Callable[[AbstractChannel, int], Awaitable[None]]

RETRY_FIRST_PAUSE = 0.1
RETRY_MAX_PAUSE = 2.0


class ConnectionQueues:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        declare: Declare,
        what: str,
        on_lost: Callable[[], None] | None = None,
        on_restored: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.connection = connection
        self.what = what  # for the logs: "the edge queue", "the cluster queues"
        self.generation = 0
        self._declare = declare
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._channel: AbstractChannel | None = None
        self._ready = asyncio.Event()
        self._declaring = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Declare the first connection's queues; raise if that fails."""
        self.connection.close_callbacks.add(self._connection_lost)
        self.connection.reconnect_callbacks.add(self._reconnected)
        await self._open()

    async def channel(self) -> aiormq.abc.AbstractChannel:
        """The channel the current queues were declared on, once they are."""
        while True:
            await self._ready.wait()
            channel = self._channel
            if channel is not None and not channel.is_closed:
                return await channel.get_underlay_channel()
            self._ready.clear()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def close(self) -> None:
        self._closing = True
        self.connection.close_callbacks.discard(self._connection_lost)
        self.connection.reconnect_callbacks.discard(self._reconnected)
        for task in tuple(self._tasks):
            await cancel_and_wait(task)
        channel, self._channel = self._channel, None
        if channel is not None:
            await _close_quietly(channel)

    # -- one connection's queues -----------------------------------------------------------

    async def _open(self) -> None:
        previous, self._channel = self._channel, None
        if previous is not None:
            await _close_quietly(previous)
        self.generation += 1
        channel = aio_pika.Channel(self.connection, publisher_confirms=False)
        await channel.initialize()
        try:
            await self._declare(channel, self.generation)
        except BaseException:
            await _close_quietly(channel)
            raise
        channel.close_callbacks.add(self._channel_closed)
        underlay = await channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(functools.partial(self._cancelled, channel))
        self._channel = channel
        self._ready.set()

    def _transport_up(self) -> bool:
        transport = self.connection.transport
        return transport is not None and not transport.connection.is_closed

    # -- losing and getting them back ------------------------------------------------------

    def _lost(self) -> None:
        self._ready.clear()
        if self._on_lost is not None:
            self._on_lost()

    def _connection_lost(self, *_: Any) -> None:
        if not self._closing:
            self._lost()

    def _reconnected(self, *_: Any) -> None:
        self._restore_soon()

    def _channel_closed(self, channel: Any, exc: BaseException | None) -> None:
        if self._closing or channel is not self._channel:
            return
        self._channel = None
        if not self._transport_up():
            return  # the connection went with it: its loss is reported, its return restores
        log.warning("%s's channel closed (%s); declaring %s again", self.what, exc, self.what)
        self._lost()
        self._restore_soon()

    def _cancelled(self, channel: AbstractChannel, frame: aiormq.spec.Basic.Cancel) -> None:
        if self._closing or channel is not self._channel:
            return
        log.warning("the broker cancelled consumer %s of %s (a queue was deleted); declaring "
                    "%s again", frame.consumer_tag, self.what, self.what)  # fmt: skip
        self._channel = None
        self._lost()
        self._spawn(_close_quietly(channel), "close the old channel")
        self._restore_soon()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=f"{name} of {self.what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _restore_soon(self) -> None:
        if self._closing or self._declaring:
            return
        self._declaring = True
        self._spawn(self._restore(), "restore")

    async def _restore(self) -> None:
        try:
            restored = await self._open_while_connected()
        finally:
            self._declaring = False
        if restored and self._on_restored is not None:
            await self._on_restored()

    async def _open_while_connected(self) -> bool:
        pause = RETRY_FIRST_PAUSE
        while not self._closing and self._transport_up():
            try:
                await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - tried again while the connection is up
                log.warning("could not declare %s (%s: %s); trying again in %.1f s",
                            self.what, type(exc).__name__, exc, pause)  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX_PAUSE)
                continue
            log.info("%s declared again (connection %d)", self.what, self.generation)
            return True
        return False  # the connection is gone: the next one starts over


async def _close_quietly(channel: AbstractChannel) -> None:
    with contextlib.suppress(Exception):
        await channel.close()
