"""The history keeps what the cart said beyond OK when it took an update.

``Delivered(detail)`` and ``AlreadyDone(detail)`` carry it ("second tracking
number not recorded by the cart"); support reads it in ``orders show`` and
``diagnose``.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_history") as batch:
        batch.add_column(sa.Column("detail", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("order_history") as batch:
        batch.drop_column("detail")
