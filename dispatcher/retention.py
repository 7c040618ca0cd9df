"""``notify prune``: remove old read notifications from the projections, never from the log.

A prune is itself an event (``notification.pruned``, with its cutoff) appended to the log and
applied like any other, under the append lock: the rows it removes are decided by the log up
to its own seq, so ``notify rebuild`` removes exactly the same rows again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.events import Pruned
from dispatcher.store import EventStore
from producers.settings import parse_duration


def parse_age(text: str) -> timedelta:
    """A positive duration with its unit (``90d``, ``36h``, ``45m``, ``30s``: the grammar of
    ``producers.settings.parse_duration``); a bare number is refused, since a prune by the
    wrong unit cannot be undone. ValueError naming the accepted forms."""
    age = parse_duration(text)
    if age is None or age <= timedelta(0):
        raise ValueError(f"{text!r} is not an age: use a positive count of d, h, m or s, e.g. 90d")
    return age


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
