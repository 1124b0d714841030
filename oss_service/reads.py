"""The hot reads (shopper lookups, store tokens) done from the event loop, without it ever waiting on the database.

- **SQLite**: on a connection of the loop's own that never waits: in WAL
  mode a read takes no lock a writer holds, and with ``busy_timeout=0`` a read
  that would have to wait (a checkpoint, another process in exclusive mode)
  is refused by SQLite at once and done on a thread instead. No thread hop
  for the reads that need none, which is nearly all of them.
- **PostgreSQL**: through psycopg's asyncio connections (autocommit, each
  statement prepared by the server once it is seen a few times), a few per
  event loop: the loop waits for no reply, and no thread is woken per read.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ThreadRun = Callable[[Callable[[], list[Any]]], Awaitable[list[Any]]]


class Reads(Protocol):
    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """The rows of one read statement (in the driver's parameter style)."""

    def close(self) -> None:
        """Give up the connections."""


class SqliteReads:
    """Reads on the loop's own connection; one that SQLite says would wait is done on a thread."""

    def __init__(self, engine: Engine, run: ThreadRun) -> None:
        self.engine = engine
        self.run = run
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

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.invalidate()  # not back to the pool: its busy timeout is 0
        self._local = threading.local()


class PostgresReads:
    """A few psycopg asyncio connections per event loop, opened when first needed, in autocommit."""

    def __init__(self, url: str | sa.URL, size: int = 4) -> None:
        # libpq reads postgresql://, not SQLAlchemy's postgresql+psycopg://
        self.conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.size = size
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        import psycopg

        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [lp for lp in self._pools if lp.is_closed()]:
                self._pools.pop(old).discard()
            pool = self._pools[loop] = _LoopPool(self.conninfo, self.size)
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
        for conn in list(self.open):
            _finish(conn)
        self.open.clear()
        self.idle.clear()


def _finish(conn: Any) -> None:
    # The connection's socket, closed without its event loop (which may have ended already).
    if hasattr(conn, "pgconn") and not conn.closed:
        conn.pgconn.finish()


def reads_for(engine: Engine, run: ThreadRun) -> Reads:
    """The way the event loop reads ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresReads(engine.url)
    return SqliteReads(engine, run)
