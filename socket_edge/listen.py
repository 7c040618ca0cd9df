"""``notify listen``: a WebSocket client that prints every frame and reconnects by itself.

After a drop it reconnects with exponential backoff and jitter, asking for everything after
the greatest seq it has seen (``since``: ``replay_complete.last_seq`` or a later notification's
seq); a connection's notifications come in seq order with nothing missing below one received.
What arrives again is recognised by its id and not printed twice.

Backoff ("equal jitter"): before reconnect attempt ``n`` (0 for the first one after a
connection that completed its replay) it waits a random time between half and all of
``min(BACKOFF_MAX, BACKOFF_FIRST * 2**n)``: 0.25-0.5 s, then 0.5-1 s, 1-2 s, 2-4 s, 4-8 s,
then 7.5-15 s for every further attempt. The wait never exceeds ``BACKOFF_MAX``.

Tokens: a token it was given is used as it is; when the edge refuses it (HTTP 401/403 at the
handshake) or closes the socket with 1008 (policy: the token expired), listening stops with
the reason, since the same token would be refused again. When it can mint its own (it has
the signing secret), it mints a fresh one for every connection and reconnects, at once, a
little before that token's ``exp`` (a fifth of its lifetime before, at most a minute), so the
edge never has to close the socket. A minted token that is refused is minted again once; a
second refusal in a row stops (a connection that ends for another reason starts the count
again).

A handshake refused with another client error than 401, 403, 408 or 429 (a bad parameter,
a wrong path) stops at once with the reason: the same request would be refused again.

Every drop and refusal is reported on stderr with its reason: the close code and reason, or
the HTTP status with the ``error`` and ``message`` of the body the edge refused with.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0
RENEW_MARGIN_MAX = 60.0  # seconds before exp a minted token is replaced, at most
RENEW_AFTER_MIN = 1.0  # a connection is never renewed sooner than this after it opened
REMEMBERED_IDS = 10_000
CLOSE_POLICY = 1008
REFUSED_STATUSES = frozenset({401, 403})  # the token's fault
RETRIED_STATUSES = frozenset({408, 429})  # client errors that pass by themselves


def connect_url(base: str, user_id: str, since: int | None, token: str | None) -> str:
    params: dict[str, Any] = {"user_id": user_id, "device_type": "cli"}
    if since is not None:
        params["since"] = since
    if token:
        params["token"] = token
    return f"{base.rstrip('/')}/ws/connect?{urlencode(params)}"


def backoff_delay(attempt: int, draw: Callable[[], float] = random.random) -> float:
    """The wait before reconnect attempt ``attempt`` (0-based): equal jitter below a ceiling
    that doubles from BACKOFF_FIRST and stops at BACKOFF_MAX. ``draw`` returns [0, 1)."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(attempt, 32))
    return ceiling / 2 + draw() * ceiling / 2


def renewal_delay(token: str, now: float | None = None) -> float | None:
    """Seconds until a token should be replaced: a fifth of its remaining lifetime before its
    ``exp``, at most RENEW_MARGIN_MAX before; None if it has no readable ``exp``."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        return None
    lifetime = float(exp) - (time.time() if now is None else now)
    return max(0.0, lifetime - min(RENEW_MARGIN_MAX, lifetime / 5))


def refusal_reason(exc: InvalidStatus) -> str:
    """``HTTP 401 token_expired (the token has expired)``: the status of a refused handshake
    and the ``error`` and ``message`` of the JSON body the edge sends with it."""
    response = exc.response
    text = f"HTTP {response.status_code}"
    try:
        body = orjson.loads(response.body or b"")
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        error, message = body.get("error"), body.get("message")
        return f"{text} {error} ({message})" if error and message else f"{text} {error or message}"
    return f"{text} {response.reason_phrase}".rstrip()


def closed(code: int, reason: str | None) -> Ending:
    """How a socket that was open ended: with 1008 (policy: the token expired) the token was
    refused; any other code is worth reconnecting for."""
    why = f"closed with {code} ({reason})" if reason else f"closed with {code}"
    if code == CLOSE_POLICY:
        return Ending(why, refused=True)
    return Ending(why, connected=True)


@dataclass(frozen=True, slots=True)
class Ending:
    """How one connection attempt ended."""

    why: str
    refused: bool = False  # the token was refused: HTTP 401/403, or closed with 1008
    connected: bool = False  # a socket was open, and ended other than by a refusal


class Refused(SystemExit):
    """Listening stopped because the edge refused the token."""


async def listen(
    base_url: str,
    user_id: str,
    *,
    since: int | None = None,
    token: str | None = None,
    mint: Callable[[], str] | None = None,
    count: int | None = None,
    reconnect: bool = True,
    emit: Callable[[str], None] = print,
    given_token_hint: str = "",
    minted_token_hint: str = "",
) -> int:
    """Print frames until ``count`` notifications were seen (or forever); return how many.

    ``mint``, when given, makes a fresh token for each connection (``token`` is then unused).
    The hints end the one-line message printed when the edge refuses a given token, or a
    minted one twice in a row.
    """
    seen = 0
    cursor = since
    printed: OrderedDict[str, None] = OrderedDict()  # recent notification ids, bounded
    attempt = 0  # reconnect attempts since a connection last completed its replay
    refusals = 0  # refusals in a row
    while True:
        current = mint() if mint is not None else token
        renew_in = renewal_delay(current) if mint is not None and current else None
        if renew_in is not None:
            renew_in = max(RENEW_AFTER_MIN, renew_in)
        renewed = False
        try:
            async with connect(connect_url(base_url, user_id, cursor, current)) as ws:
                try:
                    async with asyncio.timeout(renew_in) as renewal:
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
                                if "room" not in frame:  # a room's frames have their own cursor
                                    cursor = max(cursor or 0, int(frame["seq"]))
                                seen += 1
                                if count is not None and seen >= count:
                                    return seen
                            elif kind == "replay_complete":
                                cursor = max(cursor or 0, int(frame["data"]["last_seq"]))
                                attempt = 0
                except TimeoutError:
                    if not renewal.expired():
                        raise
                    renewed = True  # leaving the block closes the socket with 1000
                except asyncio.CancelledError:
                    # Ctrl-C: say goodbye with 1001 (going away); left to the client library,
                    # a block ended by an exception closes with 1011, a server error.
                    await asyncio.shield(ws.close(1001, "client going away"))
                    raise
            # The server closed the socket with 1000, 1001 or no status.
            ending = closed(ws.close_code or 1006, ws.close_reason)
        except (InvalidURI, ValueError) as exc:
            raise SystemExit(f"error: {exc}") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            why = f"handshake refused with {refusal_reason(exc)}"
            if 400 <= status < 500 and status not in REFUSED_STATUSES | RETRIED_STATUSES:
                # A bad parameter or path: the same request would be refused again.
                raise SystemExit(f"error: {why}") from None
            ending = Ending(why, refused=status in REFUSED_STATUSES)
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                ending = closed(1006, None)
            else:
                ending = closed(exc.rcvd.code, exc.rcvd.reason)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            ending = Ending(f"connection to {base_url} failed: {exc}")
        if renewed:
            print("# token renewed: reconnecting", file=sys.stderr, flush=True)
            refusals = attempt = 0
            continue
        if ending.refused:
            refusals += 1
            if mint is None:
                raise Refused(f"error: {ending.why}.{given_token_hint}")
            if refusals >= 2:
                raise Refused(
                    f"error: {ending.why}, again with a freshly minted token.{minted_token_hint}"
                )
        elif ending.connected:
            refusals = 0
        if not reconnect:
            raise (Refused if ending.refused else SystemExit)(f"error: {ending.why}")
        delay = backoff_delay(attempt)
        attempt += 1
        again = "minting a new token and reconnecting" if ending.refused else "reconnecting"
        print(f"# {ending.why}; {again} in {delay:.1f}s", file=sys.stderr, flush=True)
        await asyncio.sleep(delay)
