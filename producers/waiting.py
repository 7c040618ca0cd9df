"""Waiting with a deadline, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for(event.wait(), t)`` returns normally when the task is
cancelled in the same turn of the loop as the event is set: the cancellation is swallowed. A
background loop stopped that way runs on, and whoever awaits the stopped task waits forever
(an edge's shutdown hung on its registry's sweeper so). ``asyncio.timeout`` tells its own
expiry from a cancellation from outside, so the waits here use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """True once ``event`` is set, False after ``seconds`` without it."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``awaitable``'s result, or TimeoutError after ``seconds``."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def cancel_and_wait(task: asyncio.Task[object] | None) -> None:
    """Cancel ``task`` and wait until it has ended. Its own cancellation is expected and
    absorbed; a cancellation of the caller meanwhile is not: it goes on up (absorbing every
    CancelledError here would swallow the caller's, the same loss as above)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
