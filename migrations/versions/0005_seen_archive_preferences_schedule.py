"""seen, archive, preferences and schedule

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: adding them rewrites no row of a large table.
    op.add_column(
        "notification_recipients",
        sa.Column("archived_at", sa.TIMESTAMP(timezone=True), nullable=True),
    )
    op.add_column(
        "notification_recipients",
        sa.Column(
            "archived_seq",
            sa.BigInteger(),
            nullable=True,
            comment="seq of the archive or unarchive event that last changed archived_at",
        ),
    )
    op.add_column(
        "notification_recipients",
        sa.Column(
            "suppressed",
            sa.Text(),
            nullable=True,
            comment="muted or quiet: what the user's preferences made of it when it was routed",
        ),
    )
    op.create_check_constraint(
        op.f("ck_notification_recipients_suppressed_kind"),
        "notification_recipients",
        "suppressed IN ('muted', 'quiet')",
    )
    op.create_table(
        "notification_users",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column(
            "seen_seq",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="every notification of the user up to this seq has been seen",
        ),
        sa.Column("seen_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("preferences_seq", sa.BigInteger(), nullable=True),
        sa.Column("preferences_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_users")),
        comment="Per-user state that is not about one notification: the seen mark, preferences.",
    )
    op.create_table(
        "notification_schedule",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("deliver_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("released_seq", sa.BigInteger(), nullable=True),
        sa.Column("cancelled_seq", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'released', 'cancelled')",
            name=op.f("ck_notification_schedule_status_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["seq"],
            ["notification_events.seq"],
            name=op.f("fk_notification_schedule_seq_notification_events"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_notification_schedule")),
        sa.UniqueConstraint("event_id", name=op.f("uq_notification_schedule_event_id")),
        comment="Scheduled notifications: logged at once, projected into notifications when due.",
    )
    op.create_index(
        "ix_notification_schedule_pending_deliver_at",
        "notification_schedule",
        ["deliver_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_notification_schedule_pending_deliver_at",
        table_name="notification_schedule",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("notification_schedule")
    op.drop_table("notification_users")
    op.drop_constraint(
        op.f("ck_notification_recipients_suppressed_kind"), "notification_recipients"
    )
    op.drop_column("notification_recipients", "suppressed")
    op.drop_column("notification_recipients", "archived_seq")
    op.drop_column("notification_recipients", "archived_at")
