"""Read-side SQL over the projections, shared by every process that reads them (the edge's
replay, the REST history, the dispatcher's unread counts). Each query is written to be an
index scan on the partial indexes of ``dispatcher.schema``.

Parameters: ``user_id``; ``window``, the broadcast unread window (a timedelta); ``critical``,
the operator's critical types (a list of text, ``producers.preferences.critical_types``), which
no preference mutes; ``limit``; ``since``, a seq.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

# A broadcast that still counts for its users: sent within the unread window. One definition
# for every query below; dispatcher/statements.py applies the same rule at a given moment.
IN_WINDOW = "n.audience = 'broadcast' AND n.created_at > now() - CAST(:window AS interval)"

COLUMNS = """n.seq, n.event_id, n.audience, n.user_id, n.room, n.notification_type, n.category,
    n.priority, n.title, n.message, n.data, n.action_url, n.producer, n.occurred_at"""

# Personal notifications unread by the user, and broadcasts inside the window that the user
# has not read; each branch is an index scan (ix_notification_recipients_unread and
# ix_notifications_broadcast_seq).
UNREAD = text(
    f"""
    SELECT * FROM (
        SELECT {COLUMNS}, r.read_at
        FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
        WHERE r.user_id = :user_id AND r.read_at IS NULL AND n.audience = 'user'
      UNION ALL
        SELECT {COLUMNS}, NULL AS read_at
        FROM notifications n
        WHERE {IN_WINDOW}
          AND NOT EXISTS (
            SELECT 1 FROM notification_recipients r
            WHERE r.user_id = :user_id AND r.seq = n.seq AND r.read_at IS NOT NULL)
    ) AS mine
    ORDER BY seq DESC
    LIMIT :limit
    """
)

# Every notification of the user (read or not) after a cursor.
SINCE = text(
    f"""
    SELECT {COLUMNS}, r.read_at
    FROM notifications n
    LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = :user_id
    WHERE n.seq > :since
      AND (n.user_id = :user_id
           OR ({IN_WINDOW}))
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# A broadcast the user's current preferences mute (``producers.preferences``): its category
# or type is muted and it is not of a critical type (``:critical``, a text[]). Personal
# notifications carry the decision made when they were routed instead
# (``notification_recipients.suppressed``).
BROADCAST_MUTED = """EXISTS (
    SELECT 1 FROM notification_users u
    WHERE u.user_id = :user_id
      AND NOT (n.notification_type = ANY(CAST(:critical AS text[])))
      AND ((u.preferences->'muted_categories') @> to_jsonb(n.category)
           OR (u.preferences->'muted_types') @> to_jsonb(n.notification_type)))"""

# Visible in the user's inbox at all: personal ones not muted when routed, broadcasts not muted
# now. (``r`` is the user's state row, possibly absent for a broadcast.)
NOT_MUTED = f"""(CASE WHEN n.audience = 'user' THEN r.suppressed IS DISTINCT FROM 'muted'
           ELSE NOT {BROADCAST_MUTED} END)"""

# How far the user has seen (0 when never).
SEEN_SEQ = """coalesce((SELECT u.seen_seq FROM notification_users u
    WHERE u.user_id = :user_id), 0)"""

# The seqs that count as unread for the user: personal notifications neither read, archived
# nor muted (through the partial unread index), and broadcasts inside the window that the
# user has neither read nor archived and does not mute.
UNREAD_SEQS = f"""
    SELECT n.seq FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
    WHERE r.user_id = :user_id AND r.read_at IS NULL AND n.audience = 'user'
      AND r.archived_at IS NULL AND r.suppressed IS DISTINCT FROM 'muted'
  UNION ALL
    SELECT n.seq FROM notifications n
    WHERE {IN_WINDOW}
      AND NOT EXISTS (
        SELECT 1 FROM notification_recipients r
        WHERE r.user_id = :user_id AND r.seq = n.seq
          AND (r.read_at IS NOT NULL OR r.archived_at IS NOT NULL))
      AND NOT {BROADCAST_MUTED}"""

# The badge counts: unread (as above) and unseen (those of them after the user's seen mark).
# Parameters: user_id, window, critical.
COUNTS = text(
    f"""
    SELECT count(*) AS unread_count,
           count(*) FILTER (WHERE unread.seq > {SEEN_SEQ}) AS unseen_count
    FROM ({UNREAD_SEQS}) AS unread
    """
)

UNREAD_COUNT = text(f"SELECT count(*) FROM ({UNREAD_SEQS}) AS unread")

HIGH_WATER = text("SELECT coalesce(max(seq), 0) FROM notification_events")

# The read events of some users in a range of the log: the read syncs an edge missed.
READS_SINCE = text(
    """
    SELECT seq, event_type, payload FROM notification_events
    WHERE seq > :since AND seq <= :high_water
      AND event_type IN ('notification.read', 'notification.all_read')
      AND payload->>'user_id' = ANY(:users)
    ORDER BY seq
    LIMIT :limit
    """
)

# The notifications one read event (of seq ``seq``) actually marked, in log order: a read sync
# rebuilt from the log thereby carries the ids the live one carried.
MARKED_BY = text(
    """
    SELECT n.event_id FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
    WHERE r.user_id = :user_id AND r.seq < :seq AND r.read_seq = :seq
    ORDER BY r.seq
    """
)

# A room's notifications after a cursor (the room's history, replayed on subscribe).
ROOM_SINCE = text(
    f"""
    SELECT {COLUMNS}, NULL AS read_at
    FROM notifications n
    WHERE n.room = :room AND n.seq > :since
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# A page of the user's history, newest first, before a seq; ``status`` is all, read or unread.
HISTORY = text(
    f"""
    SELECT {COLUMNS}, r.read_at
    FROM notifications n
    LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = :user_id
    WHERE (n.user_id = :user_id
           OR ({IN_WINDOW}))
      AND n.seq < :before_seq
      AND (:status = 'all'
           OR (:status = 'unread' AND r.read_at IS NULL)
           OR (:status = 'read' AND r.read_at IS NOT NULL))
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# What this edge's users and rooms were routed after a seq: the catch-up after a broker blip.
ROUTED_SINCE = text(
    f"""
    SELECT {COLUMNS}, NULL AS read_at
    FROM notifications n
    WHERE n.seq > :since
      AND (n.user_id = ANY(:users)
           OR n.room = ANY(:rooms)
           OR ({IN_WINDOW}))
    ORDER BY n.seq
    LIMIT :limit
    """
)


def _snapshot(page: TextClause, *, unread: bool) -> TextClause:
    """``page`` as one statement that also returns the log's high-water mark and (``unread``)
    the user's unread count on each row: one snapshot, since a statement sees one, and one
    round trip. A page without rows comes back as one row whose notification columns are
    null."""
    count = f"({UNREAD_COUNT.text})" if unread else "0"
    return text(
        f"""
        WITH page AS MATERIALIZED ({page.text})
        SELECT ({HIGH_WATER.text}) AS high_water, {count} AS unread_count, page.*
        FROM (SELECT 1) AS one LEFT JOIN page ON true
        ORDER BY page.seq DESC
        """
    )


# What a handshake, a subscribe and a page of history read: a page of notifications, with
# the high-water mark of the same snapshot (invariant 4) and the user's unread count.
UNREAD_SNAPSHOT = _snapshot(UNREAD, unread=True)
SINCE_SNAPSHOT = _snapshot(SINCE, unread=True)
ROOM_SINCE_SNAPSHOT = _snapshot(ROOM_SINCE, unread=False)
HISTORY_SNAPSHOT = _snapshot(HISTORY, unread=True)
