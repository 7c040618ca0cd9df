"""Watching the delivery exchange: a notification is published there only after its
transaction committed, so a test awaits that message instead of polling the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from producers import topology

WAIT = 10.0


class DeliveryWatch:
    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            self.frames.append(orjson.loads(message.body))
            self._changed.notify_all()

    async def wait_for(self, event_id: object, timeout: float = WAIT) -> dict[str, object]:
        """The delivery frame of ``event_id``, once the dispatcher has committed it."""
        wanted = str(event_id)

        def found() -> dict[str, object] | None:
            return next((f for f in self.frames if f["id"] == wanted), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        frame = found()
        assert frame is not None
        return frame

    async def wait_until(
        self, found: Callable[[dict[str, object]], bool], timeout: float = WAIT
    ) -> dict[str, object]:
        """The first delivery frame for which ``found`` holds, once it has been published."""

        def first() -> dict[str, object] | None:
            return next((f for f in self.frames if found(f)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: first() is not None), timeout)
        frame = first()
        assert frame is not None
        return frame

    def count(self, event_id: object) -> int:
        return sum(1 for f in self.frames if f["id"] == str(event_id))


@asynccontextmanager
async def watch_deliveries(
    connection: AbstractRobustConnection, *keys: str
) -> AsyncIterator[DeliveryWatch]:
    """Bind a private queue to the given delivery keys for the duration of the block."""
    channel = await connection.channel()
    exchange = await topology.declare_deliver_exchange(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for key in keys:
        await queue.bind(exchange, key)
    watch = DeliveryWatch()
    tag = await queue.consume(watch.on_message, no_ack=True)
    try:
        yield watch
    finally:
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        await channel.close()


class RoundRobin:
    """Chat messages to each of ``users``, a round at a time, each round awaited on the delivery
    exchange (``watch``): ``sent`` has every user's event ids in the order they were
    published."""

    def __init__(self, service: Any, users: list[str], watch: DeliveryWatch) -> None:
        self.service = service
        self.users = users
        self.watch = watch
        self.sent: dict[str, list[str]] = {user: [] for user in users}

    async def round(self, i: int) -> None:
        last = None
        for user in self.users:
            last = await self.service.notify(
                "chat_message",
                user_id=user,
                data={"conversation_id": "c", "sender_id": "g", "preview": f"{i}"},
            )
            self.sent[user].append(str(last))
        await self.watch.wait_for(last)
