"""No tenant can hurt another: one merchant's poison beside another's 100 concurrent updates, on both engines."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cartstatus.oss import handlers
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database, updates

from ..services import fresh_postgres_database
from .conftest import bearer, update_body
from .test_findings import POISON


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_store(request: pytest.FixtureRequest, oss_db_url: str) -> Iterator[OssStore]:
    if request.param == "sqlite":
        engine = open_oss_database(oss_db_url)
        yield OssStore(engine, today=lambda: dt.date(2026, 6, 1))
        engine.dispose()
        return
    with fresh_postgres_database() as url:
        engine = open_oss_database(url)
        yield OssStore(engine, today=lambda: dt.date(2026, 6, 1))
        engine.dispose()


@pytest.mark.parametrize("checked", [True, False], ids=["validated", "past-validation"])
async def test_one_merchants_poison_fails_none_of_anothers_100_concurrent_updates(
        engine_store: OssStore, checked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    store = engine_store
    _, good = store.create_account("acme", dt.date(2027, 1, 1))
    _, bad = store.create_account("bolt", dt.date(2027, 1, 1))
    if not checked:
        # As if validation missed them all: the group commit must still fail only the culprit.
        monkeypatch.setattr(handlers, "validate", lambda body: [])
    app = create_app(store, ServerSettings(ingest_rate=1000, ingest_burst=1000))
    bodies = [update_body(order_number=f"A{i}", occurred_at=f"2026-06-01T10:{i % 60:02d}:00Z") for i in range(100)]
    poison = [update_body(order_number=f"P{i}", **change) for i, change in enumerate(POISON.values())]
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://oss.test") as c:
            async def post(body: dict[str, Any], token: str) -> httpx.Response:
                return await c.post("/api/v1/updates", json=body, headers=bearer(token))

            # The poison goes in among the good updates, three times over, so it shares their batches.
            requests = [post(b, good) for b in bodies]
            for i, p in enumerate(poison * 3):
                requests.insert(i * 5, post(p, bad))
            replies = await asyncio.gather(*requests)
    finally:
        app.state.oss.close()
    good_codes = [r.status_code for r in replies if r.request.headers["authorization"] == f"Bearer {good}"]
    assert good_codes == [200] * 100
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(updates)
                              .where(updates.c.idempotency_key.in_([b["idempotency_key"] for b in bodies])))
        assert stored.scalar_one() == 100
    if checked:
        assert {r.status_code for r in replies if r.request.headers["authorization"] == f"Bearer {bad}"} == {422}
