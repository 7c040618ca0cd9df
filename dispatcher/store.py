"""The event store: append notification events to the log and update the projections, in one
transaction.

Positions that follow commit order
----------------------------------
``seq`` comes from an identity column, and sequence values are handed out when a row is
inserted, not when its transaction commits. Two dispatchers writing at once could therefore
commit seq 11 before seq 10; a reader that had already paged past 11 with ``seq > 10`` would
never see 10 (DESIGN.md invariant 5). Every append here first takes
``LOCK TABLE notification_events IN EXCLUSIVE MODE``, which conflicts with itself but not with
readers (ACCESS SHARE): appends are serialised from the moment they draw a seq until they
commit, so seqs become visible in increasing order and ``seq > S`` never skips a row. The lock
is held for one batch's inserts only, so its cost is paid once per batch, not per event.
This is the approach of the ``eventsourcing`` library's PostgreSQL recorder; see
https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES for the modes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.records import StoredNotification
from dispatcher.schema import notification_events, notification_recipients, notifications
from producers.envelope import Envelope

CREATED = "notification.created"

APPEND_LOCK = text("LOCK TABLE notification_events IN EXCLUSIVE MODE")


class EventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def append(self, envelopes: Sequence[Envelope]) -> list[StoredNotification]:
        """Store each new envelope once, in order; return those that were new, by seq.

        An event_id already in the log, or twice in the batch, is skipped: delivering an event
        again is how a broker says "I am not sure you got it", and the answer is "I did".
        """
        unique: dict[str, Envelope] = {}
        for envelope in envelopes:
            unique.setdefault(str(envelope.event_id), envelope)
        if not unique:
            return []
        async with self.engine.begin() as conn:
            await conn.execute(APPEND_LOCK)
            inserted = await conn.execute(
                insert(notification_events)
                .values(
                    [
                        {
                            "event_id": e.event_id,
                            "event_type": CREATED,
                            "occurred_at": e.occurred_at,
                            "producer": e.producer,
                            "payload": e.model_dump(mode="json"),
                        }
                        for e in unique.values()
                    ]
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(notification_events.c.seq, notification_events.c.event_id)
            )
            seqs = {str(event_id): seq for seq, event_id in inserted.all()}
            if not seqs:
                return []
            stored = sorted(
                (StoredNotification.from_envelope(unique[eid], seq) for eid, seq in seqs.items()),
                key=lambda n: n.seq,
            )
            await conn.execute(insert(notifications), [n.projection_row() for n in stored])
            personal = [{"user_id": n.user_id, "seq": n.seq} for n in stored if n.user_id]
            if personal:
                await conn.execute(insert(notification_recipients), personal)
        return stored
