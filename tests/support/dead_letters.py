"""Reading the dead-letter queue in tests."""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

WAIT = 10.0


async def take_dead_letter(
    queue: AbstractQueue, message_id: str, timeout: float = WAIT
) -> AbstractIncomingMessage:
    """Consume the dead-letter queue until ``message_id`` arrives (acking what it reads)."""

    async def find() -> AbstractIncomingMessage:
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                if message.message_id == message_id:
                    return message
        raise AssertionError("dead-letter queue closed")

    return await asyncio.wait_for(find(), timeout)
