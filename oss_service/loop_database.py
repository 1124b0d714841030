"""The OSS database from the event loop: hot reads and group commits, without the loop ever waiting on it.

- **SQLite**: reads on a connection of the loop's own that never waits: in
  WAL mode a read takes no lock a writer holds, and with ``busy_timeout=0`` a
  read that would have to wait (another process in exclusive mode) is refused
  by SQLite at once and done on a thread instead. Writes run on one writer
  thread (a commit waits for the disk).
- **PostgreSQL**: reads and writes through psycopg's asyncio connections (each
  statement prepared by the server once it has been seen a few times): the loop
  waits for no reply, and no thread is woken nor the GIL handed over per
  statement (a writer thread waited for the GIL after each of its round trips).

A write is a *plan*: a generator of :class:`Step` that is sent the rows of each
step it yields, so one piece of code says what a transaction does and a sync or
an async runner does it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Generator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .storage import write_transaction

T = TypeVar("T")
ThreadRun = Callable[[Callable[[], list[Any]]], Awaitable[list[Any]]]


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan, in the driver's parameter style; ``many``: once per parameter set, no rows read."""

    sql: str
    params: Any
    many: bool = False


#: A transaction's statements: yields steps, is sent each one's rows, returns its result.
Plan = Generator[Step, list[Any], T]


def run_plan(engine: Engine, plan: Plan[T]) -> T:
    """``plan`` in one write transaction on ``engine``, here and now (committed when it returns)."""
    with write_transaction(engine) as conn:
        cur = conn.connection.cursor()  # the driver's cursor, inside SQLAlchemy's transaction
        try:
            rows: list[Any] = []
            step = next(plan)
            while True:
                if step.many:
                    cur.executemany(step.sql, step.params)
                    rows = []
                else:
                    cur.execute(step.sql, step.params)
                    rows = list(cur.fetchall())
                step = plan.send(rows)
        except StopIteration as done:
            return done.value
        finally:
            cur.close()


async def run_plan_async(conn: Any, plan: Plan[T]) -> T:
    """``plan`` in one transaction on a psycopg asyncio connection."""
    async with conn.transaction():
        cur = conn.cursor()
        try:
            rows: list[Any] = []
            step = next(plan)
            while True:
                if step.many:
                    await cur.executemany(step.sql, step.params)
                    rows = []
                else:
                    await cur.execute(step.sql, step.params)
                    rows = await cur.fetchall()
                step = plan.send(rows)
        except StopIteration as done:
            return done.value
        finally:
            await cur.close()


class LoopDatabase(Protocol):
    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """The rows of one read statement (in the driver's parameter style)."""

    async def transaction(self, plan: Plan[T]) -> T:
        """``plan`` in one write transaction, committed when this returns."""

    def close(self) -> None:
        """Give up the connections and threads."""


class SqliteFromLoop:
    """Reads on the loop's own connection (one SQLite says would wait is done on a thread); writes on a thread."""

    def __init__(self, engine: Engine, run: ThreadRun) -> None:
        self.engine = engine
        self.run = run
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oss-writer")
        self._local = threading.local()  # each event loop's thread has a connection of its own
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        #: Reads handed to a thread because SQLite would have made the loop wait (for tests and curiosity).
        self.deferred = 0

    def _loop_connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.raw_connection()
            conn.cursor().execute("PRAGMA busy_timeout=0")  # refused at once instead of waiting on the loop
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        try:
            cur = self._loop_connection().cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        self.deferred += 1
        return await self.run(lambda: self._waiting_read(sql, params))

    def _waiting_read(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        conn = self.engine.raw_connection()  # the pool's, with its busy timeout: this one may wait
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            conn.close()

    async def transaction(self, plan: Plan[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, run_plan, self.engine, plan)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.invalidate()  # not back to the pool: its busy timeout is 0
        self._local = threading.local()


class PostgresFromLoop:
    """psycopg asyncio connections: a few per event loop for reads (autocommit), and one for writes."""

    def __init__(self, url: str | sa.URL, size: int = 4) -> None:
        # libpq reads postgresql://, not SQLAlchemy's postgresql+psycopg://
        self.conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.size = size
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}

    def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [lp for lp in self._pools if lp.is_closed()]:
                self._pools.pop(old).discard()
            pool = self._pools[loop] = _LoopPool(self.conninfo, self.size)
        return pool

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        import psycopg

        pool = self._pool()
        for attempt in (1, 2):
            conn = await pool.get()
            try:
                cur = await conn.execute(sql, params)
                found = await cur.fetchall()
            except psycopg.OperationalError:
                pool.drop(conn)  # the server went away (a restart): a new connection, once
                if attempt == 2:
                    raise
                continue
            except BaseException:
                pool.drop(conn)  # cancelled mid-statement: its state is unknown
                raise
            pool.put(conn)
            return found
        raise AssertionError("unreachable")

    async def transaction(self, plan: Plan[T]) -> T:
        import psycopg

        pool = self._pool()
        async with pool.write_lock:
            conn = pool.writer
            if conn is None or conn.closed:
                conn = pool.writer = await psycopg.AsyncConnection.connect(self.conninfo)
            try:
                return await run_plan_async(conn, plan)
            except (psycopg.OperationalError, asyncio.CancelledError):
                # The server went away, or the wait was cut mid-statement: the next transaction
                # starts on a new connection (the batch writer stores the jobs again one by one).
                pool.writer = None
                _finish(conn)
                raise

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.discard()


class _LoopPool:
    """Connections of one event loop: idle ones reused last-in first-out, at most ``size`` open."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.size = size
        self.idle: list[Any] = []
        self.open: set[Any] = set()
        self.handed: asyncio.Queue[Any] = asyncio.Queue()  # from put() to a waiting get(); None: try again
        self.waiters = 0
        self.writer: Any = None
        self.write_lock = asyncio.Lock()

    async def get(self) -> Any:
        while True:
            if self.idle:
                return self.idle.pop()
            if len(self.open) < self.size:
                import psycopg

                self.open.add(opening := object())  # counts as open while it connects
                try:
                    conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                finally:
                    self.open.discard(opening)
                self.open.add(conn)
                return conn
            self.waiters += 1
            try:
                conn = await self.handed.get()
            finally:
                self.waiters -= 1
            if conn is not None:
                return conn

    def put(self, conn: Any) -> None:
        if self.waiters > self.handed.qsize():
            self.handed.put_nowait(conn)
        else:
            self.idle.append(conn)

    def drop(self, conn: Any) -> None:
        self.open.discard(conn)
        _finish(conn)
        if self.waiters > self.handed.qsize():
            self.handed.put_nowait(None)  # room for a new connection: a waiter opens it

    def discard(self) -> None:
        for conn in [*self.open, self.writer]:
            _finish(conn)
        self.writer = None
        self.open.clear()
        self.idle.clear()


def _finish(conn: Any) -> None:
    # The connection's socket, closed without its event loop (which may have ended already).
    if hasattr(conn, "pgconn") and not conn.closed:
        conn.pgconn.finish()


def loop_database(engine: Engine, run: ThreadRun) -> LoopDatabase:
    """``engine``'s database as the event loop uses it."""
    if engine.dialect.name == "postgresql":
        return PostgresFromLoop(engine.url)
    return SqliteFromLoop(engine, run)
