"""the event log partitioned by month, its event ids kept apart, a base for retention

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:00:00.000000

``notification_events`` becomes a table partitioned by RANGE of ``recorded_at``, one partition
per month (UTC), and every row of the old table is carried over with its seq. Its primary key
is (seq, recorded_at): a partitioned table's unique constraints must contain the partition
key, so the uniqueness of ``event_id`` across partitions moves to ``notification_event_ids``,
which the append writes in the same statement as the log (``dispatcher.statements.INSERT_LOG``);
the log's foreign key on seq and the projections' point there. ``notification_base`` holds what
retention keeps of the events it detaches (docs/event-store.md, "Partitions and retention").
``notification_recipients`` gets an index on ``seq``: deleting a notification (a prune) finds
its recipients through the foreign key's cascade, by seq, which no other index leads with.

The copy takes the old table's ids, then its rows, through an INSERT ... SELECT each, with the
log locked for the whole migration: about 73,000 events/s on a 2-core machine, some two and a
half minutes per ten million events (``tests/bench/bench_migration.py``). The downgrade carries the attached partitions back into one table; it fails
(on the foreign keys) once a partition has been detached, since those events are gone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partitions are created this far ahead of now by the migration; the dispatcher and
# ``notify partitions create`` keep them ahead (dispatcher/partitions.py).
MONTHS_AHEAD = 3

FUNCTIONS = (
    # The partition of the month that contains ``month`` (UTC), made if missing, with the
    # append-only TRUNCATE trigger of its own (row triggers are inherited from the parent,
    # statement triggers are not). True if it was made.
    """
    CREATE FUNCTION notification_events_create_partition(month timestamptz) RETURNS boolean
    LANGUAGE plpgsql AS $$
    DECLARE
        first timestamp := date_trunc('month', month AT TIME ZONE 'UTC');
        name text := 'notification_events_' || to_char(first, '"y"YYYY"m"MM');
    BEGIN
        IF to_regclass(format('public.%I', name)) IS NOT NULL THEN
            RETURN false;
        END IF;
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF notification_events FOR VALUES FROM (%L) TO (%L)',
            name, first AT TIME ZONE 'UTC', (first + interval '1 month') AT TIME ZONE 'UTC');
        EXECUTE format(
            'CREATE TRIGGER notification_events_no_truncate BEFORE TRUNCATE ON public.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION notification_events_append_only()', name);
        RETURN true;
    END
    $$
    """,
    # Every month's partition from ``since`` to ``through``; the number made.
    """
    CREATE FUNCTION notification_events_ensure_partitions(since timestamptz, through timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
        month timestamptz := since;
        made integer := 0;
    BEGIN
        WHILE date_trunc('month', month AT TIME ZONE 'UTC')
              <= date_trunc('month', through AT TIME ZONE 'UTC') LOOP
            IF notification_events_create_partition(month) THEN
                made := made + 1;
            END IF;
            month := month + interval '1 month';
        END LOOP;
        RETURN made;
    END
    $$
    """,
)
FUNCTIONS_DROP = (
    "DROP FUNCTION IF EXISTS notification_events_ensure_partitions(timestamptz, timestamptz)",
    "DROP FUNCTION IF EXISTS notification_events_create_partition(timestamptz)",
)

# The append-only triggers of 0001, on the partitioned log and on the ids beside it.
TRIGGERS = (
    """
    CREATE TRIGGER notification_events_no_update_delete
    BEFORE UPDATE OR DELETE ON notification_events
    FOR EACH ROW EXECUTE FUNCTION notification_events_append_only()
    """,
    """
    CREATE TRIGGER notification_events_no_truncate
    BEFORE TRUNCATE ON notification_events
    FOR EACH STATEMENT EXECUTE FUNCTION notification_events_append_only()
    """,
    """
    CREATE TRIGGER notification_event_ids_no_update_delete
    BEFORE UPDATE OR DELETE ON notification_event_ids
    FOR EACH ROW EXECUTE FUNCTION notification_events_append_only()
    """,
    """
    CREATE TRIGGER notification_event_ids_no_truncate
    BEFORE TRUNCATE ON notification_event_ids
    FOR EACH STATEMENT EXECUTE FUNCTION notification_events_append_only()
    """,
)
OLD_TRIGGERS_DROP = (
    "DROP TRIGGER notification_events_no_truncate ON notification_events",
    "DROP TRIGGER notification_events_no_update_delete ON notification_events",
)

# Retention (dispatcher/partitions.py): the projections as the detached events left them,
# which ``notify rebuild`` starts from, and archived partitions. Copies of the projection
# tables' columns, constraints and indexes; the recipients' rows go with their notification,
# as in the projections. A migration that changes a projection table changes its base too.
PROJECTIONS = (
    "notifications",
    "notification_recipients",
    "notification_users",
    "notification_schedule",
)
BASE = (
    "CREATE SCHEMA notification_base",
    "CREATE SCHEMA notification_archive",
    *(
        f"CREATE TABLE notification_base.{table} (LIKE public.{table} INCLUDING ALL)"
        for table in PROJECTIONS
    ),
    """
    ALTER TABLE notification_base.notification_recipients
    ADD FOREIGN KEY (seq) REFERENCES notification_base.notifications (seq) ON DELETE CASCADE
    """,
    # One row: the base holds every event up to seq, which were all recorded before
    # recorded_before.
    """
    CREATE TABLE notification_base.horizon (
        id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        seq bigint NOT NULL,
        recorded_before timestamptz NOT NULL,
        detached_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)
BASE_DROP = (
    "DROP SCHEMA notification_base CASCADE",
    "DROP SCHEMA notification_archive CASCADE",
)

OLD = "notification_events_0005"


def _log_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("producer", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    ]


COLUMNS = "seq, event_id, event_type, occurred_at, recorded_at, producer, payload"
COMMENT = "Append-only event log; seq is a total order that matches commit order."


def upgrade() -> None:
    op.execute("LOCK TABLE notification_events IN ACCESS EXCLUSIVE MODE")
    op.drop_constraint(
        "fk_notifications_seq_notification_events", "notifications", type_="foreignkey"
    )
    op.drop_constraint(
        "fk_notification_schedule_seq_notification_events",
        "notification_schedule",
        type_="foreignkey",
    )
    for statement in OLD_TRIGGERS_DROP:
        op.execute(statement)
    # The old table steps aside with its constraints and sequence renamed, so the new ones
    # take the names of the metadata.
    op.rename_table("notification_events", OLD)
    op.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT pk_notification_events TO pk_{OLD}")
    op.execute(
        f"ALTER TABLE {OLD} RENAME CONSTRAINT uq_notification_events_event_id TO uq_{OLD}_event_id"
    )
    op.execute(f"ALTER SEQUENCE notification_events_seq_seq RENAME TO {OLD}_seq_seq")

    op.create_table(
        "notification_event_ids",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_notification_event_ids")),
        sa.UniqueConstraint("seq", name=op.f("uq_notification_event_ids_seq")),
        comment="Every event_id ever logged, with its seq and recorded_at (written with "
        "notification_events by the append; kept when a partition is detached).",
    )
    op.create_table(
        "notification_events",
        *_log_columns(),
        sa.PrimaryKeyConstraint("seq", "recorded_at", name=op.f("pk_notification_events")),
        # Every row of the log has its ids row, written first (by the append, in the same
        # statement): a writer that skips the ids is refused, one that writes them for an
        # event_id logged before fails on their primary key.
        sa.ForeignKeyConstraint(
            ["seq"],
            ["notification_event_ids.seq"],
            name=op.f("fk_notification_events_seq_notification_event_ids"),
        ),
        comment=COMMENT,
        postgresql_partition_by="RANGE (recorded_at)",
    )
    for statement in FUNCTIONS:
        op.execute(statement)
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute(
        "SELECT notification_events_ensure_partitions("
        f"coalesce((SELECT min(recorded_at) FROM {OLD}), now()), "
        f"now() + interval '{MONTHS_AHEAD} months')"
    )
    # The ids, the rows in seq order, then the sequence where the old one stood (its gaps
    # included).
    op.execute(
        f"INSERT INTO notification_event_ids (event_id, seq, recorded_at) "
        f"SELECT event_id, seq, recorded_at FROM {OLD}"
    )
    op.execute(
        f"INSERT INTO notification_events ({COLUMNS}) OVERRIDING SYSTEM VALUE "
        f"SELECT {COLUMNS} FROM {OLD} ORDER BY seq"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('notification_events', 'seq'), last_value, "
        f"is_called) FROM {OLD}_seq_seq"
    )
    op.drop_table(OLD)
    op.create_foreign_key(
        op.f("fk_notifications_seq_notification_event_ids"),
        "notifications",
        "notification_event_ids",
        ["seq"],
        ["seq"],
    )
    op.create_foreign_key(
        op.f("fk_notification_schedule_seq_notification_event_ids"),
        "notification_schedule",
        "notification_event_ids",
        ["seq"],
        ["seq"],
    )
    op.create_index(op.f("ix_notification_recipients_seq"), "notification_recipients", ["seq"])
    for statement in BASE:
        op.execute(statement)
    # Statistics for the carried rows. Not for an empty log (a new database): an analyzed
    # empty table is planned at its true size, a few pages, and the foreign keys' checks that
    # a session plans then (notifications -> ids) keep a sequential scan of the ids while the
    # table grows, until autovacuum's next analyze; a table never analyzed is planned as at
    # least ten pages, through its index.
    if (
        op.get_bind()
        .execute(sa.text("SELECT EXISTS (SELECT FROM notification_event_ids)"))
        .scalar()
    ):
        op.execute("ANALYZE notification_events")
        op.execute("ANALYZE notification_event_ids")


def downgrade() -> None:
    """The attached partitions back into one table (the base and the archive are dropped)."""
    op.execute("LOCK TABLE notification_events IN ACCESS EXCLUSIVE MODE")
    for statement in BASE_DROP:
        op.execute(statement)
    op.drop_index(op.f("ix_notification_recipients_seq"), table_name="notification_recipients")
    op.drop_constraint(
        "fk_notifications_seq_notification_event_ids", "notifications", type_="foreignkey"
    )
    op.drop_constraint(
        "fk_notification_schedule_seq_notification_event_ids",
        "notification_schedule",
        type_="foreignkey",
    )
    op.create_table(
        OLD,
        *_log_columns(),
        sa.PrimaryKeyConstraint("seq", name="pk_notification_events_plain"),
        sa.UniqueConstraint("event_id", name="uq_notification_events_plain_event_id"),
        comment=COMMENT,
    )
    op.execute(
        f"INSERT INTO {OLD} ({COLUMNS}) OVERRIDING SYSTEM VALUE "
        f"SELECT {COLUMNS} FROM notification_events ORDER BY seq"
    )
    op.execute(
        f"SELECT setval(pg_get_serial_sequence('{OLD}', 'seq'), last_value, is_called) "
        "FROM notification_events_seq_seq"
    )
    op.drop_table("notification_events")  # its partitions and triggers go with it
    op.drop_table("notification_event_ids")
    for statement in FUNCTIONS_DROP:
        op.execute(statement)
    op.rename_table(OLD, "notification_events")
    op.execute(
        "ALTER TABLE notification_events "
        "RENAME CONSTRAINT pk_notification_events_plain TO pk_notification_events"
    )
    op.execute(
        "ALTER TABLE notification_events "
        "RENAME CONSTRAINT uq_notification_events_plain_event_id TO uq_notification_events_event_id"
    )
    op.execute(f"ALTER SEQUENCE {OLD}_seq_seq RENAME TO notification_events_seq_seq")
    op.create_foreign_key(
        "fk_notifications_seq_notification_events",
        "notifications",
        "notification_events",
        ["seq"],
        ["seq"],
    )
    op.create_foreign_key(
        "fk_notification_schedule_seq_notification_events",
        "notification_schedule",
        "notification_events",
        ["seq"],
        ["seq"],
    )
    for statement in (
        """
        CREATE TRIGGER notification_events_no_update_delete
        BEFORE UPDATE OR DELETE ON notification_events
        FOR EACH ROW EXECUTE FUNCTION notification_events_append_only()
        """,
        """
        CREATE TRIGGER notification_events_no_truncate
        BEFORE TRUNCATE ON notification_events
        FOR EACH STATEMENT EXECUTE FUNCTION notification_events_append_only()
        """,
    ):
        op.execute(statement)
