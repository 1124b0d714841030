"""OSS accounts, orders and updates.

Revision ID: oss0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "oss0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oss_accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("merchant", sa.String(63), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200)),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hint", sa.String(16), nullable=False),
        sa.Column("expires", sa.Date, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("token_rotated_at", sa.Float),
        sa.Column("header_html", sa.Text),
        sa.Column("footer_html", sa.Text),
    )
    op.create_table(
        "oss_orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("oss_accounts.id"), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64)),
        sa.Column("status", sa.String(100), nullable=False),
        sa.Column("status_at", sa.Float, nullable=False),
        sa.Column("email_digest", sa.String(64)),
        sa.Column("zip_digest", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("account_id", "order_number", name="uq_oss_orders_account_number"),
    )
    op.create_table(
        "oss_updates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("oss_accounts.id"), nullable=False),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("oss_orders.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(100), nullable=False),
        sa.Column("previous_status", sa.String(100)),
        sa.Column("occurred_at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("tracking", sa.Text),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_oss_updates_account_key"),
    )
    op.create_index("ix_oss_updates_order", "oss_updates", ["order_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_oss_updates_order", table_name="oss_updates")
    op.drop_table("oss_updates")
    op.drop_table("oss_orders")
    op.drop_table("oss_accounts")
