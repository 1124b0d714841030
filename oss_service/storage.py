"""The OSS database: accounts, orders and their updates (SQLite or PostgreSQL), with its own migrations.

The tables are prefixed ``oss_`` and Alembic keeps its revision in
``oss_alembic_version``, so the OSS can share a database with a stack
without either touching the other's schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from cartstatus.storage import postgres_url, sqlite_pragmas
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

DB_ENV = "CARTSTATUS_OSS_DB"
DEFAULT_DB = "sqlite:///oss.db"
VERSION_TABLE = "oss_alembic_version"

metadata = sa.MetaData()

accounts = sa.Table(
    "oss_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("merchant", sa.String(63), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200)),
    # sha256 of the token: the token itself is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hint", sa.String(16), nullable=False),
    sa.Column("expires", sa.Date, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("token_rotated_at", sa.Float),
    sa.Column("header_html", sa.Text),
    sa.Column("footer_html", sa.Text),
)

orders = sa.Table(
    "oss_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("oss_accounts.id"), nullable=False),
    sa.Column("order_number", sa.String(64), nullable=False),
    sa.Column("reference", sa.String(64)),
    sa.Column("status", sa.String(100), nullable=False),
    sa.Column("status_at", sa.Float, nullable=False),
    # Lookup keys are kept only as digests: enough to check what a shopper types.
    sa.Column("email_digest", sa.String(64)),
    sa.Column("zip_digest", sa.String(64)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("account_id", "order_number", name="uq_oss_orders_account_number"),
)

updates = sa.Table(
    "oss_updates",
    metadata,
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
    sa.Column("tracking", sa.Text),  # JSON list of {carrier, number, ship_date}
    # Keys are per account: one store's key never collides with another's.
    sa.UniqueConstraint("account_id", "idempotency_key", name="uq_oss_updates_account_key"),
)
sa.Index("ix_oss_updates_order", updates.c.order_id, updates.c.occurred_at)

# Failed shopper lookups per merchant and order number, shared by every worker: a
# guesser trying ZIP codes from many addresses still meets the limit. Keyed on
# what was asked (the merchant or order may not exist), so it tells nothing.
lookup_failures = sa.Table(
    "oss_lookup_failures",
    metadata,
    sa.Column("merchant", sa.String(63), primary_key=True),
    sa.Column("order_number", sa.String(64), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
)
sa.Index("ix_oss_lookup_failures_window", lookup_failures.c.window_start)

# The merchant's look on the shopper page (migration oss0003), apart from the accounts the hot paths read:
# a validated https logo URL, an accent colour (#rrggbb) and its own labels' places on the progress path (JSON).
page_looks = sa.Table(
    "oss_page_looks",
    metadata,
    sa.Column("account_id", sa.Integer, sa.ForeignKey("oss_accounts.id"), primary_key=True),
    sa.Column("logo_url", sa.String(2000)),
    sa.Column("accent", sa.String(7)),
    sa.Column("steps", sa.Text),
)


def db_url(explicit: str | None = None) -> str:
    """``--db``, else ``CARTSTATUS_OSS_DB``, else ``sqlite:///oss.db`` in the working directory."""
    return explicit or os.environ.get(DB_ENV) or DEFAULT_DB


def _alembic_config() -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("cartstatus.oss") / "migrations"))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
        return rev


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return head


def migrate(engine: Engine) -> bool:
    """Bring the OSS tables to the newest schema; True when something was applied."""
    from alembic import command

    if current_revision(engine) == head_revision():
        return False
    cfg = _alembic_config()
    with write_transaction(engine) as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return True


WRITE_OPTION = "oss_write"


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front (no deadlock upgrading a read lock);
    # readers begin deferred, so shopper lookups never queue behind the writer.
    immediate = conn.get_execution_options().get(WRITE_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_oss_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the OSS: SQLite in WAL mode with deferred reads, or PostgreSQL through psycopg."""
    if url.startswith("sqlite"):
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(postgres_url(url), pool_pre_ping=True, **kwargs)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes (on SQLite it holds the write lock from its start)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def open_oss_database(url: str | None = None, *, run_migrations: bool = True, **kwargs: Any) -> Engine:
    """An engine on the OSS database (``url`` or the default), migrated unless told not to."""
    engine = make_oss_engine(db_url(url), **kwargs)
    if run_migrations:
        migrate(engine)
    return engine
