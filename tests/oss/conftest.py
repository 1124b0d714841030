"""OSS fixtures: a store on a fresh SQLite file, the app, an in-process HTTP client."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from starlette.applications import Starlette

TODAY = dt.date(2026, 6, 1)


class Clock:
    """The OSS's idea of today, movable by tests."""

    def __init__(self, today: dt.date = TODAY) -> None:
        self.today = today

    def __call__(self) -> dt.date:
        return self.today


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oss_db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'oss.db'}"


@pytest.fixture
def oss_store(oss_db_url: str, clock: Clock) -> Iterator[OssStore]:
    engine = open_oss_database(oss_db_url)
    store = OssStore(engine, today=clock)
    yield store
    store.close()
    engine.dispose()


@pytest.fixture
def settings() -> ServerSettings:
    """Limits high enough not to get in the way, and account changes seen at once; tests of those make their own."""
    return ServerSettings(ingest_rate=1000, ingest_burst=1000, lookup_rate_per_minute=60000, lookup_burst=1000,
                          account_cache_seconds=0)


@pytest.fixture
def make_app(oss_store: OssStore) -> Iterator[Callable[..., Starlette]]:
    apps: list[Starlette] = []

    def make(settings: ServerSettings) -> Starlette:
        app = create_app(oss_store, settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.oss.close()


@pytest.fixture
def oss_app(make_app: Callable[..., Starlette], settings: ServerSettings) -> Starlette:
    return make_app(settings)


def client_for(app: Starlette, client_addr: str = "203.0.113.7") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(client_addr, 40000)),
                             base_url="http://oss.test")


@pytest.fixture
async def client(oss_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(oss_app) as c:
        yield c


@pytest.fixture
def account(oss_store: OssStore) -> Callable[..., str]:
    """Create an account; returns its token."""

    def make(merchant: str = "acme", expires: dt.date = dt.date(2027, 5, 31), name: str | None = None) -> str:
        _, token = oss_store.create_account(merchant, expires, name)
        return token

    return make


def update_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotency_key": str(uuid.uuid4()),
        "order_number": "1001",
        "status": "Shipped",
        "previous_status": "Printed",
        "occurred_at": "2026-06-01T10:00:00Z",
        "tracking": [{"carrier": "UPS", "number": "1Z999AA10123456784", "ship_date": "2026-06-01"}],
        "email": "pat@example.com",
        "zip": "12345",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
