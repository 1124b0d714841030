"""The OSS database from the event loop: SQLite reads on the loop unless they would wait; PostgreSQL via asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cartstatus.oss.loop_database import TAG_COLUMN, PostgresFromLoop, SqliteFromLoop, Step, in_list, run_plan, share
from cartstatus.storage import postgres_url

from ..services import fresh_postgres_database


async def test_a_sqlite_read_that_would_wait_is_done_on_a_thread_while_the_loop_goes_on(tmp_path: Path) -> None:
    # A rollback-journal database: a writer's exclusive lock makes every reader wait (in WAL none does).
    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
        setup.execute("INSERT INTO t VALUES (7)")
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 10})
    threads = ThreadPoolExecutor(1)

    async def run(fn: Any, *args: Any) -> list[Any]:  # as OssStore.run
        return await asyncio.get_running_loop().run_in_executor(threads, fn, *args)

    reads = SqliteFromLoop(engine, run)
    assert await reads.rows("SELECT x FROM t", {}) == [(7,)] and reads.deferred == 0  # on the loop
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE t SET x = 8")
    tagged = f"SELECT {TAG_COLUMN}, x + :n FROM t"
    try:
        read = asyncio.ensure_future(reads.rows("SELECT x FROM t", {}))
        together = [asyncio.ensure_future(reads.rows(tagged, {"n": n})) for n in range(3)]
        ticks = 0
        while reads.deferred < 4 and ticks < 100:
            await asyncio.sleep(0.01)  # the loop keeps running: this line is reached at all
            ticks += 1
        # SQLite said BUSY at once; the reads went to a thread to wait there, the tagged ones too.
        assert reads.deferred == 4
        assert not read.done() and not any(r.done() for r in together)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert await read == [(8,)]
    assert await asyncio.gather(*together) == [[(0, 8)], [(1, 9)], [(2, 10)]]
    reads.close()
    threads.shutdown()
    engine.dispose()


@pytest.fixture
def loop_reads(tmp_path: Path) -> Iterator[SqliteFromLoop]:
    """SQLite reads from the loop that must never be handed to a thread."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")

    async def run(fn: Any, *args: Any) -> list[Any]:
        raise AssertionError("not handed to a thread")

    reads = SqliteFromLoop(engine, run)
    yield reads
    reads.close()
    engine.dispose()


async def test_a_sqlite_error_that_is_not_a_lock_is_raised(loop_reads: SqliteFromLoop) -> None:
    try:
        await loop_reads.rows("SELECT * FROM missing", {})
    except sqlite3.OperationalError as exc:
        assert "no such table" in str(exc)
    else:
        raise AssertionError("no error")


@pytest.mark.postgres
async def test_postgres_reads_share_a_few_connections_and_survive_a_dropped_one() -> None:
    with fresh_postgres_database() as url:
        reads = PostgresFromLoop(url, size=2)
        try:
            got = await asyncio.gather(*(reads.rows("SELECT :n::int, pg_backend_pid()", {"n": n})
                                         for n in range(20)))
            assert [r[0][0] for r in got] == list(range(20))
            assert len({r[0][1] for r in got}) == 2  # twenty reads at once, on two connections
            # The server ends both connections (as a restart would): the next reads open new ones.
            admin = sa.create_engine(postgres_url(url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for pid in {r[0][1] for r in got}:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.dispose()
            again = await asyncio.gather(*(reads.rows("SELECT 1", {}) for _ in range(4)))
            assert again == [[(1,)]] * 4
        finally:
            reads.close()


def counting_plan(values: list[int]) -> Any:
    """A plan: insert the values, then read their sum (one step's rows feed the next)."""
    yield Step("INSERT INTO t (x) VALUES (:x)", [{"x": v} for v in values], many=True)
    rows = yield Step("SELECT sum(x) FROM t", {})
    return rows[0][0]


@contextlib.contextmanager
def postgres_with_a_table() -> Iterator[tuple[PostgresFromLoop, sa.Engine]]:
    """A fresh PostgreSQL database with ``t (x integer CHECK (x < 100))``: the loop's access and an admin engine."""
    with fresh_postgres_database() as url:
        admin = sa.create_engine(postgres_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (x integer CHECK (x < 100))"))
        db = PostgresFromLoop(url)
        try:
            yield db, admin
        finally:
            db.close()
            admin.dispose()


@pytest.mark.postgres
async def test_a_postgres_transaction_commits_rolls_back_and_reconnects() -> None:
    with postgres_with_a_table() as (db, admin):
        assert await db.transaction(counting_plan([1, 2, 3])) == 6
        with pytest.raises(Exception, match="check"):
            await db.transaction(counting_plan([4, 500]))  # refused: nothing of it is kept
        assert await db.rows("SELECT count(*) FROM t", {}) == [(3,)]
        with admin.connect() as conn:  # the server ends the writer's connection, as a restart would
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        with pytest.raises(Exception):  # noqa: B017 (the driver's error for a lost connection)
            await db.transaction(counting_plan([7]))
        assert await db.transaction(counting_plan([7])) == 13  # on a new connection


def two_reads_plan() -> Any:
    first = yield Step("SELECT now(), pg_sleep(0.01)", {})
    second = yield Step("SELECT now()", {})
    return first[0][0], second[0][0]


def writing_twice_plan() -> Any:
    yield Step("INSERT INTO t (x) VALUES (:x)", [{"x": 20}], many=True)
    yield Step("INSERT INTO t (x) VALUES (:x)", [{"x": 30}], many=True)


@pytest.mark.postgres
async def test_a_plan_from_the_loop_on_postgres_is_statements_each_its_own_transaction_writing_in_one_step() -> None:
    """No BEGIN and COMMIT round trips: an executemany is atomic by itself, so a plan writes in one step."""
    with postgres_with_a_table() as (db, _):
        first, second = await db.transaction(two_reads_plan())
        assert second > first  # now() is each statement's: no transaction block around them
        with pytest.raises(ValueError, match="one step"):
            await db.transaction(writing_twice_plan())
        assert await db.rows("SELECT x FROM t ORDER BY x", {}) == [(20,)]  # the second never ran


def listed_plan(wanted: list[int]) -> Any:
    """A plan reading the rows whose value is in a list parameter."""
    rows = yield Step("SELECT x FROM t WHERE x = ANY(:wanted) ORDER BY x", {"wanted": wanted})
    return [r[0] for r in rows]


def test_a_list_parameter_is_an_in_list_on_sqlite(tmp_path: Path) -> None:
    assert in_list("SELECT x FROM t WHERE x = ANY(:wanted) AND y = :y", {"wanted": [3, 5], "y": 1}) == (
        "SELECT x FROM t WHERE x IN (:wanted_0, :wanted_1) AND y = :y", {"y": 1, "wanted_0": 3, "wanted_1": 5})
    assert in_list("SELECT 1 WHERE :a = 1", {"a": 1}) == ("SELECT 1 WHERE :a = 1", {"a": 1})
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lists.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    run_plan(engine, counting_plan([1, 3, 5, 7]))
    assert run_plan(engine, listed_plan([3, 7, 9])) == [3, 7]
    assert run_plan(engine, listed_plan([])) == []
    engine.dispose()


@pytest.mark.postgres
async def test_a_list_parameter_is_one_array_on_postgres() -> None:
    """``= ANY(:name)``: one statement whatever the list's length, from the loop and from a thread alike."""
    with fresh_postgres_database() as url:
        engine = sa.create_engine(postgres_url(url))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x integer)"))
        run_plan(engine, counting_plan([1, 3, 5, 7]))
        assert run_plan(engine, listed_plan([3, 7, 9])) == [3, 7]
        db = PostgresFromLoop(url)
        try:
            assert await db.transaction(listed_plan([1, 5])) == [1, 5]
            assert await db.transaction(listed_plan([])) == []
        finally:
            db.close()
            engine.dispose()


async def test_a_tagged_read_on_sqlite_is_read_as_it_is(loop_reads: SqliteFromLoop) -> None:
    assert await loop_reads.rows(f"SELECT {TAG_COLUMN}, :x * 2", {"x": 21}) == [(0, 42)]


async def test_tagged_reads_made_together_on_sqlite_share_one_read_transaction_and_each_gets_its_own_rows(
        loop_reads: SqliteFromLoop) -> None:
    said: list[str] = []
    loop_reads._loop_connection().driver_connection.set_trace_callback(said.append)
    double = f"SELECT {TAG_COLUMN}, :x * 2"
    got = await asyncio.gather(*(loop_reads.rows(double, {"x": x}) for x in range(10)))
    assert [rows for rows in got] == [[(x, x * 2)] for x in range(10)]
    assert said[0] == "BEGIN" and said[-1] == "COMMIT" and len(said) == 12  # ten reads between them

    # One read's error is its own: the others read with it are answered.
    said.clear()
    parse = f"SELECT {TAG_COLUMN}, json_extract(:j, '$.n')"
    bodies = ('{"n": 1}', "{", '{"n": 2}')
    answers: list[Any] = await asyncio.gather(*(loop_reads.rows(parse, {"j": j}) for j in bodies),
                                              return_exceptions=True)
    assert answers[0] == [(0, 1)] and answers[2] == [(2, 2)]  # each read's tag is its place among them
    assert isinstance(answers[1], sqlite3.OperationalError) and "malformed JSON" in str(answers[1])
    assert said.count("BEGIN") == 1 and said[-1] == "COMMIT"

    # A reader that went away before the turn ended (its request was cancelled) leaves the others theirs.
    reads = [asyncio.ensure_future(loop_reads.rows(double, {"x": x})) for x in range(3)]
    await asyncio.sleep(0)  # each has asked; they are read at the end of this turn
    reads[1].cancel()
    done: list[Any] = await asyncio.gather(*reads, return_exceptions=True)
    assert done[0] == [(0, 0)] and isinstance(done[1], asyncio.CancelledError) and done[2] == [(2, 4)]

    # A read that is not tagged is read at once, alone, outside any transaction of its own.
    said.clear()
    assert await loop_reads.rows("SELECT :x + 1", {"x": 1}) == [(2,)]
    assert said == ["SELECT 1 + 1"]


@pytest.mark.postgres
async def test_tagged_reads_made_together_go_to_postgres_together_and_each_gets_its_own_rows() -> None:
    with fresh_postgres_database() as url:
        admin = sa.create_engine(postgres_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (k integer, v integer)"))
            conn.execute(sa.text("INSERT INTO t SELECT k, v FROM generate_series(0, 9) k, generate_series(0, 9) v "
                                 "WHERE v < k"))  # k rows for each k: none for 0, nine for 9
        admin.dispose()
        db = PostgresFromLoop(url, size=4)
        try:
            together = f"SELECT {TAG_COLUMN}, v, pg_backend_pid(), now() FROM t WHERE k = :k ORDER BY v"
            got = await asyncio.gather(*(db.rows(together, {"k": k}) for k in range(10)))
            assert [[r[1] for r in rows] for rows in got] == [list(range(k)) for k in range(10)]
            # One connection and one transaction for all ten: they went in one round trip.
            assert len({(r[2], r[3]) for rows in got for r in rows}) == 1
            alone = "SELECT v, pg_backend_pid(), now() FROM t WHERE k = :k ORDER BY v"  # untagged: a trip each
            spread = await asyncio.gather(*(db.rows(alone, {"k": k}) for k in range(10)))
            assert len({(r[1], r[2]) for rows in spread for r in rows}) > 1

            # Many at once are shared among the connections, a round trip each, so the server reads them side by
            # side: 32 in four parts of eight, each part one backend and one transaction, each read its own rows.
            many = await asyncio.gather(*(db.rows(together, {"k": k % 10}) for k in range(32)))
            assert [[r[1] for r in rows] for rows in many] == [list(range(k % 10)) for k in range(32)]
            trips: dict[tuple[Any, Any], set[int]] = {}
            for k, rows in enumerate(many):
                for r in rows:
                    trips.setdefault((r[2], r[3]), set()).add(k)
            assert len(trips) == 4 and len({pid for pid, _ in trips}) == 4
            assert sorted(min(ks) for ks in trips.values()) == [1, 8, 16, 24]  # in order: reads 0-7, 8-15...

            # One read's error is its own: the others sent with it are answered.
            divide = f"SELECT {TAG_COLUMN}, 10 / CAST(:d AS INTEGER)"
            answers: list[Any] = await asyncio.gather(*(db.rows(divide, {"d": d}) for d in (1, 0, 2)),
                                                      return_exceptions=True)
            assert [r[1] for r in answers[0]] == [10] and [r[1] for r in answers[2]] == [5]
            assert "division by zero" in str(answers[1])

            # A reader that goes away (its request was cancelled) leaves the others their answers.
            slow = f"SELECT {TAG_COLUMN}, CAST(:n AS INTEGER), pg_sleep(0.2)"
            reads = [asyncio.ensure_future(db.rows(slow, {"n": n})) for n in range(3)]
            await asyncio.sleep(0.05)
            reads[1].cancel()
            done: list[Any] = await asyncio.gather(*reads, return_exceptions=True)
            assert isinstance(done[1], asyncio.CancelledError)
            assert [r[1] for r in done[0]] == [0] and [r[1] for r in done[2]] == [2]
        finally:
            db.close()


@pytest.mark.parametrize(("count", "most", "sizes"), [
    (0, 4, [0]), (1, 4, [1]), (15, 4, [15]), (16, 4, [8, 8]), (26, 4, [9, 9, 8]), (32, 4, [8, 8, 8, 8]),
    (100, 4, [25, 25, 25, 25]), (26, 2, [13, 13]), (33, 2, [17, 16]), (40, 1, [40])])
def test_work_is_shared_in_parts_of_about_one_size_none_under_the_smallest(count: int, most: int,
                                                                           sizes: list[int]) -> None:
    parts = share(list(range(count)), most)
    assert [len(p) for p in parts] == sizes
    assert [x for p in parts for x in p] == list(range(count))  # every item once, in order
