"""The store API and the JSON lookup: every status code, idempotency, expiry, tenant isolation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import sqlalchemy as sa
from cartstatus.oss.app import ServerSettings
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import orders, updates
from cartstatus.oss.wire import wire_schema
from starlette.applications import Starlette

from .conftest import Clock, bearer, client_for, update_body


def count(store: OssStore, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


async def test_an_update_is_stored_and_the_shopper_finds_it(client: httpx.AsyncClient, oss_app: Starlette,
                                                            account: Callable[..., str]) -> None:
    token = account("acme")
    body = update_body()
    r = await client.post("/api/v1/updates", json=body, headers=bearer(token))
    assert r.status_code == 200
    assert r.json() == {"result": "OK", "idempotency_key": body["idempotency_key"], "order_number": "1001",
                        "status": "Shipped",
                        "status_url": oss_app.state.oss.links.url("http://oss.test", "acme", "1001")}
    assert "idempotent-replayed" not in r.headers

    for key in ({"email": "PAT@example.com "}, {"zip": "12345-6789"}):
        found = await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", **key})
        assert found.status_code == 200, key
        data = found.json()
        assert data["status"] == "Shipped"
        assert data["history"] == [{"status": "Shipped", "previous_status": "Printed",
                                    "at": "2026-06-01T10:00:00Z", "note": None}]
        assert data["tracking"] == [{"carrier": "UPS", "number": "1Z999AA10123456784", "ship_date": "2026-06-01",
                                     "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}]
        assert found.headers["cache-control"] == "no-store"


async def test_the_same_key_and_body_answers_the_same_ok_and_stores_once(
        client: httpx.AsyncClient, account: Callable[..., str], oss_store: OssStore) -> None:
    token = account()
    body = update_body()
    first = await client.post("/api/v1/updates", json=body, headers=bearer(token))
    # The same meaning with keys in another order is the same body.
    again = await client.post("/api/v1/updates", content=json.dumps(dict(reversed(list(body.items())))),
                              headers=bearer(token))
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(oss_store, updates) == 1
    assert count(oss_store, orders) == 1


async def test_the_same_key_with_another_body_is_a_conflict(client: httpx.AsyncClient,
                                                            account: Callable[..., str],
                                                            oss_store: OssStore) -> None:
    token = account()
    body = update_body()
    assert (await client.post("/api/v1/updates", json=body, headers=bearer(token))).status_code == 200
    r = await client.post("/api/v1/updates", json={**body, "status": "Cancelled"}, headers=bearer(token))
    assert r.status_code == 409
    assert r.json()["field"] == "idempotency_key"
    assert body["idempotency_key"] in r.json()["message"]
    assert count(oss_store, updates) == 1
    lookup = await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})
    assert lookup.json()["status"] == "Shipped"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer oss_not-a-token"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}])
async def test_a_missing_or_unknown_token_is_401(client: httpx.AsyncClient, account: Callable[..., str],
                                                 oss_store: OssStore, headers: dict[str, str]) -> None:
    account()
    r = await client.post("/api/v1/updates", json=update_body(), headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert count(oss_store, updates) == 0


async def test_a_revoked_token_is_401_and_a_rotated_one_works(client: httpx.AsyncClient,
                                                              account: Callable[..., str],
                                                              oss_store: OssStore) -> None:
    token = account()
    oss_store.revoke("acme")
    assert (await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code == 401
    _, fresh = oss_store.rotate_token("acme")
    assert (await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code == 401
    assert (await client.post("/api/v1/updates", json=update_body(), headers=bearer(fresh))).status_code == 200


async def test_a_lapsed_subscription_is_402_with_the_end_date(client: httpx.AsyncClient,
                                                              account: Callable[..., str], clock: Clock,
                                                              oss_store: OssStore) -> None:
    token = account(expires=dt.date(2026, 6, 1))
    # Active through its last day...
    assert (await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code == 200
    clock.today = dt.date(2026, 6, 2)
    r = await client.post("/api/v1/updates", json=update_body(order_number="1002"), headers=bearer(token))
    assert r.status_code == 402
    assert r.json()["expires"] == "2026-06-01"
    assert "ended on 2026-06-01" in r.json()["message"]
    assert count(oss_store, updates) == 1
    oss_store.renew("acme", dt.date(2027, 6, 1))
    r = await client.post("/api/v1/updates", json=update_body(order_number="1002"), headers=bearer(token))
    assert r.status_code == 200


async def test_a_body_over_the_limit_is_413(make_app: Callable[..., Starlette], account: Callable[..., str],
                                            oss_store: OssStore) -> None:
    token = account()
    app = make_app(ServerSettings(max_body=1024))
    big = update_body(note="x" * 1500)
    async with client_for(app) as c:
        r = await c.post("/api/v1/updates", json=big, headers=bearer(token))
        assert r.status_code == 413
        assert "1024" in r.json()["message"]

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the limit holds while reading, too.
            data = json.dumps(big).encode()
            for i in range(0, len(data), 100):
                yield data[i:i + 100]

        r = await c.post("/api/v1/updates", content=chunks(), headers=bearer(token))
        assert r.status_code == 413
        small = await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))
        assert small.status_code == 200
    assert count(oss_store, updates) == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"status": ...}, "status"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"email": "not-an-email"}, "email"),
    ({"tracking": [{"carrier": "UPS", "number": "1Z<script>"}]}, "tracking[0].number"),
    ({"tracking": [{"carrier": "UPS"}]}, "tracking[0].number"),
    ({"colour": "red"}, "(body)"),
    ({"idempotency_key": 5}, "idempotency_key"),
])
async def test_an_invalid_body_is_422_naming_the_field(client: httpx.AsyncClient, account: Callable[..., str],
                                                       change: dict[str, object], field: str) -> None:
    token = account()
    r = await client.post("/api/v1/updates", json=update_body(**change), headers=bearer(token))
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert r.json()["message"].startswith(field)
    if field == "email":
        assert "not-an-email" not in r.text  # a shopper's data is not echoed


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    r = await client.post("/api/v1/updates", content=b"{not json", headers=bearer(account()))
    assert r.status_code == 422
    assert r.json()["field"] == "(body)"


async def test_too_many_updates_is_429_with_retry_after(make_app: Callable[..., Starlette],
                                                        account: Callable[..., str]) -> None:
    token = account()
    app = make_app(ServerSettings(ingest_rate=0.5, ingest_burst=2))
    async with client_for(app) as c:
        codes = [(await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))).status_code
                 for _ in range(2)]
        limited = await c.post("/api/v1/updates", json=update_body(), headers=bearer(token))
    assert codes == [200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


async def test_lookups_are_rate_limited_per_client(make_app: Callable[..., Starlette],
                                                   account: Callable[..., str]) -> None:
    account()
    app = make_app(ServerSettings(lookup_rate_per_minute=1, lookup_burst=3))
    params = {"merchant": "acme", "order": "1001", "zip": "99999"}
    async with client_for(app, "198.51.100.1") as one, client_for(app, "198.51.100.2") as two:
        assert [(await one.get("/api/v1/lookup", params=params)).status_code for _ in range(3)] == [404] * 3
        limited = await one.get("/api/v1/lookup", params=params)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        html = await one.post("/status/acme", data={"order": "1001", "zip": "99999"})
        assert html.status_code == 429
        assert (await two.get("/api/v1/lookup", params=params)).status_code == 404


async def test_a_wrong_email_or_zip_answers_like_an_unknown_order(client: httpx.AsyncClient,
                                                                  account: Callable[..., str]) -> None:
    token = account()
    await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))
    answers = []
    for params in ({"order": "1001", "email": "someone@example.com"}, {"order": "1001", "zip": "54321"},
                   {"order": "9999", "email": "pat@example.com"}, {"order": "1001", "email": "pat@example.com",
                                                                   "merchant": "nobody"}):
        r = await client.get("/api/v1/lookup", params={"merchant": "acme", **params})
        answers.append((r.status_code, r.content))
    assert len(set(answers)) == 1
    assert answers[0][0] == 404
    keyless = await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001"})
    assert (keyless.status_code, keyless.content) == answers[0]  # neither email nor ZIP: nothing matches
    missing = await client.get("/api/v1/lookup", params={"merchant": "acme", "email": "pat@example.com"})
    assert missing.status_code == 422
    assert missing.json()["field"] == "order"


async def test_a_store_can_neither_write_nor_read_another_stores_orders(client: httpx.AsyncClient,
                                                                        account: Callable[..., str],
                                                                        oss_store: OssStore) -> None:
    acme, bolt = account("acme"), account("bolt")
    key = "11111111-2222-3333-4444-555555555555"
    a = await client.post("/api/v1/updates", json=update_body(idempotency_key=key), headers=bearer(acme))
    # The same order number and even the same key at another store are that store's own.
    b = await client.post("/api/v1/updates",
                          json=update_body(idempotency_key=key, status="Cancelled", email="bo@example.com",
                                           zip="99999", tracking=[]),
                          headers=bearer(bolt))
    assert (a.status_code, b.status_code) == (200, 200)
    assert "idempotent-replayed" not in b.headers
    # Naming the other merchant in the body does not let a token write there.
    c = await client.post("/api/v1/updates", json=update_body(merchant="acme", status="Lost"), headers=bearer(bolt))
    assert c.status_code == 403
    assert c.json()["field"] == "merchant"

    own = await client.get("/api/v1/orders/1001", headers=bearer(bolt))
    assert own.json()["status"] == "Cancelled"
    assert own.json()["merchant"] == "bolt"
    assert (await client.get("/api/v1/orders/1001", headers=bearer(acme))).json()["status"] == "Shipped"
    assert (await client.get("/api/v1/orders/1001", headers={"Authorization": "Bearer x"})).status_code == 401

    async def lookup(merchant: str, **key: str) -> int:
        r = await client.get("/api/v1/lookup", params={"merchant": merchant, "order": "1001", **key})
        return r.status_code

    assert await lookup("acme", email="pat@example.com") == 200
    assert await lookup("acme", email="bo@example.com") == 404
    assert await lookup("bolt", email="pat@example.com") == 404
    assert await lookup("bolt", zip="99999") == 200
    page = await client.post("/status/bolt", data={"order": "1001", "email": "pat@example.com"})
    assert page.status_code == 404 and "Shipped" not in page.text
    assert count(oss_store, updates) == 2


async def test_a_late_update_does_not_overwrite_a_newer_status(client: httpx.AsyncClient,
                                                               account: Callable[..., str]) -> None:
    token = account()
    await client.post("/api/v1/updates", json=update_body(status="Delivered", occurred_at="2026-06-03T09:00:00Z",
                                                          tracking=[]), headers=bearer(token))
    await client.post("/api/v1/updates", json=update_body(status="Shipped", occurred_at="2026-06-02T09:00:00+02:00"),
                      headers=bearer(token))
    data = (await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})).json()
    assert data["status"] == "Delivered"
    assert [(h["status"], h["at"]) for h in data["history"]] == [("Shipped", "2026-06-02T07:00:00Z"),
                                                                 ("Delivered", "2026-06-03T09:00:00Z")]
    assert len(data["tracking"]) == 1


async def test_account_endpoint_answers_for_the_token(client: httpx.AsyncClient, account: Callable[..., str],
                                                      clock: Clock) -> None:
    token = account("acme", expires=dt.date(2099, 5, 31))
    info = (await client.get("/api/v1/account", headers=bearer(token))).json()
    assert info["merchant"] == "acme"
    assert info["expires"] == "2099-05-31"
    assert info["active"] is True
    assert "token" not in info
    # Lapsed: 402 with the end date, as an update would get ("Test Settings" says so).
    lapsed = await client.get("/api/v1/account", headers=bearer(account("old", expires=dt.date(2026, 5, 31))))
    assert lapsed.status_code == 402 and lapsed.json()["expires"] == "2026-05-31"


async def test_health_metrics_and_openapi(client: httpx.AsyncClient, account: Callable[..., str]) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    await client.post("/api/v1/updates", json=update_body(), headers=bearer(account()))
    metrics = (await client.get("/metrics")).text
    assert 'oss_updates_total{result="stored"} 1.0' in metrics
    assert 'oss_http_requests_total{method="POST",route="/api/v1/updates",status="200"} 1.0' in metrics
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    published = wire_schema()
    assert doc["components"]["schemas"]["StatusUpdate"]["properties"] == published["properties"]
    post = doc["paths"]["/api/v1/updates"]["post"]
    assert set(post["responses"]) == {"200", "401", "402", "403", "409", "413", "422", "429"}


async def test_access_logs_are_structured_and_hold_no_secrets(client: httpx.AsyncClient,
                                                              account: Callable[..., str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    token = account()
    caplog.set_level(logging.INFO, logger="cartstatus.oss.access")
    await client.post("/api/v1/updates", json=update_body(), headers=bearer(token))
    await client.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "email": "pat@example.com"})
    await client.post("/status/acme", data={"order": "1001", "zip": "12345"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cartstatus.oss.access"]
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/api/v1/updates", 200), ("/api/v1/lookup", 200), ("/status/acme", 200)]
    assert lines[0]["merchant"] == "acme"
    assert {"ts", "request_id", "method", "route", "ms", "client"} <= set(lines[0])
    assert token not in caplog.text
    assert token[4:20] not in caplog.text
    assert "pat@example.com" not in caplog.text and "12345" not in caplog.text


async def test_concurrent_updates_share_commits_and_are_stored_once_each(
        make_app: Callable[..., Starlette], account: Callable[..., str], oss_store: OssStore) -> None:
    token = account()
    app = make_app(ServerSettings(ingest_rate=1000, ingest_burst=1000))
    bodies = [update_body(order_number=f"{2000 + i % 5}", occurred_at=f"2026-06-01T10:{i:02d}:00Z", status=f"S{i}")
              for i in range(30)]
    async with client_for(app) as c:
        # Ten repeats travel with their originals, often in the same batch.
        replies = await asyncio.gather(*(c.post("/api/v1/updates", json=b, headers=bearer(token))
                                         for b in bodies + bodies[:10]))
    assert [r.status_code for r in replies] == [200] * 40
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in replies) == 10
    assert count(oss_store, updates) == 30
    assert count(oss_store, orders) == 5
    writer = app.state.oss.writer
    assert writer.jobs == 40 and writer.batches < writer.jobs
    for k in range(5):
        view = await oss_store.lookup("acme", f"{2000 + k}", zip_code="12345")
        assert view is not None and view.status == f"S{25 + k}"
        assert [h.status for h in view.history] == [f"S{i}" for i in range(k, 30, 5)]
