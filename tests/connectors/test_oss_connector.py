"""The ``oss`` connector against the real OSS app (in process) and against faults it cannot make."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cartstatus import AlreadyDone, Delivered, Failed, RetryLater, Secret, StatusUpdate, Tracking
from cartstatus.connectors.oss import OssConnector
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from cartstatus.plugins import get_connectors

from ..oss.conftest import Clock

URL = "http://oss.test"


@pytest.fixture
def clock() -> Clock:
    return Clock()  # 2026-06-01


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[OssStore]:
    engine = open_oss_database(f"sqlite:///{tmp_path / 'oss.db'}")
    yield OssStore(engine, today=clock)
    engine.dispose()


@pytest.fixture
def serve(store: OssStore) -> Iterator[Callable[..., httpx.AsyncBaseTransport]]:
    apps = []

    def make(**settings: Any) -> httpx.AsyncBaseTransport:
        app = create_app(store, ServerSettings(**settings))
        apps.append(app)
        return httpx.ASGITransport(app=app)

    yield make
    for app in apps:
        app.state.oss.close()


@pytest.fixture
def token(store: OssStore) -> str:
    return store.create_account("acme", dt.date(2026, 12, 31))[1]


@pytest.fixture
async def connector(serve: Callable[..., httpx.AsyncBaseTransport], token: str) -> AsyncIterator[OssConnector]:
    c = OssConnector({"url": URL + "/", "merchant": "acme", "token": Secret(token)}, transport=serve())
    yield c
    await c.aclose()


def update(**overrides: Any) -> StatusUpdate:
    values: dict[str, Any] = dict(
        idempotency_key=str(uuid.uuid4()), store_id="shop", order_number="1001", cart_order_ref="C1001",
        status="Shipped", cart_status="Shipped", previous_status="New", event="Order Shipped",
        occurred_at="2026-06-01T10:00:00Z", tracking=(Tracking("UPS", "1Z999AA10123456784", "2026-06-01"),),
        email="pat@example.com", zip="12345")
    values.update(overrides)
    return StatusUpdate(**values)


def test_the_connector_is_registered_and_its_token_is_secret() -> None:
    assert get_connectors()["oss"] is OssConnector
    assert OssConnector.settings_schema["properties"]["token"]["secret"] is True
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret("oss_topsecret")})
    assert "oss_topsecret" not in repr(c)


async def test_delivered_then_already_done(connector: OssConnector, store: OssStore) -> None:
    u = update()
    first, again = await connector.send(u), await connector.send(u)
    assert isinstance(first, Delivered) and isinstance(again, AlreadyDone)
    # Both carry the order's signed page, for the history (orders show) and the shopper's email.
    assert first.link is not None and first.link.startswith(f"{URL}/status/acme?order=C1001&key=")
    assert again.link == first.link
    view = await store.lookup("acme", "C1001", zip_code="12345")
    assert view is not None and view.status == "Shipped"
    assert [(t.carrier, t.number) for t in view.tracking] == [("UPS", "1Z999AA10123456784")]


async def test_a_revoked_token_fails_with_a_reason_for_support(connector: OssConnector, store: OssStore) -> None:
    store.revoke("acme")
    outcome = await connector.send(update())
    assert isinstance(outcome, Failed)
    assert "unknown or revoked" in outcome.reason and "rotate-token" in outcome.reason


async def test_a_lapsed_subscription_fails_naming_the_end_date(connector: OssConnector, clock: Clock) -> None:
    clock.today = dt.date(2027, 1, 1)
    outcome = await connector.send(update())
    assert isinstance(outcome, Failed)
    assert "lapsed" in outcome.reason and "2026-12-31" in outcome.reason and "renew" in outcome.reason


async def test_same_key_other_body_fails(connector: OssConnector) -> None:
    u = update()
    assert isinstance(await connector.send(u), Delivered)
    outcome = await connector.send(update(idempotency_key=u.idempotency_key, cart_status="Cancelled"))
    assert isinstance(outcome, Failed)
    assert u.idempotency_key in outcome.reason and "different body" in outcome.reason


async def test_a_token_of_another_merchant_fails(serve: Callable[..., httpx.AsyncBaseTransport], token: str) -> None:
    c = OssConnector({"url": URL, "merchant": "bolt", "token": Secret(token)}, transport=serve())
    outcome = await c.send(update())
    await c.aclose()
    assert isinstance(outcome, Failed) and "does not belong to merchant bolt" in outcome.reason


async def test_too_large_fails(serve: Callable[..., httpx.AsyncBaseTransport], token: str) -> None:
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret(token)}, transport=serve(max_body=512))
    outcome = await c.send(update(note="n" * 800))
    await c.aclose()
    assert isinstance(outcome, Failed) and "too large" in outcome.reason


async def test_too_many_requests_retries_after_the_servers_delay(serve: Callable[..., httpx.AsyncBaseTransport],
                                                                 token: str) -> None:
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret(token)},
                     transport=serve(ingest_rate=0.25, ingest_burst=1))
    assert isinstance(await c.send(update()), Delivered)
    outcome = await c.send(update())
    await c.aclose()
    assert isinstance(outcome, RetryLater)
    assert outcome.delay is not None and outcome.delay >= 1


async def test_an_update_outside_the_wire_format_fails_before_sending() -> None:
    calls: list[httpx.Request] = []
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret("t")},
                     transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    outcome = await c.send(update(zip="!!"))
    assert isinstance(outcome, Failed) and "zip" in outcome.reason
    assert calls == []


def replying(status: int, json: Any = None, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda r: httpx.Response(status, json=json, headers=headers))


def raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("transport", "kind", "detail"), [
    (replying(422, {"error": "invalid update", "field": "tracking[0].number", "message": "not valid"}),
     Failed, "field tracking[0].number"),
    (replying(429, {"error": "too many requests"}, {"Retry-After": "7"}), RetryLater, 7.0),
    (replying(503, None, {"Retry-After": "30"}), RetryLater, 30.0),
    (replying(500), RetryLater, None),
    (replying(502), RetryLater, None),
    (replying(200, {"result": "maybe"}), RetryLater, None),
    (replying(404, {"error": "not found", "message": "no such route"}), Failed, "404"),
    (raising(httpx.ReadTimeout("slow")), RetryLater, None),
    (raising(httpx.ConnectError("refused")), RetryLater, None),
])
async def test_outcomes_for_replies_the_oss_makes_rarely(transport: httpx.MockTransport, kind: type,
                                                         detail: Any) -> None:
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret("t")}, transport=transport)
    outcome = await c.send(update())
    assert isinstance(outcome, kind)
    if isinstance(outcome, RetryLater):
        assert outcome.delay == detail
    elif detail is not None:
        assert detail in outcome.reason


async def test_connection_test(serve: Callable[..., httpx.AsyncBaseTransport], store: OssStore, token: str,
                               clock: Clock) -> None:
    transport = serve()

    async def tried(merchant: str = "acme", secret: str = token, **more: str) -> tuple[bool, str]:
        c = OssConnector({"url": URL, "merchant": merchant, "token": Secret(secret), **more}, transport=transport)
        result = await c.test_connection()
        await c.aclose()
        return result.ok, result.detail

    assert await tried() == (True, "merchant acme, subscription until 2026-12-31")
    assert await tried(subscription_expires="2026-12-31") == (True, "merchant acme, subscription until 2026-12-31")
    assert await tried(subscription_expires="2026-06-30") == (
        False, "the OSS has merchant acme's subscription until 2026-12-31, the setup file says 2026-06-30: set the "
               "store's oss.subscription_expires: 2026-12-31")
    ok, detail = await tried("bolt")
    assert not ok and "the token belongs to merchant acme, not bolt" in detail
    ok, detail = await tried(secret="nope")
    assert not ok and "the OSS refused the token of merchant acme (unknown or revoked)" in detail
    clock.today = dt.date(2027, 1, 1)
    ok, detail = await tried()
    assert not ok and "lapsed (ended 2026-12-31): renew it with the OSS operator" in detail


@pytest.mark.parametrize(("transport", "said"), [
    (replying(404, {"error": "not found"}), "http://oss.test has no OSS account endpoint (/api/v1/account, HTTP 404)"),
    (replying(500, {"message": "database down"}), "HTTP 500 from the OSS at http://oss.test: database down"),
    (replying(200, {"hello": "world"}), "answered 200 without its account reply (merchant and expires)"),
    (replying(200, {"merchant": "acme", "expires": "2020-01-31", "active": True}), "lapsed (ended 2020-01-31)"),
    (raising(httpx.ConnectError("refused")), "the OSS at http://oss.test did not answer: network error"),
])
async def test_connection_test_of_replies_the_oss_makes_rarely(transport: httpx.MockTransport, said: str) -> None:
    c = OssConnector({"url": URL, "merchant": "acme", "token": Secret("t")}, transport=transport)
    result = await c.test_connection()
    await c.aclose()
    assert not result.ok and said in result.detail
