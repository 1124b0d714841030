"""The merchant's look on the shopper page: logo, accent colour, and the labels' places on the progress path.

Revision ID: oss0003
Revises: oss0002
"""

import sqlalchemy as sa
from alembic import op

revision = "oss0003"
down_revision = "oss0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oss_page_looks",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("oss_accounts.id"), primary_key=True),
        sa.Column("logo_url", sa.String(2000)),
        sa.Column("accent", sa.String(7)),
        sa.Column("steps", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("oss_page_looks")
