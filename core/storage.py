"""The stack's database: tables, engine setup and migrations (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

metadata = sa.MetaData()

orders = sa.Table(
    "orders",
    metadata,
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
sa.Index("ix_orders_number", orders.c.order_number)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("event", sa.String(64)),
    sa.Column("from_status", sa.String(100)),
    sa.Column("to_status", sa.String(100)),
    # native | oss | none | internal | imported
    sa.Column("route", sa.String(16), nullable=False),
    sa.Column("destination", sa.String(64)),
    sa.Column("idempotency_key", sa.String(36)),
    sa.Column("reason", sa.Text),
    # What became of the queued update once it left the stack (migration 0002).
    sa.Column("settled_at", sa.Float),
    sa.Column("outcome", sa.Text),  # delivered: ... | purged: <last error>
    # What the cart said beyond OK when it took the update (an outcome's detail; migration 0005).
    sa.Column("detail", sa.Text),
    # A page about the order the destination answered with: the OSS's signed status_url (migration 0007).
    sa.Column("link", sa.Text),
)
sa.Index("ix_history_order", order_history.c.order_id, order_history.c.id)
sa.Index("ix_history_key", order_history.c.idempotency_key)

stack = sa.Table(
    "stack",
    metadata,
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
    # The fencing token of the current lease: the claiming worker's id and its claim (see Stack.claim).
    sa.Column("leased_by", sa.String(128)),
    sa.Column("last_error", sa.Text),
    sa.Column("parked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("parked_at", sa.Float),
    # The first failure of the current run of failures (migration 0003): the retry horizon counts from it.
    sa.Column("failing_since", sa.Float),
    # Ids are never reused (migration 0004): "record #1" in an old log line names one record only.
    sqlite_autoincrement=True,
)
sa.Index("ix_stack_order", stack.c.store_id, stack.c.order_number, stack.c.id)
sa.Index("ix_stack_due", stack.c.parked, stack.c.next_attempt_at)

controllers = sa.Table(
    "controllers",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("beat_at", sa.Float, nullable=False),
    sa.Column("delivered", sa.Integer, nullable=False, server_default="0"),
    # The circuits this controller holds open, as JSON (migration 0006; see cartstatus.circuits).
    sa.Column("circuits", sa.Text),
)


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """On each new SQLite connection: WAL, durable commits, a busy timeout, foreign keys."""
    # Let SQLAlchemy's "begin" event issue BEGIN (IMMEDIATE for writers): a writer
    # takes the lock at the start, so two writers never deadlock upgrading read locks.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit that returned is on disk (rule 5: fire reported it, it is
    # queued; the OSS answered OK, the store deletes its record).
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings the stack relies on."""
    if url.startswith("sqlite"):
        if sa.engine.make_url(url).database not in (None, "", ":memory:"):
            # Reuse the most recently returned connection: its page cache is
            # still valid (WAL), where a cold one re-reads every page it touches.
            kwargs.setdefault("pool_use_lifo", True)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(postgres_url(url), pool_pre_ping=True, **kwargs)


def postgres_url(url: str) -> str:
    """``postgresql://`` as people write it, on the psycopg 3 driver we ship."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic, ``cartstatus/migrations``)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("cartstatus") / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == script.get_current_head():
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def open_database(url: str, **kwargs: Any) -> Engine:
    engine = make_engine(url, **kwargs)
    migrate(engine)
    return engine


# -- the hot paths ---------------------------------------------------------
#
# fire, claim and settle run thousands of times a second. SQLAlchemy's
# per-execute work (cache key, parameter processing, result wrapping,
# transaction events) costs more than SQLite itself there, so these paths
# compile their Core statements once per dialect and run them straight on the
# DB-API cursor, inside a transaction opened exactly as the engine's would be.


class Prepared:
    """A Core statement compiled once for a dialect, executed on a DB-API cursor.

    Only for statements whose columns need no bind or result processing
    (integers, floats, strings, booleans) and without expanding ``IN`` lists.
    """

    __slots__ = ("fixed", "names", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a prepared statement cannot have expanding parameters")
        self.sql = str(compiled)
        positions = compiled.positiontup
        self.names: tuple[str, ...] | None = tuple(positions) if positions else None
        # Values bound in the statement itself (``where(col == 5)``, ``values(x=None)``).
        self.fixed = {name: bind.effective_value for bind, name in compiled.bind_names.items()
                      if not bind.required}

    def params(self, values: Mapping[str, Any]) -> Any:
        if self.fixed:
            values = {**self.fixed, **values}
        if self.names is None:  # a named paramstyle (psycopg)
            return values
        return tuple([values[name] for name in self.names])

    def execute(self, cursor: Any, values: Mapping[str, Any] | None = None) -> Any:
        cursor.execute(self.sql, self.params(values or {}))
        return cursor

    def executemany(self, cursor: Any, rows: Iterable[Mapping[str, Any]]) -> None:
        params = [self.params(r) for r in rows]
        if params:
            cursor.executemany(self.sql, params)

    def executemany_rows(self, cursor: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """:meth:`executemany` with each row a tuple of the values of ``columns``.

        When those are the statement's positional parameters in order (SQLite's
        qmark style) the tuples go to the driver as they are: no dict per row.
        """
        if not rows:
            return
        if self.names == columns and not self.fixed:
            cursor.executemany(self.sql, rows)
        else:
            self.executemany(cursor, [dict(zip(columns, row, strict=True)) for row in rows])


_prepared: dict[tuple[str, str, str], Prepared] = {}


def prepared(engine: Engine, name: str, build: Callable[[], ClauseElement]) -> Prepared:
    """The statement ``build()`` compiled for ``engine``'s dialect, compiled only once."""
    key = (engine.dialect.name, engine.dialect.driver, name)
    statement = _prepared.get(key)
    if statement is None:
        statement = _prepared[key] = Prepared(build(), engine.dialect)
    return statement


@contextmanager
def transaction(engine: Engine) -> Iterator[Any]:
    """A DB-API cursor in one transaction: committed when the block ends, else rolled back.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``, like the engine's
    own (see :func:`_sqlite_begin`); the commit is durable (synchronous=FULL).
    """
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        if engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        cursor.close()
    finally:
        conn.close()  # back to the pool (which rolls back anything left open)
