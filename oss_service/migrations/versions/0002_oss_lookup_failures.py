"""Failed shopper lookups per merchant and order number (the brute-force limit shared by all workers).

Revision ID: oss0002
Revises: oss0001
"""

import sqlalchemy as sa
from alembic import op

revision = "oss0002"
down_revision = "oss0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oss_lookup_failures",
        sa.Column("merchant", sa.String(63), primary_key=True),
        sa.Column("order_number", sa.String(64), primary_key=True),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
    )
    op.create_index("ix_oss_lookup_failures_window", "oss_lookup_failures", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_oss_lookup_failures_window", "oss_lookup_failures")
    op.drop_table("oss_lookup_failures")
