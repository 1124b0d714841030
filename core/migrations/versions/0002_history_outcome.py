"""What became of each queued update: delivered (when), parked then purged.

Support asks "did this update arrive?" after its stack record is gone; the
history row of the change keeps the answer.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_history") as batch:
        batch.add_column(sa.Column("settled_at", sa.Float))
        batch.add_column(sa.Column("outcome", sa.Text))
    op.create_index("ix_history_key", "order_history", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_history_key", "order_history")
    with op.batch_alter_table("order_history") as batch:
        batch.drop_column("outcome")
        batch.drop_column("settled_at")
