"""Issue 16's findings, each a test named after it: what an attacker tried against the hosted OSS."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import sqlite3
import string
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cartstatus.oss.app import ServerSettings
from cartstatus.oss.cli import main
from cartstatus.oss.openapi import openapi_document
from cartstatus.oss.service import IngestJob, OssStore, hash_token
from cartstatus.oss.storage import updates
from cartstatus.oss.wire import body_digest, wire_schema
from click.testing import CliRunner
from starlette.applications import Starlette

from .conftest import Clock, bearer, client_for, update_body

ROOT = Path(__file__).resolve().parents[2]

#: Bodies that once passed validation and then failed in the database (or on the order page).
POISON = {
    "leap-second": {"occurred_at": "2026-06-30T23:59:60Z"},
    "nul-in-note": {"note": "Left the\x00warehouse"},
    "year-overflow": {"occurred_at": "9999-12-31T23:59:59-23:59"},
    "year-zero-after-utc": {"occurred_at": "0001-01-01T00:00:00+01:00"},
    "nul-in-status": {"status": "Ship\x00ped"},
    "control-in-tracking": {"tracking": [{"carrier": "U\x01PS", "number": "1Z1"}]},
    "bad-ship-date": {"tracking": [{"carrier": "UPS", "number": "1Z1", "ship_date": "2026-02-30"}]},
}


# -- 1. the token is checked before the body is read ---------------------------

async def test_finding1_a_bad_or_lapsed_token_is_refused_before_the_body_is_read(
        oss_app: Starlette, account: Callable[..., str], clock: Clock) -> None:
    lapsed = account("acme", expires=dt.date(2026, 5, 31))

    async def call(token: str) -> tuple[int, bytes, bool]:
        read = False

        async def receive() -> dict[str, Any]:
            nonlocal read
            read = True
            return {"type": "http.request", "body": b"{not json", "more_body": False}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/v1/updates", "root_path": "", "query_string": b"",
                 "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-length", b"9")],
                 "client": ("203.0.113.7", 1), "server": ("oss.test", 80), "scheme": "http",
                 "http_version": "1.1", "asgi": {"version": "3.0"}}
        await oss_app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"], read

    status, _, read = await call("oss_not-a-token")
    assert (status, read) == (401, False)
    status, body, read = await call(lapsed)
    assert (status, read) == (402, False)
    assert b"2026-05-31" in body


async def test_finding1_unauthenticated_requests_are_limited_per_client_address(
        make_app: Callable[..., Starlette], account: Callable[..., str]) -> None:
    token = account()
    app = make_app(ServerSettings(ingest_rate=1000, ingest_burst=1000))
    async with client_for(app, "198.51.100.9") as attacker, client_for(app, "198.51.100.10") as store:
        codes = [(await attacker.post("/api/v1/updates", json=update_body(),
                                      headers=bearer(f"oss_{random.getrandbits(128):x}"))).status_code
                 for _ in range(200)]
        assert codes.count(429) > 100  # a new random token each time does not escape the limit
        assert set(codes) == {401, 429}
        ok = await store.post("/api/v1/updates", json=update_body(), headers=bearer(token))
        assert ok.status_code == 200  # another client, with a good token, is not held back


# -- 2. one merchant's update cannot fail another's --------------------------------

@pytest.mark.parametrize("poison", POISON.values(), ids=POISON.keys())
async def test_finding2_a_body_that_cannot_be_stored_is_refused_by_validation(
        client: httpx.AsyncClient, account: Callable[..., str], poison: dict[str, Any]) -> None:
    r = await client.post("/api/v1/updates", json=update_body(**poison), headers=bearer(account()))
    assert r.status_code == 422, r.text


async def test_finding2_a_failed_group_commit_fails_only_its_culprit(oss_store: OssStore,
                                                                     account: Callable[..., str]) -> None:
    good, bad = account("acme"), account("bolt")
    jobs = [IngestJob(hash_token(good), b, body_digest(b))
            for b in (update_body(order_number=f"A{i}") for i in range(5))]
    # Past validation (as a body accepted by an older server, or a check missed): it raises in the transaction.
    poison = update_body(occurred_at="2026-06-30T23:59:60Z")
    jobs.insert(2, IngestJob(hash_token(bad), poison, body_digest(poison)))
    from cartstatus.oss.writer import BatchWriter

    results = await BatchWriter(oss_store).write_batch(jobs)
    assert isinstance(results[2], Exception)
    assert [r.kind for i, r in enumerate(results) if i != 2] == ["stored"] * 5  # type: ignore[union-attr]
    with oss_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(updates)).scalar_one() == 5


async def test_finding2_an_order_page_of_an_extreme_date_answers(client: httpx.AsyncClient,
                                                                account: Callable[..., str]) -> None:
    token = account()
    for at in ("9998-12-31T23:59:59.999999-23:59", "1971-01-01T00:00:00+23:59"):
        body = update_body(occurred_at=at)
        assert (await client.post("/api/v1/updates", json=body, headers=bearer(token))).status_code == 200
    page = await client.post("/status/acme", data={"order": "1001", "zip": "12345"})
    assert page.status_code == 200


# -- 3. metrics stay bounded ---------------------------------------------------------

async def test_finding3_metrics_labels_come_from_fixed_sets(client: httpx.AsyncClient) -> None:
    async def random_requests(n: int) -> str:
        for _ in range(n):
            method = "".join(random.choices(string.ascii_uppercase, k=12))
            await client.request(method, f"/{method.lower()}")
            await client.request(method, "/api/v1/updates")
        return (await client.get("/metrics")).text

    def series(text: str) -> set[str]:
        return {line.rsplit(" ", 1)[0] for line in text.splitlines()}

    await random_requests(3)
    before = await random_requests(3)
    after = await random_requests(50)
    assert set(re.findall(r'method="([^"]*)"', after)) <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                                            "OPTIONS", "other"}
    assert series(after) == series(before)  # the counts grew, the series did not


# -- 4. lookups cannot be brute-forced -------------------------------------------

async def test_finding4_failed_lookups_are_limited_per_order_across_workers_and_addresses(
        make_app: Callable[..., Starlette], client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    token = account()
    await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))
    # Two workers on one database, each asked from ever new addresses.
    workers = [make_app(ServerSettings(lookup_failures=6)) for _ in range(2)]
    codes = []
    for i in range(10):
        async with client_for(workers[i % 2], f"198.51.100.{i}") as c:
            r = await c.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": f"{10000 + i}"})
            codes.append(r.status_code)
    assert codes[:6] == [404] * 6
    assert codes[6:] == [429] * 4
    async with client_for(workers[0], "198.51.100.99") as c:
        other = await c.get("/api/v1/lookup", params={"merchant": "acme", "order": "1002", "zip": "10000"})
        assert other.status_code == 404  # another order is not locked
        html = await c.post("/status/acme", data={"order": "1001", "zip": "12345"})
        assert html.status_code == 429  # the form counts the same failures


def test_finding4_forwarded_headers_are_trusted_only_from_named_proxies(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    import uvicorn

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.append(kw))
    db = f"sqlite:///{tmp_path / 'oss.db'}"
    CliRunner().invoke(main, ["serve", "--db", db], catch_exceptions=False)
    CliRunner().invoke(main, ["serve", "--db", db, "--forwarded-allow-ips", "10.0.0.5"], catch_exceptions=False)
    assert seen[0]["proxy_headers"] is False
    assert (seen[1]["proxy_headers"], seen[1]["forwarded_allow_ips"]) == (True, "10.0.0.5")


def test_finding4_the_docs_proxy_limits_both_lookup_paths() -> None:
    doc = (ROOT / "docs" / "deploying-oss.md").read_text()
    nginx = doc.split("```nginx", 1)[1].split("```", 1)[0]
    for path in ("/status/", "/api/v1/lookup"):
        block = nginx.split(f"location {path}", 1)[1].split("}", 1)[0]
        assert "limit_req zone=oss_lookup" in block, path


async def test_finding4_a_failed_lookup_reads_the_same_whether_the_order_exists_or_how_long_its_history(
        client: httpx.AsyncClient, oss_store: OssStore, account: Callable[..., str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    token = account()
    for i in range(150):
        body = update_body(occurred_at=f"2026-06-01T{i // 60:02d}:{i % 60:02d}:00Z", status=f"S{i}")
        await client.post("/api/v1/updates", json=body, headers=bearer(token))
    reads: list[tuple[str, int]] = []
    real = oss_store.db.rows

    async def spy(sql: str, params: Mapping[str, Any]) -> list[Any]:
        rows = await real(sql, params)
        reads.append((sql, len(rows)))
        return rows

    await oss_store.lookup("acme", "1001", zip_code="12345")  # the merchant's id is read once, then remembered
    monkeypatch.setattr(oss_store.db, "rows", spy)
    known = await oss_store.lookup("acme", "1001", zip_code="99999")
    known_reads, reads[:] = list(reads), []
    unknown = await oss_store.lookup("acme", "9999", zip_code="99999")
    assert known is None and unknown is None
    assert known_reads == reads  # the same statements, one row each: nothing of the history is read
    assert all(n == 1 for _, n in reads)


# -- 5. the event loop never waits on the database ---------------------------------

async def test_finding5_the_loop_answers_while_another_connection_holds_the_write_lock(
        client: httpx.AsyncClient, oss_db_url: str, account: Callable[..., str]) -> None:
    token = account()
    assert (await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code == 200
    holder = sqlite3.connect(oss_db_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        pending = asyncio.ensure_future(client.post("/api/v1/updates", json=update_body(order_number="1002"),
                                                    headers=bearer(token)))
        for _ in range(20):
            await asyncio.sleep(0)  # the update reaches the database and waits for the lock
        found = await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})
        assert found.status_code == 200
        assert not pending.done()  # the lookup was answered while the update still waited
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (await pending).status_code == 200


# -- 6. a valid OpenAPI description ----------------------------------------------------

def test_finding6_openapi_is_valid_and_matches_what_the_server_enforces() -> None:
    from openapi_spec_validator import validate

    doc = openapi_document("1.0.0")
    validate(doc)  # type: ignore[arg-type]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            params = item.get("parameters", []) + op.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
    lookup = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/lookup"]["get"]["parameters"]}
    props = wire_schema()["properties"]
    assert lookup["order"]["pattern"] == props["order_number"]["pattern"]
    assert lookup["merchant"]["pattern"] == props["merchant"]["pattern"]
    assert lookup["email"]["maxLength"] == props["email"]["maxLength"] == 254


# -- 7. a long email is refused, neither echoed nor stored -----------------------------

async def test_finding7_an_email_over_254_characters_is_refused_and_not_echoed(
        client: httpx.AsyncClient, account: Callable[..., str], oss_store: OssStore) -> None:
    email = "p" * 250 + "@example.com"
    r = await client.post("/api/v1/updates", json=update_body(email=email), headers=bearer(account()))
    assert r.status_code == 422
    assert r.json()["field"] == "email"
    assert "p" * 50 not in r.text
    with oss_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(updates)).scalar_one() == 0


async def test_finding1_a_remembered_account_lapses_revokes_and_renews_within_its_seconds(
        make_app: Callable[..., Starlette], oss_store: OssStore, account: Callable[..., str]) -> None:
    token = account()
    app = make_app(ServerSettings(account_cache_seconds=5))
    cache = app.state.oss.accounts
    now = [0.0]
    cache.clock = lambda: now[0]
    async with client_for(app) as c:
        assert (await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code == 200
        oss_store.revoke("acme")
        # Remembered, but the group commit checks the account again: a revoked token stores nothing.
        r = await c.post("/api/v1/updates", json=update_body(order_number="1002"), headers=bearer(token))
        assert r.status_code == 401
        assert (await c.get("/api/v1/account", headers=bearer(token))).status_code == 200  # still remembered
        now[0] = 5.0
        assert (await c.get("/api/v1/account", headers=bearer(token))).status_code == 401
