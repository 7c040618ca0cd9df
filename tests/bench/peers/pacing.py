"""Publishing a workload on a schedule, the same for every system (standard library only).

``rate`` messages a second, in small batches every few milliseconds, each batch in its own
task so that a slow confirm never delays the schedule; or, with ``rate`` 0, everything at once
("as fast as it can be published"). Each message is stamped with its publish time by the
caller's ``send`` when the batch goes out. With ``--gate`` an emitter starts, says it is
``armed`` and publishes only when a line comes on its stdin, so that the bench can publish at
a moment of its choosing (the storm row: while the clients reconnect).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

TICK = 0.005
MAX_IN_FLIGHT_BATCHES = 1000
GATE_TIMEOUT = 900.0


async def armed(timeout: float = GATE_TIMEOUT) -> None:
    """Print ``{"event": "armed"}``, then wait (at most ``timeout``) for a line on stdin."""
    sys.stdout.write(json.dumps({"event": "armed"}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await asyncio.wait_for(reader.readline(), timeout)


async def paced(
    count: int, rate: float, send: Callable[[range], Coroutine[Any, Any, None]]
) -> float:
    """Send messages ``0..count-1`` at ``rate``/s (0: all at once); return the seconds spent."""
    started = time.monotonic()
    sent = 0
    tasks: set[asyncio.Task[None]] = set()
    while sent < count:
        elapsed = time.monotonic() - started
        due = count if rate <= 0 else min(count, int(elapsed * rate) + 1)
        if due > sent and len(tasks) < MAX_IN_FLIGHT_BATCHES:
            task = asyncio.create_task(send(range(sent, due)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent = due
        if sent < count:
            await asyncio.sleep(TICK)
    await asyncio.gather(*tasks)
    return time.monotonic() - started


def report(count: int, seconds: float, first: float) -> None:
    """The emitter's one line of output, read by the bench."""
    line = {"event": "published", "count": count, "seconds": seconds, "first": first}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def target(kind: str, index: int, room: str, user_prefix: str, users: int) -> str:
    """Who message ``index`` goes to: the room, or the users in turn."""
    return room if kind == "room" else f"{user_prefix}{index % users}"
