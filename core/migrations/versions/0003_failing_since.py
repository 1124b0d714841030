"""When a record's run of failures began, for the retry horizon.

A record that keeps failing is parked after ``controller.retry_horizon_seconds``
from its first failure; ``stack retry`` starts the count again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stack") as batch:
        batch.add_column(sa.Column("failing_since", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("stack") as batch:
        batch.drop_column("failing_since")
