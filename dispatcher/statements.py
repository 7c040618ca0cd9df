"""The write-side SQL of the event store and its projections (run with ``exec_driver_sql``).

Each batch writes each table with one statement whatever its size: the rows travel as one
JSON document (an array of rows, each an array of its columns, ``rows``) and
``jsonb_array_elements`` turns them back into rows on the server. Unlike COPY, that form can
skip the events already in the log (``INSERT_LOG``, under the append lock) and say
``RETURNING`` (the seqs the log drew); unlike an executemany it is one round trip and one
plan per table. (Arrays, one per column, were the form before: the driver's encoding of each
element cost the dispatcher more than the JSON of the whole batch, and a payload travels as it
is, not encoded again.) The read side, shared
with the edge, lives in ``dispatcher.queries``.

Parameters are positional (``$1``, asyncpg's style); each statement names them in its comment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson


def rows(values: Iterable[Sequence[Any]]) -> str:
    """The rows of a batch as the JSON parameter of an insert below: UUIDs and datetimes as
    their text (a naive datetime counts as UTC), an ``orjson.Fragment`` as the JSON it holds."""
    return orjson.dumps(list(values), option=orjson.OPT_NAIVE_UTC).decode()


# Serialises appends from drawing a seq to committing; see dispatcher/store.py for why.
APPEND_LOCK = "LOCK TABLE notification_events IN EXCLUSIVE MODE"

# Serialises append-then-publish across dispatcher processes: a session-level advisory lock,
# taken before the append and released once the batch's deliveries are confirmed, so that
# deliveries reach RabbitMQ in log order (see dispatcher/store.py, "Routing in log order").
ROUTING_LOCK_KEY = 0x6E6F7469666
ROUTING_LOCK = f"SELECT pg_advisory_lock({ROUTING_LOCK_KEY})"
ROUTING_UNLOCK = f"SELECT pg_advisory_unlock({ROUTING_LOCK_KEY})"

# Where routing stands: the last seq whose deliveries were confirmed, and the log's end (one
# probe of the ids' seq index, where the partitioned log would probe every partition).
ROUTING_STATE = """
SELECT (SELECT routed_seq FROM notification_routing WHERE id = 1) AS routed_seq,
       (SELECT coalesce(max(seq), 0) FROM notification_event_ids) AS top
"""


def log_range(low: str, high: str) -> str:
    """The condition on ``notification_events`` for the seqs in (low, high]: with the least
    recorded_at of those seqs (from ``notification_event_ids``), which lets PostgreSQL skip the
    partitions of older months at run time. Exact, whatever the order of recorded_at."""
    return f"""seq > {low} AND seq <= {high}
  AND recorded_at >= (SELECT min(i.recorded_at) FROM notification_event_ids i
                      WHERE i.seq > {low} AND i.seq <= {high})"""


def routed_and_unlock(seq: int) -> str:
    """Record that every delivery up to ``seq`` is confirmed, commit, then release the routing
    lock: one simple-query round trip, so no other dispatcher can take the lock and read the
    mark before it is committed. The commit does not wait for the disk: a mark lost in a
    PostgreSQL crash only makes the next dispatcher publish some deliveries again, which the
    edges drop, and a second flush per batch would halve the dispatcher's rate."""
    return f"""
BEGIN;
SET LOCAL synchronous_commit TO OFF;
INSERT INTO notification_routing (id, routed_seq) VALUES (1, {int(seq)})
ON CONFLICT (id) DO UPDATE SET routed_seq = excluded.routed_seq, routed_at = now()
    WHERE notification_routing.routed_seq < excluded.routed_seq;
COMMIT;
{ROUTING_UNLOCK};
"""


# $1 routed_seq, $2 top, $3 limit: events committed but never routed (their dispatcher died
# or lost the broker between its commit and the confirms), oldest first. Only the types that
# have deliveries (``events.DELIVERED_EVENT_TYPES``): a prune and a cancel have none, and a
# type this version does not know (logged by a newer one) is not this version's to route.
UNROUTED = f"""
SELECT seq, event_type, payload FROM notification_events
WHERE {log_range("$1", "$2")}
  AND event_type IN ('notification.created', 'notification.released', 'notification.read',
                     'notification.all_read', 'notification.seen', 'notification.archived',
                     'notification.unarchived', 'notification.preferences')
ORDER BY seq
LIMIT $3
"""

# $1 the rows (``rows``): [event_id, event_type, occurred_at, producer, payload (JSON)].
# One statement writes both tables: the log is partitioned, so the uniqueness of event_id
# across its partitions (detached ones included) lives in ``notification_event_ids``. The ids
# are inserted first, with ``ON CONFLICT DO NOTHING``: an event_id logged before, or a second
# copy in the batch (the first one wins), is skipped there, and only the rows that insert
# returned go into the log, with the seq and recorded_at the ids got. The seqs come from the
# log's own sequence, drawn in the batch's order (PostgreSQL evaluates ``nextval`` after the
# sort); a skipped copy leaves a gap, as a rolled-back append does. Nothing can race the
# check: other appends wait for the append lock. Another writer must do the same: the log's
# foreign key on seq refuses a row whose ids row is missing, and an ids row for an event_id
# logged before fails on their primary key. ``recorded_at`` is the statement's time, taken
# after that lock: it never goes back as seq goes up, so each month's partition holds one
# range of seqs. (Migration 0006 first had a statement trigger of the log write the ids
# from its transition table, after a ``NOT EXISTS`` probe: the append took about twice as long
# as this statement, and COPY into the log fell back to inserting row by row.)
INSERT_LOG = """
WITH batch AS (
    SELECT DISTINCT ON (event_id) (r->>0)::uuid AS event_id, r->>1 AS event_type,
        (r->>2)::timestamptz AS occurred_at, r->>3 AS producer, r->4 AS payload, position
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(r, position)
    ORDER BY event_id, position
), ids AS (
    INSERT INTO notification_event_ids (event_id, seq, recorded_at)
    SELECT event_id, nextval('notification_events_seq_seq'), statement_timestamp()
    FROM batch ORDER BY position
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, seq, recorded_at
)
INSERT INTO notification_events (seq, event_id, event_type, occurred_at, recorded_at, producer,
    payload) OVERRIDING SYSTEM VALUE
SELECT i.seq, i.event_id, b.event_type, b.occurred_at, i.recorded_at, b.producer, b.payload
FROM ids i JOIN batch b ON b.event_id = i.event_id
ORDER BY i.seq
RETURNING seq, event_id, recorded_at
"""

# $1 the rows (``rows``): the columns of ``notifications``, in this order.
INSERT_NOTIFICATIONS = """
INSERT INTO notifications (seq, event_id, audience, user_id, room, notification_type, category,
    priority, title, message, data, action_url, producer, occurred_at, created_at)
SELECT (r->>0)::bigint, (r->>1)::uuid, r->>2, r->>3, r->>4, r->>5, r->>6, r->>7, r->>8, r->>9,
    r->10, r->>11, r->>12, (r->>13)::timestamptz, (r->>14)::timestamptz
FROM jsonb_array_elements($1::jsonb) AS e(r)
"""

# $1 the rows (``rows``): [user_id, seq, suppressed], the state row of each new personal
# notification, with what the user's preferences made of it (null, 'muted' or 'quiet').
INSERT_RECIPIENTS = """
INSERT INTO notification_recipients (user_id, seq, suppressed)
SELECT r->>0, (r->>1)::bigint, r->>2 FROM jsonb_array_elements($1::jsonb) AS e(r)
"""

# $1 user_id[]: the preferences of the users a batch routes personal notifications to (a user
# without a row has none).
USER_PREFERENCES = """
SELECT user_id, preferences FROM notification_users WHERE user_id = ANY($1::text[])
"""

# $1 the rows (``rows``): [seq, event_id, deliver_at], each notification.created that waits in
# the schedule.
INSERT_SCHEDULE = """
INSERT INTO notification_schedule (seq, event_id, deliver_at)
SELECT (r->>0)::bigint, (r->>1)::uuid, (r->>2)::timestamptz
FROM jsonb_array_elements($1::jsonb) AS e(r)
"""

# $1 event_id[]: the schedule rows a batch's releases and cancels name, with the envelope each
# was logged with. (Appends are serialised by the append lock, so nothing changes them between
# this read and the batch's commit.)
SCHEDULED = """
SELECT s.event_id, s.status, e.payload FROM notification_schedule s
JOIN notification_event_ids i ON i.seq = s.seq
JOIN notification_events e ON e.seq = i.seq AND e.recorded_at = i.recorded_at
WHERE s.event_id = ANY($1::uuid[])
"""

# $1 the rows (``rows``): [event_id, 'released' or 'cancelled', the seq of that event]. Only a
# pending row changes.
SETTLE_SCHEDULE = """
UPDATE notification_schedule s
SET status = r->>1,
    released_seq = CASE WHEN r->>1 = 'released' THEN (r->>2)::bigint ELSE s.released_seq END,
    cancelled_seq = CASE WHEN r->>1 = 'cancelled' THEN (r->>2)::bigint ELSE s.cancelled_seq END
FROM jsonb_array_elements($1::jsonb) AS e(r)
WHERE s.event_id = (r->>0)::uuid AND s.status = 'pending'
"""

# notification.seen: $1 user_id, $2 min(up_to_seq, the event's seq - 1), $3 seen_at. The mark
# only moves forward; returns it.
SEE = """
INSERT INTO notification_users (user_id, seen_seq, seen_at) VALUES ($1, $2, $3)
ON CONFLICT (user_id) DO UPDATE
SET seen_seq = greatest(notification_users.seen_seq, excluded.seen_seq),
    seen_at = excluded.seen_at
RETURNING seen_seq
"""

# notification.preferences: $1 user_id, $2 the preferences (JSON), $3 the event's seq, $4 its
# time. Replaces them whole.
SET_PREFERENCES = """
INSERT INTO notification_users (user_id, preferences, preferences_seq, preferences_at)
VALUES ($1, $2::jsonb, $3, $4)
ON CONFLICT (user_id) DO UPDATE
SET preferences = excluded.preferences,
    preferences_seq = excluded.preferences_seq,
    preferences_at = excluded.preferences_at
"""

# notification.archived with all_read: $1 user_id, $2 the highest seq to archive, $3
# archived_at, $4 the event's seq. Every notification of the user read and not archived (its
# state row says so: personal ones and the broadcasts the user read).
ARCHIVE_ALL_READ = """
WITH marked AS (
    UPDATE notification_recipients r SET archived_at = $3, archived_seq = $4
    FROM notifications n
    WHERE r.user_id = $1 AND r.seq <= $2 AND r.read_at IS NOT NULL AND r.archived_at IS NULL
      AND n.seq = r.seq
    RETURNING n.event_id, r.seq
)
SELECT event_id FROM marked ORDER BY seq
"""

# notification.unarchived: $1 user_id, $2 event_id[], $3 the event's seq. Returns the event_ids
# it brought back, in log order.
UNARCHIVE = """
WITH marked AS (
    UPDATE notification_recipients r SET archived_at = NULL, archived_seq = $3
    FROM notifications n
    WHERE n.event_id = ANY($2::uuid[]) AND n.seq < $3
      AND r.user_id = $1 AND r.seq = n.seq AND r.archived_at IS NOT NULL
    RETURNING n.event_id, r.seq
)
SELECT event_id FROM marked ORDER BY seq
"""


def _mark(target: str, state: str = "read") -> str:
    """A statement that marks the ``target`` notifications (seq, event_id, audience) read (or
    archived: ``state``) for user $1 at $3 by the event of seq $4, each once, and returns the
    event_id of each one it actually marked, in log order. A personal notification already has
    its state row; a broadcast gets the user's row now. The two branches touch disjoint rows
    (by audience), as one statement may not modify a row twice."""
    at, seq = f"{state}_at", f"{state}_seq"
    return f"""
WITH target AS ({target}
), personal AS (
    UPDATE notification_recipients r SET {at} = $3, {seq} = $4
    FROM target t
    WHERE t.audience = 'user' AND r.user_id = $1 AND r.seq = t.seq AND r.{at} IS NULL
    RETURNING t.event_id, t.seq
), broadcast AS (
    INSERT INTO notification_recipients (user_id, seq, {at}, {seq})
    SELECT $1, t.seq, $3, $4 FROM target t WHERE t.audience = 'broadcast'
    ON CONFLICT (user_id, seq) DO UPDATE SET {at} = excluded.{at}, {seq} = $4
        WHERE notification_recipients.{at} IS NULL
    RETURNING seq
)
SELECT event_id FROM (
    SELECT event_id, seq FROM personal
    UNION ALL
    SELECT t.event_id, t.seq FROM broadcast b JOIN target t ON t.seq = b.seq
) AS marked ORDER BY seq
"""


# The notifications an event names by ``ids`` ($2): the user's own ($1) and broadcasts, and
# only ones logged before the event ($4), so that a rebuild, applying the log in order, marks
# exactly the same rows.
BY_IDS = """
    SELECT n.seq, n.event_id, n.audience FROM notifications n
    WHERE n.event_id = ANY($2::uuid[]) AND n.seq < $4
      AND (n.user_id = $1 OR n.audience = 'broadcast')"""

# notification.archived with ids: $1 user_id, $2 event_id[], $3 archived_at, $4 the event's
# seq; returns the event_ids it archived, in log order.
ARCHIVE = _mark(BY_IDS, "archived")


# notification.read: $1 user_id, $2 event_id[], $3 read_at, $4 the read event's seq.
MARK_READ = _mark(BY_IDS)

# notification.all_read: $1 user_id, $2 the highest seq to mark, $3 read_at, $4 the read
# event's seq, $5 the broadcast unread window. Personal notifications are found through the
# partial unread index; broadcasts are those still inside the window at the time of the read
# event (not of the rebuild, so that a rebuild gives the same rows).
MARK_ALL_READ = _mark("""
    SELECT n.seq, n.event_id, n.audience
    FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
    WHERE r.user_id = $1 AND r.read_at IS NULL AND r.seq <= $2 AND n.audience = 'user'
    UNION ALL
    SELECT n.seq, n.event_id, n.audience FROM notifications n
    WHERE n.audience = 'broadcast' AND n.created_at > $3::timestamptz - $5::interval
      AND n.seq <= $2""")

# notification.pruned: $1 the prune event's seq, $2 cutoff, $3 the prune event's time, $4 the
# broadcast unread window. Removes what nobody can still have unread: personal notifications
# their user has read, room notifications (history, with no read state) and broadcasts past
# both the cutoff and the unread window. State rows go with them (ON DELETE CASCADE).
PRUNE = """
DELETE FROM notifications n
WHERE n.seq < $1 AND n.created_at < $2
  AND CASE n.audience
        WHEN 'user' THEN EXISTS (
            SELECT 1 FROM notification_recipients r
            WHERE r.seq = n.seq AND r.user_id = n.user_id AND r.read_at IS NOT NULL)
        WHEN 'broadcast' THEN n.created_at < $3::timestamptz - $4::interval
        ELSE true
      END
"""

# Delivery receipts: $1 user_id[], $2 seq[]. Sets delivered_at once. A personal notification
# already has its state row; a broadcast gets the user's row now. The two branches touch
# disjoint rows (by audience), as one statement may not modify a row twice. Receipts for
# notifications that are not the user's, or no longer projected, change nothing.
RECORD_DELIVERIES = """
WITH receipt AS (
    SELECT DISTINCT r.user_id, r.seq FROM unnest($1::text[], $2::bigint[]) AS r(user_id, seq)
), personal AS (
    UPDATE notification_recipients s SET delivered_at = now()
    FROM receipt x JOIN notifications n ON n.seq = x.seq AND n.audience = 'user'
    WHERE s.user_id = x.user_id AND s.seq = x.seq AND s.delivered_at IS NULL
)
INSERT INTO notification_recipients (user_id, seq, delivered_at)
SELECT x.user_id, x.seq, now()
FROM receipt x JOIN notifications n ON n.seq = x.seq AND n.audience = 'broadcast'
ON CONFLICT (user_id, seq) DO UPDATE SET delivered_at = excluded.delivered_at
    WHERE notification_recipients.delivered_at IS NULL
"""

# The dispatcher's own reads of the projections, to rebuild deliveries from the log
# (``dispatcher.store.rebuilt_delivery``).

# $1 seq[]: the notifications routed at these seqs (due at once, or released), each with what
# its user's preferences made of it (personal ones only). A seq without a row was scheduled
# and not released at that seq, or pruned since.
ROUTED_AT = """
SELECT n.seq, n.event_id, n.audience, n.user_id, n.room, n.notification_type, n.category,
    n.priority, n.title, n.message, n.data, n.action_url, n.producer, n.occurred_at,
    r.suppressed
FROM notifications n
LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = n.user_id
WHERE n.seq = ANY($1::bigint[])
"""

# $1 user_id, $2 the seq of an archive or unarchive event: the notifications whose archived
# state that event set last, in log order.
ARCHIVED_BY = """
SELECT n.event_id FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
WHERE r.user_id = $1 AND r.archived_seq = $2
ORDER BY r.seq
"""

# $1 user_id: the user's seen mark (0 when never).
SEEN_MARK = """
SELECT coalesce((SELECT seen_seq FROM notification_users WHERE user_id = $1), 0)
"""
