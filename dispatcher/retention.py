"""``notify prune``: remove old read notifications from the projections, never from the log.

A prune is itself an event (``notification.pruned``, with its cutoff) appended to the log and
applied like any other, under the append lock: the rows it removes are decided by the log up
to its own seq, so ``notify rebuild`` removes exactly the same rows again.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.events import Pruned
from dispatcher.store import EventStore

_AGE = re.compile(r"\s*(\d+)\s*([dhm])\s*")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """``90d``, ``36h`` or ``45m`` as a timedelta; ValueError naming the accepted forms."""
    match = _AGE.fullmatch(text)
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not an age: use a positive count of d, h or m, e.g. 90d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@dataclass(frozen=True, slots=True)
class PruneResult:
    event_id: uuid.UUID
    cutoff: datetime
    removed: int


async def prune(engine: AsyncEngine, older_than: timedelta, window: timedelta) -> PruneResult:
    now = datetime.now(UTC)
    event = Pruned(event_id=uuid.uuid4(), cutoff=now - older_than, occurred_at=now)
    result = await EventStore(engine, window).append([event])
    return PruneResult(event.event_id, event.cutoff, result.applied.pruned)
