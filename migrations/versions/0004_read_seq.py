"""read seq

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: adding it rewrites nothing. Rows read before it exist keep null.
    op.add_column(
        "notification_recipients",
        sa.Column(
            "read_seq",
            sa.BigInteger(),
            nullable=True,
            comment="seq of the read event that marked this notification read",
        ),
    )


def downgrade() -> None:
    op.drop_column("notification_recipients", "read_seq")
