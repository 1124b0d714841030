"""What the ecwid connector sends and how it reads Ecwid's answers, against the simulator (and a few bare replies)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import jsonschema
import pytest
from cartstatus.connector import StatusUpdate, Tracking
from cartstatus.connectors.ecwid import EcwidConnector
from cartstatus.connectors.ecwid.connector import (
    DEFAULT_API_BASE,
    FULFILLMENT_STATUSES,
    PAYMENT_STATUSES,
    missing_tracking,
    status_field,
    tracking_entries,
    tracking_text,
)
from cartstatus.connectors.ecwid.simulator import EcwidSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

TOKEN = "secret_unitEcwidToken0123456789"
SETTINGS = {"store_id": 1003, "token": TOKEN, "api_base": "https://ecwid.test/api/v3"}
TWO = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132", "2024-05-02"))


class Recording(httpx.AsyncBaseTransport):
    """Another transport, keeping every request (body read) it passes on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    def calls(self) -> list[tuple[str, str, Any]]:
        return [(r.method, r.url.raw_path.decode(), json.loads(r.content) if r.content else None) for r in self.sent]


def connector(transport: httpx.AsyncBaseTransport, **settings: Any) -> EcwidConnector:
    return EcwidConnector(wrap_secrets({**SETTINGS, **settings}, EcwidConnector.settings_schema), transport=transport)


async def send(sim: EcwidSimulator, *updates: StatusUpdate, **settings: Any) -> tuple[list[Outcome], Recording]:
    transport = Recording(simulator_transport(sim))
    cart = connector(transport, **settings)
    try:
        return [await cart.send(u) for u in updates], transport
    finally:
        await cart.aclose()


def simulator(**kwargs: Any) -> EcwidSimulator:
    return EcwidSimulator(token=TOKEN, **kwargs)


# -- the exact requests ------------------------------------------------------------


async def test_shipped_with_two_numbers_reads_the_order_then_puts_the_status_and_both_numbers() -> None:
    sim = simulator()
    sim.add_order("K-1")
    (outcome,), sent = await send(sim, make_update("K-1", "SHIPPED", tracking=TWO))
    assert isinstance(outcome, Delivered) and "2 tracking number(s) added" in outcome.detail, outcome
    assert sent.calls() == [
        ("GET", "/api/v3/1003/orders/K-1", None),
        ("PUT", "/api/v3/1003/orders/K-1",
         {"fulfillmentStatus": "SHIPPED", "trackingNumber": "UPS: 1Z999AA10123456784, FedEx: 794644790132"}),
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in sent.sent)
    assert sent.sent[1].headers["content-type"] == "application/json"
    assert sim.tracking_numbers("K-1") == [("UPS", "1Z999AA10123456784"), ("FedEx", "794644790132")]
    assert sim.order_state("K-1") == {"status": "SHIPPED", "fulfillmentStatus": "SHIPPED",
                                      "paymentStatus": "AWAITING_PAYMENT", "privateAdminNotes": "",
                                      "trackingNumber": "UPS: 1Z999AA10123456784, FedEx: 794644790132"}


@pytest.mark.parametrize("value", PAYMENT_STATUSES)
async def test_a_payment_value_sets_payment_status_and_leaves_fulfillment_alone(value: str) -> None:
    sim = simulator()
    sim.add_order("K-1", "PROCESSING")
    (outcome,), sent = await send(sim, make_update("K-1", value))
    expected = AlreadyDone if value == "AWAITING_PAYMENT" else Delivered  # a new order already awaits payment
    assert isinstance(outcome, expected), outcome
    puts = [body for method, _, body in sent.calls() if method == "PUT"]
    assert puts == ([] if expected is AlreadyDone else [{"paymentStatus": value}])
    assert sim.orders["K-1"]["fulfillmentStatus"] == "PROCESSING"


@pytest.mark.parametrize("value", FULFILLMENT_STATUSES[1:])
async def test_a_fulfillment_value_sets_fulfillment_status_only(value: str) -> None:
    sim = simulator()
    sim.add_order("K-1")
    (outcome,), sent = await send(sim, make_update("K-1", value))
    assert isinstance(outcome, Delivered), outcome
    assert sent.calls()[-1] == ("PUT", "/api/v3/1003/orders/K-1", {"fulfillmentStatus": value})
    assert sim.orders["K-1"]["paymentStatus"] == "AWAITING_PAYMENT"


def test_the_two_vocabularies_do_not_overlap_and_each_value_has_its_field() -> None:
    assert not set(FULFILLMENT_STATUSES) & set(PAYMENT_STATUSES)
    assert EcwidConnector.status_vocabulary == FULFILLMENT_STATUSES + PAYMENT_STATUSES
    assert {status_field(v) for v in FULFILLMENT_STATUSES} == {"fulfillmentStatus"}
    assert {status_field(v) for v in PAYMENT_STATUSES} == {"paymentStatus"}


def test_the_default_map() -> None:
    assert dict(EcwidConnector.default_status_map) == {
        "Received": "AWAITING_PROCESSING", "Payment Received": "PAID", "Processing": "PROCESSING",
        "Shipped": "SHIPPED", "Drop Shipped": "SHIPPED", "Delivered": "DELIVERED",
        "Cancelled": "CANCELLED", "Refunded": "REFUNDED"}
    assert status_field(EcwidConnector.default_status_map["Cancelled"]) == "paymentStatus"


async def test_an_order_id_with_the_stores_prefix_and_odd_characters_is_one_quoted_path_segment() -> None:
    sim = simulator()
    sim.add_order("SALE-G01 ZG")
    (outcome,), sent = await send(sim, make_update("SALE-G01 ZG", "PROCESSING"))
    assert isinstance(outcome, Delivered), outcome
    assert sent.calls()[0][1] == "/api/v3/1003/orders/SALE-G01%20ZG"


async def test_api_base_defaults_to_ecwids_own() -> None:
    transport = Recording(httpx.MockTransport(lambda request: httpx.Response(200, json={"total": 0, "items": []})))
    cart = EcwidConnector(wrap_secrets({"store_id": 42, "token": TOKEN}, EcwidConnector.settings_schema),
                          transport=transport)
    try:
        assert (await cart.test_connection()).ok
    finally:
        await cart.aclose()
    assert str(transport.sent[0].url) == f"{DEFAULT_API_BASE}/42/orders?limit=1"


# -- read before write ----------------------------------------------------------------


async def test_a_repeat_reads_and_sends_nothing_more() -> None:
    sim = simulator()
    sim.add_order("K-1")
    update = make_update("K-1", "SHIPPED", tracking=TWO)
    (first, again), sent = await send(sim, update, update)
    assert isinstance(first, Delivered) and isinstance(again, AlreadyDone), (first, again)
    assert [m for m, _, _ in sent.calls()] == ["GET", "PUT", "GET"]
    assert len(sim.tracking_numbers("K-1")) == 2


async def test_a_number_typed_in_ecwids_admin_is_kept_and_only_missing_numbers_are_added() -> None:
    sim = simulator()
    sim.add_order("K-1")
    sim.orders["K-1"]["trackingNumber"] = "9400111899223, FedEx: 794644790132"  # a person's and one of ours
    (outcome,), sent = await send(sim, make_update("K-1", "SHIPPED", tracking=TWO))
    assert isinstance(outcome, Delivered) and "1 tracking number(s) added" in outcome.detail, outcome
    assert sent.calls()[-1][2] == {
        "fulfillmentStatus": "SHIPPED",
        "trackingNumber": "9400111899223, FedEx: 794644790132, UPS: 1Z999AA10123456784"}
    assert sim.tracking_numbers("K-1") == [("", "9400111899223"), ("FedEx", "794644790132"),
                                           ("UPS", "1Z999AA10123456784")]


async def test_the_status_already_set_with_new_tracking_still_puts_both() -> None:
    sim = simulator()
    sim.add_order("K-1", "SHIPPED")
    (outcome,), sent = await send(sim, make_update("K-1", "SHIPPED", tracking=TWO[:1]))
    assert isinstance(outcome, Delivered), outcome
    assert sent.calls()[-1][2] == {"fulfillmentStatus": "SHIPPED", "trackingNumber": "UPS: 1Z999AA10123456784"}


async def test_a_status_already_set_without_tracking_is_already_done_with_one_read() -> None:
    sim = simulator()
    sim.add_order("K-1", "PAID")
    (outcome,), sent = await send(sim, make_update("K-1", "PAID"))
    assert isinstance(outcome, AlreadyDone), outcome
    assert [m for m, _, _ in sent.calls()] == ["GET"]


async def test_without_the_read_a_persons_number_would_be_lost() -> None:
    """The read is what keeps the field whole: a connector that writes blind replaces it."""

    class Blind(EcwidConnector):
        async def _deliver(self, update: StatusUpdate) -> Outcome:
            await self.call("PUT", self.order_url(update.cart_order_ref), json={
                status_field(update.cart_status): update.cart_status,
                "trackingNumber": tracking_text(None, update.tracking)})
            return Delivered("blind")

    sim = simulator()
    sim.add_order("K-1")
    sim.orders["K-1"]["trackingNumber"] = "9400111899223"
    cart = Blind(wrap_secrets(SETTINGS, EcwidConnector.settings_schema), transport=simulator_transport(sim))
    try:
        await cart.send(make_update("K-1", "SHIPPED", tracking=TWO))
    finally:
        await cart.aclose()
    assert ("", "9400111899223") not in sim.tracking_numbers("K-1")


def test_tracking_entries_read_back_what_tracking_text_writes() -> None:
    text = tracking_text("", [*TWO, Tracking("Canada, Post", "CP1"), Tracking("", "BARE-7")])
    assert text == "UPS: 1Z999AA10123456784, FedEx: 794644790132, Canada Post: CP1, BARE-7"
    assert tracking_entries(text) == [("UPS", "1Z999AA10123456784"), ("FedEx", "794644790132"),
                                      ("Canada Post", "CP1"), ("", "BARE-7")]
    assert tracking_entries(None) == [] and tracking_entries(" , ") == []
    doubled = (TWO[0], Tracking("UPS", TWO[0].number))
    assert missing_tracking(None, doubled) == [TWO[0]]  # a number given twice in one update goes once


# -- Ecwid's refusals and faults -----------------------------------------------------------


async def test_an_unknown_order_is_failed_in_ecwids_words() -> None:
    sim = simulator()
    (outcome,), sent = await send(sim, make_update("K-404", "SHIPPED", tracking=TWO))
    assert isinstance(outcome, Failed), outcome
    assert "HTTP 404" in outcome.reason and "ORDER_NOT_FOUND" in outcome.reason
    assert [m for m, _, _ in sent.calls()] == ["GET"]


async def test_a_wrong_token_is_failed_with_ecwids_403() -> None:
    sim = simulator()
    sim.add_order("K-1")
    (outcome,), _ = await send(sim, make_update("K-1", "SHIPPED"), token="secret_wrongToken0000")
    assert isinstance(outcome, Failed) and "INVALID_API_TOKEN" in outcome.reason, outcome
    assert "secret_wrongToken0000" not in outcome.reason


async def test_another_stores_id_is_refused_like_a_wrong_token() -> None:
    sim = simulator()
    sim.add_order("K-1")
    (outcome,), sent = await send(sim, make_update("K-1", "SHIPPED"), store_id=2002)
    assert isinstance(outcome, Failed) and "INVALID_API_TOKEN" in outcome.reason, outcome
    assert sent.calls()[0][1] == "/api/v3/2002/orders/K-1"


async def test_a_token_without_update_orders_reads_then_fails_on_the_scope() -> None:
    sim = simulator(scopes=frozenset({"read_store_profile", "read_orders"}))
    sim.add_order("K-1")
    (outcome,), sent = await send(sim, make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, Failed) and "INSUFFICIENT_APP_SCOPE" in outcome.reason, outcome
    assert [m for m, _, _ in sent.calls()] == ["GET", "PUT"]
    assert sim.orders["K-1"]["fulfillmentStatus"] == "AWAITING_PROCESSING"


@pytest.mark.parametrize(("fault", "kind", "words"), [
    ("suspended", Failed, "STORE_IS_SUSPENDED"),
    ("http_4xx", Failed, "INSUFFICIENT_APP_SCOPE"),
    ("http_500", RetryLater, "HTTP 500"),
    ("http_503", RetryLater, "HTTP 503"),
    ("http_429", RetryLater, "HTTP 429"),
])
async def test_faults(fault: str, kind: type, words: str) -> None:
    sim = simulator()
    sim.add_order("K-1")
    sim.fail_next(fault)
    (outcome,), _ = await send(sim, make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, kind) and words in outcome.reason, outcome  # type: ignore[attr-defined]


async def bare(reply: Callable[[httpx.Request], httpx.Response], update: StatusUpdate) -> Outcome:
    cart = connector(httpx.MockTransport(reply))
    try:
        return await cart.send(update)
    finally:
        await cart.aclose()


async def test_an_update_count_of_zero_is_not_delivery() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"id": "K-1", "fulfillmentStatus": "AWAITING_PROCESSING"})
        return httpx.Response(200, json={"updateCount": 0})

    outcome = await bare(reply, make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, Failed) and "updateCount" in outcome.reason, outcome


async def test_a_400_without_a_body_and_an_html_page_are_read_without_raising() -> None:
    outcome = await bare(lambda r: httpx.Response(400), make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, Failed) and "HTTP 400" in outcome.reason, outcome
    outcome = await bare(lambda r: httpx.Response(200, text="<html>maintenance</html>"),
                         make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, RetryLater) and "unreadable" in outcome.reason, outcome  # a proxy's page: passing


async def test_an_unreadable_answer_to_the_put_is_sent_again_later() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"id": "K-1", "fulfillmentStatus": "AWAITING_PROCESSING"})
        return httpx.Response(200, text="<html>ok</html>")

    outcome = await bare(reply, make_update("K-1", "SHIPPED"))
    assert isinstance(outcome, RetryLater) and "unreadable" in outcome.reason, outcome


# -- the limit ------------------------------------------------------------------------------


async def test_ecwids_429_gives_its_delay_and_holds_the_store() -> None:
    sim = simulator(quota=2, window_seconds=60.0)
    sim.add_order("K-1")
    sim.add_order("K-2")
    transport = simulator_transport(sim)
    cart = connector(transport)
    try:
        first = await cart.send(make_update("K-1", "SHIPPED"))  # GET + PUT: the quota
        assert cart.latest_limit_hint is None  # Ecwid sends no remaining-calls headers on a success
        throttled = await cart.send(make_update("K-2", "SHIPPED"))
        hint = cart.latest_limit_hint
    finally:
        await cart.aclose()
    assert isinstance(first, Delivered), first
    assert isinstance(throttled, RetryLater) and throttled.delay is not None and 59 <= throttled.delay <= 60, throttled
    assert "HTTP 429" in throttled.reason
    assert hint is not None and hint.remaining == 0 and hint.reset_in == throttled.delay
    assert sim.throttled == 1 and sim.requests == 3


async def test_the_simulator_quota_is_a_sliding_window_per_token() -> None:
    sim = simulator(quota=2, window_seconds=0.05)
    async with httpx.AsyncClient(transport=simulator_transport(sim), base_url="http://ecwid.test") as client:
        ok = {"authorization": f"Bearer {TOKEN}"}
        codes = [(await client.get("/api/v3/1003/orders", headers=ok)).status_code for _ in range(3)]
        other = await client.get("/api/v3/1003/orders", headers={"authorization": "Bearer secret_another0000"})
        refused = await client.get("/api/v3/1003/orders", headers=ok)
        await asyncio.sleep(0.06)
        later = await client.get("/api/v3/1003/orders", headers=ok)
    assert codes == [200, 200, 429]
    assert other.status_code == 403  # another token has its own count (and this one is not the store's)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"errorMessage": "Too many requests, rate limit exceeded", "errorCode": "RATE_LIMITED"}
    assert later.status_code == 200 and sim.throttled == 2


def test_the_declared_limit_is_ecwids() -> None:
    limit = EcwidConnector.rate_limit
    assert limit is not None and (limit.requests, limit.per_seconds) == (600, 60.0)
    assert EcwidSimulator().quota is None and EcwidSimulator().window_seconds == 60.0


# -- the simulator refuses what Ecwid refuses ---------------------------------------------------


@pytest.mark.parametrize(("body", "words"), [
    ({"fulfillmentStatus": "SHIPPED", "items": []}, "Unexpected order field(s) for this store: items"),
    ({"fulfillmentStatus": "Shipped"}, "Unknown fulfillmentStatus value: Shipped"),
    ({"paymentStatus": "SHIPPED"}, "Unknown paymentStatus value: SHIPPED"),
    ({"paymentStatus": "QUEUED"}, "Status QUEUED is deprecated, use AWAITING_PAYMENT instead"),
    ({"trackingNumber": 12345}, "Field trackingNumber must be a string"),
    (["SHIPPED"], "Request body must be a JSON object"),
])
async def test_the_simulator_refuses_a_bad_update_with_ecwids_400(body: Any, words: str) -> None:
    sim = simulator()
    sim.add_order("K-1")
    async with httpx.AsyncClient(transport=simulator_transport(sim), base_url="http://ecwid.test") as client:
        reply = await client.put("/api/v3/1003/orders/K-1", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 400
    assert reply.json()["errorCode"] == "WRONG_PARAMETER" and words in reply.json()["errorMessage"]
    assert sim.order_state("K-1") == {"status": "AWAITING_PROCESSING", "fulfillmentStatus": "AWAITING_PROCESSING",
                                      "paymentStatus": "AWAITING_PAYMENT", "trackingNumber": None,
                                      "privateAdminNotes": ""}


async def test_the_simulator_wants_json_and_answers_unknown_paths_and_methods_as_ecwid() -> None:
    sim = simulator()
    sim.add_order("K-1")
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=simulator_transport(sim), base_url="http://ecwid.test") as client:
        form = await client.put("/api/v3/1003/orders/K-1", data={"fulfillmentStatus": "SHIPPED"}, headers=auth)
        method = await client.post("/api/v3/1003/orders/K-1", json={}, headers=auth)
        nothing = await client.get("/api/v3/1003/nothing", headers=auth)
        missing = await client.get("/api/v3/1003/orders/K-1")
    assert form.status_code == 415 and "application/json" in form.json()["errorMessage"]
    assert method.status_code == 405 and method.json()["errorCode"] == "METHOD_NOT_ALLOWED"
    assert nothing.status_code == 404
    assert missing.status_code == 403 and missing.json()["errorCode"] == "INVALID_API_TOKEN"


async def test_a_connector_sending_a_stray_field_is_caught() -> None:
    class Stray(EcwidConnector):
        async def _deliver(self, update: StatusUpdate) -> Outcome:
            await self.call("PUT", self.order_url(update.cart_order_ref),
                            json={"fulfillmentStatus": update.cart_status, "orderComments": update.note})
            return Delivered("stray")

    sim = simulator()
    sim.add_order("K-1")
    cart = Stray(wrap_secrets(SETTINGS, EcwidConnector.settings_schema), transport=simulator_transport(sim))
    try:
        outcome = await cart.send(make_update("K-1", "SHIPPED", note="hi"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, Failed) and "WRONG_PARAMETER" in outcome.reason, outcome


# -- the connection test and the settings ---------------------------------------------------------


async def test_connection_reads_one_order_and_says_why_it_is_refused() -> None:
    sim = simulator()
    sim.add_order("K-1")
    transport = Recording(simulator_transport(sim))
    cart = connector(transport)
    try:
        ok = await cart.test_connection()
    finally:
        await cart.aclose()
    assert ok.ok and "1003" in ok.detail and "1 orders" in ok.detail, ok
    assert [(r.method, str(r.url)) for r in transport.sent] == [
        ("GET", "https://ecwid.test/api/v3/1003/orders?limit=1")]

    no_read = simulator(scopes=frozenset({"read_store_profile"}))
    cart = connector(simulator_transport(no_read))
    try:
        refused = await cart.test_connection()
    finally:
        await cart.aclose()
    assert not refused.ok and "INSUFFICIENT_APP_SCOPE" in refused.detail, refused


@pytest.mark.parametrize("settings", [
    {"store_id": 1003, "token": "public_B6mT2teCE55zT2jAeffLjzNJ4se3gfPj"},
    {"store_id": "1003", "token": TOKEN},
    {"store_id": 0, "token": TOKEN},
    {"store_id": 1003, "token": TOKEN, "api_base": "app.ecwid.com/api/v3"},
    {"store_id": 1003, "token": TOKEN, "timeout": 0},
    {"store_id": 1003, "token": TOKEN, "storeId": 1003},
    {"token": TOKEN},
])
def test_settings_the_schema_refuses(settings: dict[str, Any]) -> None:
    assert not jsonschema.Draft202012Validator(EcwidConnector.settings_schema).is_valid(settings)


def test_every_setting_is_described_and_the_token_is_secret() -> None:
    props = EcwidConnector.settings_schema["properties"]
    assert set(props) == {"store_id", "token", "api_base", "timeout"}
    assert all(p.get("description") for p in props.values())
    assert props["token"]["secret"] is True
    assert TOKEN not in repr(connector(httpx.MockTransport(lambda r: httpx.Response(200))))
