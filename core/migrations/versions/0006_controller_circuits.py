"""Each live controller's heartbeat carries the circuits it holds open.

A destination (store and connector) that keeps failing has its circuit opened
by the controller that sends to it (``cartstatus.circuits``); ``stack status``
shows it from here, as JSON: one object per circuit that is not closed.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("controllers") as batch:
        batch.add_column(sa.Column("circuits", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("controllers") as batch:
        batch.drop_column("circuits")
