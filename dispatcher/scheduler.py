"""The scheduler: releases scheduled notifications when they are due.

A ``notification.created`` whose ``deliver_at`` is later than the time it was logged waits in
``notification_schedule`` (status ``pending``; ``dispatcher.projection``). Every dispatcher
process runs a scheduler beside its consumer: every ``SCHEDULE_POLL_SECONDS``, and at the
time of one that falls due before the next poll, it reads the pending rows whose
``deliver_at`` has come (an index scan of the partial index on
``deliver_at WHERE status = 'pending'``) and publishes one ``notification.released`` for each
to ``notifications.events``, with publisher confirms. The release then takes the path of every
event: consumed, appended to the log, projected (the notification enters ``notifications``
with the release's seq) and routed like a new notification.

Nothing here needs a lock or a leader:

- a release's event_id is derived from the scheduled notification's
  (``producers.envelope.release_event_id``), so the releases of two dispatchers, or two of one
  dispatcher, are appended once (the log's ``ON CONFLICT (event_id)``), and the projection
  releases only a row still pending;
- a release confirmed by RabbitMQ is on disk in the dispatcher queue: a dispatcher killed
  after that leaves it to the next consumer; one killed before leaves the row pending, and
  the next poll of any dispatcher publishes it again;
- while RabbitMQ is away, the publish waits for the robust connection to come back (up to
  ``PUBLISH_TIMEOUT``, then the next poll tries again): a broker restart only delays releases.

A release is published again while its row stays pending for ``RESEND_AFTER`` seconds (its
consumer may be far behind, or it was lost with a queue that was deleted).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from dispatcher.failures import one_line
from producers.envelope import RELEASED, SCHEMA_VERSION, ScheduleEvent, release_event_id
from producers.errors import PublishError
from producers.publisher import Publisher
from producers.waiting import wait_event

log = logging.getLogger("notify.scheduler")

PRODUCER = "notify-scheduler"

# $1 limit, $2 seconds ahead: the pending notifications that are due or due within that
# time, soonest first, each with how long until it is due by the database's clock (the clock
# its deliver_at is compared with when it is logged), 0 or less for one that is due.
DUE = """
SELECT event_id, extract(epoch FROM deliver_at - now())::float8 AS wait
FROM notification_schedule
WHERE status = 'pending' AND deliver_at <= now() + make_interval(secs => $2)
ORDER BY deliver_at
LIMIT $1
"""

DUE_LIMIT = 1000
RESEND_AFTER = 10.0
RETRY_MAX = 10.0


def release_of(scheduled_event_id: uuid.UUID) -> ScheduleEvent:
    """The ``notification.released`` of a scheduled notification: the same for every
    dispatcher that releases it."""
    return ScheduleEvent(
        event_id=release_event_id(scheduled_event_id),
        schema_version=SCHEMA_VERSION,
        event_type=RELEASED,
        scheduled_event_id=scheduled_event_id,
        producer=PRODUCER,
    )


class Scheduler:
    def __init__(self, engine: AsyncEngine, publisher: Publisher, poll_seconds: float) -> None:
        self.engine = engine
        self.publisher = publisher
        self.poll_seconds = poll_seconds
        self.released = 0  # releases published (and confirmed) by this process
        # Seconds until the soonest pending one that is not due yet, if it is due before the
        # next poll: the poll then wakes for it, so a release is not up to a poll late.
        self.next_due: float | None = None
        self._sent: dict[uuid.UUID, float] = {}  # scheduled event_id -> when released

    async def run(self, stop: asyncio.Event) -> None:
        """Release what is due, every ``poll_seconds``, until ``stop`` is set. A failure
        (PostgreSQL or RabbitMQ away) is logged and the poll retried with backoff."""
        failures = 0
        while not stop.is_set():
            pause = self.poll_seconds
            try:
                await self.release_due()
                if self.next_due is not None:
                    # One is due before the next poll: wake for it, not a poll later.
                    pause = min(pause, self.next_due)
            except PublishError as exc:
                # The publish itself waited for RabbitMQ (up to PUBLISH_TIMEOUT): try again at
                # once, so that a release goes out as soon as the broker is back.
                failures += 1
                log.warning("could not release due notifications (%s); retrying",
                            one_line(exc))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - the database away: retried, never fatal
                failures += 1
                pause = min(self.poll_seconds * 2**failures, RETRY_MAX)
                log.warning("could not read the schedule (%s); retrying in %.1fs",
                            one_line(exc), pause)  # fmt: skip
            else:
                if failures:
                    log.warning("scheduler working again after %d failures", failures)
                failures = 0
            if await wait_event(stop, pause):
                return

    async def release_due(self) -> int:
        """Publish a release for every due notification not released in the last
        ``RESEND_AFTER`` seconds; the number published, once RabbitMQ confirmed them all."""
        async with self.engine.connect() as conn:
            rows = (await conn.exec_driver_sql(DUE, (DUE_LIMIT, self.poll_seconds))).all()
        due = [row.event_id for row in rows if row.wait <= 0]
        coming = [row.wait for row in rows if row.wait > 0]
        self.next_due = min(coming) if coming else None
        loop = asyncio.get_running_loop()
        now = loop.time()
        still = set(due)
        self._sent = {k: at for k, at in self._sent.items() if k in still}
        fresh = [i for i in due if now - self._sent.get(i, now - RESEND_AFTER) >= RESEND_AFTER]
        if not fresh:
            return 0
        await self.publisher.publish_many([release_of(i) for i in fresh])
        confirmed = loop.time()
        for event_id in fresh:
            self._sent[event_id] = confirmed
        self.released += len(fresh)
        log.info("released %d scheduled notifications", len(fresh))
        return len(fresh)
