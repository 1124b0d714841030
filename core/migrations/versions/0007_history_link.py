"""The history keeps the page about the order a destination answered with.

``Delivered(detail, link)``: the OSS answers each update with a signed
``status_url`` to the order's page; ``orders show`` prints the newest.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_history") as batch:
        batch.add_column(sa.Column("link", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("order_history") as batch:
        batch.drop_column("link")
