"""Cutting the stream of deliveries into batches: at ``limit`` messages or ``wait`` seconds
after the first one, whichever comes first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    items: list[T]
    last: bool  # the inbox was closed: no batch follows this one


async def next_batch(inbox: asyncio.Queue[T | None], limit: int, wait: float) -> Batch[T] | None:
    """The next batch from ``inbox``; None once the inbox is closed (a ``None`` item) and
    empty. Waits for the first item without a deadline."""
    first = await inbox.get()
    if first is None:
        return None
    items = [first]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while len(items) < limit:
        if inbox.empty():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(inbox.get(), remaining)
            except TimeoutError:
                break
        else:
            item = inbox.get_nowait()
        if item is None:
            return Batch(items, last=True)
        items.append(item)
    return Batch(items, last=False)
