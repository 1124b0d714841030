"""End to end: a store whose cart takes no updates, its subscription, the stack drained into a running OSS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.cli import main as cli_main
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.service import OssStore
from cartstatus.serve import serve_in_thread
from click.testing import CliRunner

from ..conftest import add_orders, base_setup

TOKEN_ENV = "ACME_OSS_TOKEN"


@pytest.fixture
def oss_server(oss_store: OssStore, settings: ServerSettings) -> Iterator[str]:
    """The OSS served by uvicorn on 127.0.0.1: the controller reaches it over real HTTP."""
    app = create_app(oss_store, settings)
    with serve_in_thread(app) as url:
        yield url


def americart_setup(url: str, expires: dt.date) -> dict[str, object]:
    return base_setup(stores=[{
        "id": "shop", "cart": "americart",
        "oss": {"url": url, "merchant": "acme", "token": {"$env": TOKEN_ENV},
                "subscription_expires": expires.isoformat()},
    }])


@pytest.fixture
def engine_for(write_setup: Callable[..., Path], oss_store: OssStore,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, dt.date], StatusEngine]]:
    engines: list[StatusEngine] = []

    def make(url: str, expires: dt.date) -> StatusEngine:
        engine = StatusEngine(load_config(write_setup(americart_setup(url, expires))))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.db.dispose()


async def test_updates_reach_the_oss_and_the_shopper_sees_them(
        oss_server: str, oss_store: OssStore, engine_for: Callable[[str, dt.date], StatusEngine],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The OSS's account and the store's setup file agree on the end date.
    expires = dt.date.today() + dt.timedelta(days=30)
    oss_store.today = dt.date.today
    _, token = oss_store.create_account("acme", expires, "Acme")
    monkeypatch.setenv(TOKEN_ENV, token)
    engine = engine_for(oss_server, expires)

    numbers = add_orders(engine, 3, store="shop")
    results = engine.fire("Order Shipped", numbers, tracking=["UPS:1Z999AA10123456784"], note="On its way")
    assert [(r.route, r.destination) for r in results] == [("oss", "oss")] * 3
    controller = StackController(engine.config, engine.stack)
    stats = await controller.run(drain=True)
    assert (stats.delivered, stats.parked) == (3, 0)
    assert engine.stack.count() == 0

    async with httpx.AsyncClient(base_url=oss_server) as shopper:
        # The shopper knows the cart's order number (C1000) and their ZIP.
        page = await shopper.post("/status/acme", data={"order": "C1000", "zip": "12345"})
        assert page.status_code == 200
        assert '<span class="status" id="status">Shipped</span>' in page.text
        assert 'href="https://www.ups.com/track?tracknum=1Z999AA10123456784"' in page.text
        assert "On its way" in page.text
        data = (await shopper.get("/api/v1/lookup", params={"merchant": "acme", "order": "C1001",
                                                            "email": "shopper1001@example.com"})).json()
        assert [(h["previous_status"], h["status"]) for h in data["history"]] == [("New", "Shipped")]
        wrong = await shopper.post("/status/acme", data={"order": "C1000", "zip": "99999"})
        assert wrong.status_code == 404 and "Shipped" not in wrong.text

        # The OSS answered each update with a signed link to the order's page: recorded, shown, and it opens
        # the page without typing anything.
        status_url = engine.show_order(numbers[0])["status_url"]
        assert status_url.startswith(f"{oss_server}/status/acme?order=C1000&key=")
        shown = CliRunner().invoke(cli_main, ["--config", str(engine.config.path), "orders", "show", numbers[0]])
        assert shown.exit_code == 0 and f"status page: {status_url}" in shown.output
        opened = await shopper.get(status_url)
        assert opened.status_code == 200 and '<span class="status" id="status">Shipped</span>' in opened.text

    # A second status change follows the first one on the shopper's page.
    engine.fire("Order Cancelled", numbers[:1])
    await StackController(engine.config, engine.stack).run(drain=True)
    view = await oss_store.lookup("acme", "C1000", zip_code="12345")
    assert view is not None and view.status == "Cancelled"
    assert [h.status for h in view.history] == ["Shipped", "Cancelled"]


async def test_a_lapsed_subscription_queues_nothing_and_says_why(
        oss_server: str, oss_store: OssStore, engine_for: Callable[[str, dt.date], StatusEngine],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, oss_store.create_account("acme", dt.date(2020, 1, 31))[1])
    lapsed = dt.date.today() - dt.timedelta(days=1)
    engine = engine_for(oss_server, lapsed)
    numbers = add_orders(engine, 2, store="shop")
    results = engine.fire("Order Shipped", numbers)
    assert all(r.changed and not r.queued and r.route == "none" for r in results)
    assert f"lapsed on {lapsed}" in results[0].reason and "renew" in results[0].reason
    assert engine.stack.count() == 0
    shown = engine.show_order(numbers[0])
    assert shown["status"] == "Shipped"
    assert shown["history"][-1]["route"] == "none"
    assert f"lapsed on {lapsed}" in shown["history"][-1]["reason"]


async def test_a_subscription_the_oss_has_ended_parks_the_record_with_the_reason(
        oss_server: str, oss_store: OssStore, engine_for: Callable[[str, dt.date], StatusEngine],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The setup file still says active, but the operator's end date has passed.
    oss_store.today = dt.date.today
    ended = dt.date.today() - dt.timedelta(days=3)
    monkeypatch.setenv(TOKEN_ENV, oss_store.create_account("acme", ended)[1])
    engine = engine_for(oss_server, dt.date.today() + dt.timedelta(days=30))
    engine.fire("Order Shipped", add_orders(engine, 1, store="shop"))
    stats = await StackController(engine.config, engine.stack).run(drain=True)
    assert (stats.delivered, stats.parked) == (0, 1)
    [record] = engine.stack.records()
    assert record.parked
    assert record.last_error is not None
    assert f"ended {ended}" in record.last_error and "renew" in record.last_error
