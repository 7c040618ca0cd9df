"""Read-side SQL over the projections, shared by every process that reads them (the edge's
replay, the REST history, the dispatcher's unread counts). Each query is written to be an
index scan on the partial indexes of ``dispatcher.schema``.

Parameters: ``user_id``; ``window``, the broadcast unread window (a timedelta); ``critical``,
the operator's critical types (a list of text, ``producers.preferences.critical_types``), which
no preference mutes; ``limit``; ``since``, a seq.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from dispatcher.statements import log_range

# A broadcast that still counts for its users: sent within the unread window. One definition
# for every query below; dispatcher/statements.py applies the same rule at a given moment.
IN_WINDOW = "n.audience = 'broadcast' AND n.created_at > now() - CAST(:window AS interval)"

COLUMNS = """n.seq, n.event_id, n.audience, n.user_id, n.room, n.notification_type, n.category,
    n.priority, n.title, n.message, n.data, n.action_url, n.producer, n.occurred_at"""

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

# The log's end: the ids beside the partitioned log have every seq, in one index.
HIGH_WATER = text("SELECT coalesce(max(seq), 0) FROM notification_event_ids")

# The events that change one user's state, each routed to the user's sockets as a sync frame
# (``dispatcher.records``): the syncs an edge missed during a broker blip.
USER_STATE_EVENTS = (
    "notification.read",
    "notification.all_read",
    "notification.seen",
    "notification.archived",
    "notification.unarchived",
    "notification.preferences",
)

# The user-state events of some users in a range of the log.
READS_SINCE = text(
    f"""
    SELECT seq, event_type, payload FROM notification_events
    WHERE {log_range(":since", ":high_water")}
      AND event_type IN ({", ".join(f"'{kind}'" for kind in USER_STATE_EVENTS)})
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

# What a row of the user's own notifications carries beside ``COLUMNS``: the user's state of
# it (``r``, absent for a broadcast the user never touched) and when it was logged (the
# moment the edge asks the user's quiet hours about, for a broadcast).
STATE = "n.created_at, r.read_at, r.archived_at, r.suppressed"
NO_STATE = """n.created_at, CAST(NULL AS timestamptz) AS read_at,
    CAST(NULL AS timestamptz) AS archived_at, CAST(NULL AS text) AS suppressed"""

# The connect replay: the user's unread notifications that are neither archived nor muted
# (UNREAD_SEQS' rows, with their columns), each branch an index scan
# (ix_notification_recipients_unread and ix_notifications_broadcast_created_at).
UNREAD = text(
    f"""
    SELECT * FROM (
        SELECT {COLUMNS}, {STATE}
        FROM notification_recipients r JOIN notifications n ON n.seq = r.seq
        WHERE r.user_id = :user_id AND r.read_at IS NULL AND n.audience = 'user'
          AND r.archived_at IS NULL AND r.suppressed IS DISTINCT FROM 'muted'
      UNION ALL
        SELECT {COLUMNS}, {NO_STATE}
        FROM notifications n
        WHERE {IN_WINDOW}
          AND NOT EXISTS (
            SELECT 1 FROM notification_recipients r
            WHERE r.user_id = :user_id AND r.seq = n.seq
              AND (r.read_at IS NOT NULL OR r.archived_at IS NOT NULL))
          AND NOT {BROADCAST_MUTED}
    ) AS mine
    ORDER BY seq DESC
    LIMIT :limit
    """
)

# Every notification of the user after a cursor, read or not, but neither archived nor muted.
SINCE = text(
    f"""
    SELECT {COLUMNS}, {STATE}
    FROM notifications n
    LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = :user_id
    WHERE n.seq > :since
      AND (n.user_id = :user_id
           OR ({IN_WINDOW}))
      AND r.archived_at IS NULL
      AND {NOT_MUTED}
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# A room's notifications after a cursor (the room's history, replayed on subscribe). Rooms are
# an explicit subscription: no preference filters them.
ROOM_SINCE = text(
    f"""
    SELECT {COLUMNS}, {NO_STATE}
    FROM notifications n
    WHERE n.room = :room AND n.seq > :since
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# The statuses of the history: ``all`` (the inbox: everything not archived), ``unread``,
# ``read``, ``unseen`` (unread and after the seen mark: what the badge counts) and
# ``archived``. Muted notifications are in none of them.
HISTORY_STATUSES = ("all", "unread", "read", "unseen", "archived")

# A page of the user's history, newest first, before a seq.
HISTORY = text(
    f"""
    SELECT {COLUMNS}, {STATE}
    FROM notifications n
    LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = :user_id
    WHERE (n.user_id = :user_id
           OR ({IN_WINDOW}))
      AND n.seq < :before_seq
      AND {NOT_MUTED}
      AND (CASE WHEN :status = 'archived' THEN r.archived_at IS NOT NULL
                ELSE r.archived_at IS NULL END)
      AND (:status IN ('all', 'archived')
           OR (:status = 'unread' AND r.read_at IS NULL)
           OR (:status = 'read' AND r.read_at IS NOT NULL)
           OR (:status = 'unseen' AND r.read_at IS NULL AND n.seq > {SEEN_SEQ}))
    ORDER BY n.seq DESC
    LIMIT :limit
    """
)

# What this edge's users and rooms were routed after a seq: the catch-up after a broker blip.
# A personal notification the user's preferences held back when it was routed (muted or
# quiet) was not pushed, so it is not caught up either; broadcasts are filtered per user by
# the edge, which holds its users' preferences.
ROUTED_SINCE = text(
    f"""
    SELECT {COLUMNS}
    FROM notifications n
    LEFT JOIN notification_recipients r ON r.seq = n.seq AND r.user_id = n.user_id
    WHERE n.seq > :since
      AND (n.user_id = ANY(:users)
           OR n.room = ANY(:rooms)
           OR ({IN_WINDOW}))
      AND r.suppressed IS NULL
    ORDER BY n.seq
    LIMIT :limit
    """
)

# A user's preferences and how far they are (the seq of the event that set them; 0: never).
PREFERENCES = text(
    """
    SELECT coalesce((SELECT u.preferences FROM notification_users u
                     WHERE u.user_id = :user_id), '{}'::jsonb) AS preferences,
           coalesce((SELECT u.preferences_seq FROM notification_users u
                     WHERE u.user_id = :user_id), 0) AS preferences_seq
    """
)


def _snapshot(page: TextClause, *, user: bool) -> TextClause:
    """``page`` as one statement that also returns, on each row, the log's high-water mark
    and (``user``) the user's state: the badge counts, the seen mark and the preferences. One
    snapshot, since a statement sees one, and one round trip. A page without rows comes back
    as one row whose notification columns are null."""
    if user:
        state = f"""({COUNTS.text}) AS counts
        LEFT JOIN notification_users u ON u.user_id = :user_id"""
        columns = """counts.unread_count, counts.unseen_count,
            coalesce(u.seen_seq, 0) AS seen_seq, u.preferences AS user_preferences,
            coalesce(u.preferences_seq, 0) AS preferences_seq"""
    else:
        state = "(SELECT 1) AS one"
        columns = """0 AS unread_count, 0 AS unseen_count, 0 AS seen_seq,
            CAST(NULL AS jsonb) AS user_preferences, 0 AS preferences_seq"""
    return text(
        f"""
        WITH page AS MATERIALIZED ({page.text})
        SELECT ({HIGH_WATER.text}) AS high_water, {columns}, page.*
        FROM {state} LEFT JOIN page ON true
        ORDER BY page.seq DESC
        """
    )


# What a handshake, a subscribe and a page of history read: a page of notifications, with
# the high-water mark of the same snapshot (invariant 4) and the user's counts, seen mark and
# preferences.
UNREAD_SNAPSHOT = _snapshot(UNREAD, user=True)
SINCE_SNAPSHOT = _snapshot(SINCE, user=True)
ROOM_SINCE_SNAPSHOT = _snapshot(ROOM_SINCE, user=False)
HISTORY_SNAPSHOT = _snapshot(HISTORY, user=True)
