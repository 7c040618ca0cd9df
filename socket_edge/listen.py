"""``notify listen``: a WebSocket client that prints every frame and reconnects by itself.

After a drop it reconnects with exponential backoff and jitter, asking for everything after
the greatest seq it has seen (``since``: ``replay_complete.last_seq`` or a later notification's
seq); a connection's notifications come in seq order with nothing missing below one received.
What arrives again is recognised by its id and not printed twice.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
REMEMBERED_IDS = 10_000


def connect_url(base: str, user_id: str, since: int | None, token: str | None) -> str:
    params: dict[str, Any] = {"user_id": user_id, "device_type": "cli"}
    if since is not None:
        params["since"] = since
    if token:
        params["token"] = token
    return f"{base.rstrip('/')}/ws/connect?{urlencode(params)}"


async def listen(
    base_url: str,
    user_id: str,
    *,
    since: int | None = None,
    token: str | None = None,
    count: int | None = None,
    reconnect: bool = True,
    emit: Callable[[str], None] = print,
) -> int:
    """Print frames until ``count`` notifications were seen (or forever); return how many."""
    seen = 0
    pause = BACKOFF_FIRST
    cursor = since
    printed: OrderedDict[str, None] = OrderedDict()  # recent notification ids, bounded
    while True:
        try:
            async with connect(connect_url(base_url, user_id, cursor, token)) as ws:
                pause = BACKOFF_FIRST
                async for raw in ws:
                    frame = orjson.loads(raw)
                    kind = frame.get("type")
                    if kind == "notification":
                        if frame["id"] in printed:
                            continue
                        printed[frame["id"]] = None
                        if len(printed) > REMEMBERED_IDS:
                            printed.popitem(last=False)
                    emit(raw if isinstance(raw, str) else raw.decode())
                    if kind == "notification":
                        if "room" not in frame:  # a room's frames have a cursor of their own
                            cursor = max(cursor or 0, int(frame["seq"]))
                        seen += 1
                        if count is not None and seen >= count:
                            return seen
                    elif kind == "replay_complete":
                        cursor = max(cursor or 0, int(frame["data"]["last_seq"]))
        except (InvalidURI, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None
        except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
            if not reconnect:
                raise SystemExit(f"error: connection to {base_url} failed: {exc}") from None
            delay = pause * (1 + random.random() / 2)
            print(f"# disconnected ({exc}); reconnecting in {delay:.1f}s", file=sys.stderr)
            await asyncio.sleep(delay)
            pause = min(pause * 2, BACKOFF_MAX)
