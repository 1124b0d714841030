"""The quick ways the two hot endpoints take: same answers, headers, logs and durability as the rest."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import random
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cartstatus.oss import access
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.handlers import query_dict
from cartstatus.oss.logs import BufferedLineHandler
from cartstatus.oss.service import OssStore, iso
from cartstatus.oss.storage import open_oss_database, updates
from cartstatus.oss.wire import canonical_json
from starlette.applications import Starlette

from ..services import fresh_postgres_database
from .conftest import bearer, client_for, update_body
from .test_api import count


async def test_hot_answers_carry_the_headers_and_other_methods_are_405(client: httpx.AsyncClient,
                                                                       account: Callable[..., str]) -> None:
    token = account()
    stored = await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))
    found = await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})
    for reply in (stored, found):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert len(reply.headers["x-request-id"]) == 16
    assert stored.headers["x-request-id"] != found.headers["x-request-id"]
    assert stored.json() == {"result": "OK", "idempotency_key": stored.json()["idempotency_key"],
                             "order_number": "1001", "status": "Shipped", "status_url": stored.json()["status_url"]}
    assert stored.json()["status_url"].startswith("http://oss.test/status/acme?order=1001&key=")
    assert (await client.get("/api/v1/updates")).status_code == 405
    assert (await client.post("/api/v1/lookup")).status_code == 405


async def test_hot_endpoints_answer_under_a_root_path(oss_app: Starlette, account: Callable[..., str]) -> None:
    token = account()
    transport = httpx.ASGITransport(app=oss_app, root_path="/oss")
    async with httpx.AsyncClient(transport=transport, base_url="http://oss.test") as c:
        stored = await c.post("/oss/api/v1/updates", json=update_body(), headers=bearer(token))
        found = await c.get("/oss/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})
    assert stored.status_code == 200 and found.json()["status"] == "Shipped"
    assert stored.json()["status_url"].startswith("http://oss.test/oss/status/acme?order=1001&key=")


async def test_the_routing_table_answers_the_same_as_the_quick_way(oss_app: Starlette, account: Callable[..., str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette's own route for the endpoints (what a request reaches when it misses the quick way)."""
    token = account()
    monkeypatch.setattr(oss_app, "hot", {})  # every request takes the router

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=oss_app), base_url="http://oss.test") as c:
        stored = await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))
        missing = await c.post("/api/v1/updates", json=update_body())
    assert stored.status_code == 200 and stored.json()["result"] == "OK"
    assert stored.headers["x-content-type-options"] == "nosniff" and "x-request-id" in stored.headers
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")


async def test_an_update_is_answered_ok_only_once_committed(oss_app: Starlette, account: Callable[..., str],
                                                            oss_store: OssStore,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    token = account()
    real = oss_store.ingest

    def commit_fails(jobs: Any) -> Any:
        # As a full or failing disk makes the COMMIT fail: the transaction is rolled back.
        with oss_store.engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
        raise sqlite3.OperationalError("disk I/O error")

    oss_store.ingest = commit_fails  # type: ignore[method-assign]
    body = update_body()
    transport = httpx.ASGITransport(app=oss_app, raise_app_exceptions=False)
    caplog.set_level(logging.INFO, logger="cartstatus.oss")
    async with httpx.AsyncClient(transport=transport, base_url="http://oss.test") as c:
        failed = await c.post("/api/v1/updates", json=body, headers=bearer(token))
        assert failed.status_code == 500
        assert failed.json()["message"] == "Internal Server Error"
        assert failed.headers["x-content-type-options"] == "nosniff"
        assert count(oss_store, updates) == 0  # rolled back: nothing half-stored
        oss_store.ingest = real  # type: ignore[method-assign]
        again = await c.post("/api/v1/updates", json=body, headers=bearer(token))
    assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert count(oss_store, updates) == 1
    assert "storing an update failed: OperationalError: disk I/O error" in caplog.text
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cartstatus.oss.access"]
    assert [line["status"] for line in access] == [500, 200]


@pytest.mark.parametrize("query", [
    b"merchant=acme&order=1001&email=pat%40example.com",
    b"a=1&b=&c&a=2",
    b"x+y=a+b%2B&&=v&%zz=1%",
    "k=\u00e9".encode("latin-1"),
    b"k=%C3%A9&j=%E9",
    b";a=1&b==2",
    b"",
])
def test_the_query_is_read_as_starlette_reads_it(query: bytes) -> None:
    # Starlette: parse_qsl(latin-1 text, keep_blank_values=True), the last of a repeated name wins.
    assert query_dict(query) == dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))


TRICKY = ["plain", 'quo"te', "back\\slash", "nl\nrt\r\ttab", "\b\f", "".join(chr(i) for i in range(32)), "\x7f",
          "\u00e9\u4e2d\U0001f642", "\u2028\u2029", "</script>", "\ufeff", "\U0010ffff"]


@pytest.mark.parametrize("text", TRICKY)
def test_the_digested_bytes_are_those_of_earlier_versions(text: str) -> None:
    """Digests stored before (json.dumps, sorted, compact, not ASCII-escaped) still match a replay."""
    body = {**update_body(note=text, order_number="A-1"), "schema_version": 1,
            "tracking": [{"number": "1Z 9", "carrier": text, "ship_date": None}], "reference": None}
    before = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert canonical_json(body) == before
    assert canonical_json(json.loads(json.dumps(body))) == before  # key order does not matter


def _bodies() -> list[Any]:
    """Update bodies valid and refused for each rule of the schema (types, patterns, lengths, formats, keys)."""
    good = update_body(note="n", reference="R-1", merchant="acme")
    changed = [
        {}, {"occurred_at": "2026-06-01T10:00:00+02:00"}, {"occurred_at": "2026-06-01T10:00:00.25Z"},
        {"tracking": []}, {"tracking": None}, {"note": None}, {"email": None}, {"schema_version": 1},
        {"occurred_at": "2026-06-01 10:00:00Z"}, {"occurred_at": "2026-06-01T10:00:00"}, {"occurred_at": 5},
        {"occurred_at": "1969-12-31T23:59:59Z"}, {"occurred_at": "2026-13-01T10:00:00Z"},
        {"status": ""}, {"status": "x" * 101}, {"status": 1}, {"order_number": "a b"}, {"order_number": "x" * 65},
        {"idempotency_key": "k"}, {"email": "not an email"}, {"email": "a@" + "b" * 260 + ".com"},
        {"zip": "1" * 21}, {"note": "x" * 2001}, {"note": "bell\x07"}, {"schema_version": 2},
        {"merchant": "ACME"}, {"extra": True}, {"tracking": [{"carrier": "UPS"}]},
        {"tracking": [{"carrier": "UPS", "number": "1", "ship_date": "2026-6-1"}]},
        {"tracking": [{"carrier": "UPS", "number": "1", "ship_date": "someday"}]},
        {"tracking": [{"carrier": "UPS", "number": "1", "extra": 1}]}, {"tracking": "UPS"},
    ]
    bodies: list[Any] = [{**good, **change} for change in changed]
    bodies += [{k: v for k, v in good.items() if k != key} for key in good]  # each key left out
    return [*bodies, [], "body", None, 1]


@pytest.mark.parametrize("body", _bodies())
def test_the_quick_check_and_jsonschema_agree(body: Any) -> None:
    """jsonschema-rs says yes only to what jsonschema says yes to, and a refused body is told why."""
    from cartstatus.oss.wire import _quick_check, _validator, validate

    slow = not any(_validator().iter_errors(body))
    assert _quick_check().is_valid(body) == slow
    problems = validate(body)
    if not slow:
        assert problems and all(p.field and p.message for p in problems)


def test_instants_are_written_as_datetime_writes_them() -> None:
    rng = random.Random(5)
    for ts in [0.0, 1.5, 1780308000.0, 1780308000.9999999, 1780308000.4999995, 253402300799.0,
               *(rng.uniform(0, 4e9) for _ in range(2000))]:
        expected = dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        assert iso(ts) == expected, ts


def test_an_access_record_is_the_record_logging_would_have_made() -> None:
    """AccessRecord copies what every access line shares: any formatter a host sets reads what it would read."""
    from cartstatus.oss.access import AccessRecord, access_log

    before = time.time()
    made = access_log.makeRecord(access_log.name, logging.INFO, access.__file__, 0, "line", (), None)
    record = AccessRecord("line", made.created)
    assert vars(record).keys() == vars(made).keys()
    for name, value in vars(made).items():
        if name != "relativeCreated":
            assert getattr(record, name) == value, name
    assert record.relativeCreated == pytest.approx(made.relativeCreated, abs=1)
    assert AccessRecord("other", time.time()).created >= before
    host = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(module)s:%(lineno)d %(process)d %(message)s")
    assert host.format(record) == host.format(made)


def test_the_server_s_formatter_writes_the_message_and_a_traceback_when_there_is_one() -> None:
    from cartstatus.oss.logs import MessageFormatter

    formatter = MessageFormatter("%(message)s")
    plain = logging.makeLogRecord({"msg": "stored %d", "args": (3,)})
    assert formatter.format(plain) == logging.Formatter("%(message)s").format(plain) == "stored 3"
    try:
        raise ValueError("disk full")
    except ValueError:
        failed = logging.makeLogRecord({"msg": "a batch failed", "exc_info": sys.exc_info()})
    text = formatter.format(failed)
    assert text.startswith("a batch failed\nTraceback") and "ValueError: disk full" in text


def test_log_lines_are_written_in_batches_and_none_is_lost() -> None:
    stream = io.StringIO()
    handler = BufferedLineHandler(stream, capacity=3, interval=3600)
    log = logging.getLogger("cartstatus.oss.test-buffered")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("one")
        log.info("two")
        assert stream.getvalue() == ""  # held back
        log.info("three")
        assert stream.getvalue() == "one\ntwo\nthree\n"  # capacity reached
        log.info("four")
        log.warning("trouble")
        assert stream.getvalue().endswith("four\ntrouble\n")  # a warning goes out at once, with what waited
        log.info("five")
        handler.flush()
        assert stream.getvalue().endswith("five\n")
        handler.close()
        log.info("after close")  # logging reconfigured or shut down: written at once
        assert stream.getvalue().endswith("after close\n")
    finally:
        log.removeHandler(handler)


def test_an_access_line_is_written_out_with_its_batch_and_other_records_at_once() -> None:
    """Access lines are formatted when their batch is written; any other record when it is logged."""
    from cartstatus.oss.access import AccessLine, AccessRecord
    from cartstatus.oss.logs import MessageFormatter

    made: list[str] = []

    class CountedLine(AccessLine):
        __slots__ = ()

        def __str__(self) -> str:
            made.append(self.request_id)
            return super().__str__()

    stream = io.StringIO()
    handler = BufferedLineHandler(stream, capacity=3, interval=3600)
    handler.setFormatter(MessageFormatter("%(message)s"))
    now = 1780308000.25
    handler.handle(AccessRecord(CountedLine("r1", "POST", '/api/v1/updates"x', "/api/v1/updates", 200, 0.0012345,
                                            ("10.0.0.7", 5000), "acme", now), now))
    shared = ["before"]
    handler.handle(logging.makeLogRecord({"msg": "batch of %s", "args": (shared,), "levelno": logging.INFO}))
    shared.append("after")  # logged already: its line says what it said then
    assert made == [] and stream.getvalue() == ""
    handler.handle(AccessRecord(CountedLine("r2", "GET", "/", "/", 404, 0.5, None, None, now), now))
    assert made == ["r1", "r2"]  # capacity reached: the batch is written, each access line made then
    first, second, third = stream.getvalue().splitlines()
    assert json.loads(first) == {"ts": "2026-06-01T10:00:00.250+00:00", "request_id": "r1", "method": "POST",
                                 "path": '/api/v1/updates"x', "route": "/api/v1/updates", "status": 200,
                                 "ms": 1.23, "client": "10.0.0.7", "merchant": "acme"}
    assert second == "batch of ['before']"
    assert json.loads(third)["client"] is None and json.loads(third)["merchant"] is None
    handler.close()


def test_an_access_line_that_cannot_be_written_does_not_take_its_batch_with_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    from cartstatus.oss.access import AccessLine, AccessRecord

    stream = io.StringIO()
    handler = BufferedLineHandler(stream, capacity=2, interval=3600)
    broken = AccessLine("r1", "GET", "/", "/", 200, "not seconds", None, None, 0.0)  # type: ignore[arg-type]
    handler.handle(AccessRecord(broken, 0.0))
    handler.handle(AccessRecord(AccessLine("r2", "GET", "/", "/", 200, 0.001, None, None, 0.0), 0.0))
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == ["r2"]
    assert "Logging error" in capsys.readouterr().err  # reported as logging reports a handler's error
    handler.close()


def test_log_lines_go_out_by_themselves_after_the_interval() -> None:
    stream = io.StringIO()
    handler = BufferedLineHandler(stream, capacity=100, interval=0.01)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(logging.makeLogRecord({"msg": "waiting", "levelno": logging.INFO}))
    try:
        assert handler._flusher is not None
        for _ in range(500):  # up to 5 s for the flusher thread to run, not a timing assertion
            if stream.getvalue():
                break
            handler._closing.wait(0.01)
        assert stream.getvalue() == "waiting\n"
    finally:
        handler.close()


async def test_concurrent_updates_under_the_quick_way_are_each_stored_once(
        make_app: Callable[..., Starlette], account: Callable[..., str], oss_store: OssStore) -> None:
    token = account()
    app = make_app(ServerSettings(ingest_rate=1000, ingest_burst=1000, max_batch=4))
    bodies = [update_body(order_number=f"{3000 + i % 3}") for i in range(20)]
    async with client_for(app) as c:
        replies = await asyncio.gather(*(c.post("/api/v1/updates", json=b, headers=bearer(token)) for b in bodies))
    assert [r.status_code for r in replies] == [200] * 20
    assert count(oss_store, updates) == 20
    writer = app.state.oss.writer
    assert writer.jobs == 20 and writer.batches >= 5  # max_batch 4: at least five commits


@pytest.mark.postgres
async def test_the_group_commit_task_starts_again_after_it_stopped() -> None:
    """On PostgreSQL the batches are written by a task of the event loop: one that ended is started again."""
    with fresh_postgres_database() as url:
        engine = open_oss_database(url)
        store = OssStore(engine)
        _, token = store.create_account("acme", dt.date(2099, 1, 1))
        app = create_app(store, ServerSettings(ingest_rate=1000, ingest_burst=1000))
        try:
            async with client_for(app) as c:
                first = await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))
                assert first.status_code == 200
                writer = app.state.oss.writer
                assert writer._task is not None
                writer._task.cancel()
                await asyncio.sleep(0)
                again = await c.post("/api/v1/updates", json=update_body(order_number="1002"), headers=bearer(token))
            assert again.status_code == 200
            assert count(store, updates) == 2
        finally:
            await app.state.oss.aclose()
            engine.dispose()
