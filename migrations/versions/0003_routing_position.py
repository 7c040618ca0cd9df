"""routing position

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_routing",
        sa.Column("id", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("routed_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "routed_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_notification_routing_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_routing")),
        comment="One row: every event up to routed_seq has had its deliveries published.",
    )
    # Whatever the log holds when this runs was routed by the version before (or is left to
    # the clients' replay): routing resumes after it, not from the start of the log.
    op.execute(
        "INSERT INTO notification_routing (id, routed_seq) "
        "SELECT 1, coalesce(max(seq), 0) FROM notification_events"
    )


def downgrade() -> None:
    op.drop_table("notification_routing")
