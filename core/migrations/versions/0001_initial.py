"""The stack, orders, history and controller heartbeats.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("status", sa.String(100)),
        sa.Column("cart_order_ref", sa.String(64), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("zip", sa.String(20)),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("store_id", "order_number", name="uq_orders_store_number"),
    )
    op.create_index("ix_orders_number", "orders", ["order_number"])
    op.create_table(
        "order_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("event", sa.String(64)),
        sa.Column("from_status", sa.String(100)),
        sa.Column("to_status", sa.String(100)),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("destination", sa.String(64)),
        sa.Column("idempotency_key", sa.String(36)),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_history_order", "order_history", ["order_id", "id"])
    op.create_table(
        "stack",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(36), nullable=False, unique=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("leased_by", sa.String(128)),
        sa.Column("last_error", sa.Text),
        sa.Column("parked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("parked_at", sa.Float),
    )
    op.create_index("ix_stack_order", "stack", ["store_id", "order_number", "id"])
    op.create_index("ix_stack_due", "stack", ["parked", "next_attempt_at"])
    op.create_table(
        "controllers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("beat_at", sa.Float, nullable=False),
        sa.Column("delivered", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    for table in ("controllers", "stack", "order_history", "orders"):
        op.drop_table(table)
