"""Stack record ids are never reused (SQLite AUTOINCREMENT).

Without it SQLite hands out the largest id + 1, so once the stack empties
"record #1" names a new record, and `stack retry 1` from an old log line
could retry the wrong one. PostgreSQL's sequences never go back already.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # The table is rebuilt with AUTOINCREMENT; sqlite_sequence starts at the largest id in use.
        with op.batch_alter_table("stack", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("stack", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
