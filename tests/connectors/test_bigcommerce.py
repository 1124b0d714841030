"""What the bigcommerce connector sends for each kind of update, read against BigCommerce's own description.

Every request these tests make goes through :class:`Recorded`, which keeps it and checks it with the Orders V2
OpenAPI description (``spec_openapi.OpenApiCheck``); each test ends asserting no request broke it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cartstatus.connector import Tracking
from cartstatus.connectors.bigcommerce import BigCommerceConnector
from cartstatus.connectors.bigcommerce.connector import (
    DEFAULT_STATUS_MAP,
    STATUS_IDS,
    VOCABULARY,
    allocate,
    carrier_fields,
    order_id,
)
from cartstatus.connectors.bigcommerce.simulator import BigCommerceSimulator
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import SimulatorTransport, make_update

from .spec_openapi import OpenApiCheck, load_openapi
from .specs import spec_file

BASE = "https://shop.test"
SETTINGS = {"store_hash": "abc123", "access_token": "bc-test-token-42", "api_base": BASE}
SPEC = "bigcommerce-orders-v2.openapi.yml"
CHECK = OpenApiCheck(SPEC, server=BASE)
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))
PREFIX = f"/stores/{SETTINGS['store_hash']}/v2"


class Recorded(httpx.AsyncBaseTransport):
    """The simulator, with every request kept as ``(METHOD, path after /v2, JSON body)`` and checked."""

    def __init__(self, sim: BigCommerceSimulator) -> None:
        self.inner = SimulatorTransport(sim.app())
        self.sent: list[tuple[str, str, Any]] = []
        self.problems: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path.removeprefix(PREFIX), body))
        try:
            CHECK(request)
        except Exception as exc:
            self.problems.append(f"{request.method} {request.url.path}: {exc}")
        return await self.inner.handle_async_request(request)


def simulator(**kwargs: Any) -> BigCommerceSimulator:
    return BigCommerceSimulator(store_hash=SETTINGS["store_hash"], access_token=SETTINGS["access_token"], **kwargs)


@pytest.fixture
def sim() -> BigCommerceSimulator:
    return simulator()


@pytest.fixture
async def wire(sim: BigCommerceSimulator) -> AsyncIterator[Recorded]:
    transport = Recorded(sim)
    yield transport
    assert not transport.problems, "requests broke BigCommerce's description:\n" + "\n".join(transport.problems)


@pytest.fixture
async def cart(wire: Recorded) -> AsyncIterator[BigCommerceConnector]:
    connector = BigCommerceConnector(wrap_secrets(SETTINGS, BigCommerceConnector.settings_schema), transport=wire)
    yield connector
    await connector.aclose()


# -- the exact requests ----------------------------------------------------------------------------------------

async def test_a_label_with_tracking_reads_the_order_then_adds_one_shipment_per_number_then_sets_the_status(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("100", "Awaiting Fulfillment")
    address, big, small = sim.orders[100]["addresses"][0]["id"], *(p["id"] for p in sim.orders[100]["products"])
    outcome = await cart.send(make_update("100", "Completed", tracking=TRACKING))
    assert isinstance(outcome, Delivered), outcome
    assert wire.sent == [
        ("GET", "/orders/100", None),
        ("GET", "/orders/100/shipments", None),
        ("GET", "/orders/100/shipping_addresses", None),
        ("GET", "/orders/100/products", None),
        ("POST", "/orders/100/shipments", {"order_address_id": address, "items": [
            {"order_product_id": big, "quantity": 2}], "tracking_number": "1Z999AA10123456784",
            "shipping_provider": "ups"}),
        ("POST", "/orders/100/shipments", {"order_address_id": address, "items": [
            {"order_product_id": small, "quantity": 1}], "tracking_number": "794644790132",
            "shipping_provider": "fedex"}),
        ("PUT", "/orders/100", {"status_id": 10}),
    ]
    assert sim.order_state("100")["status"] == "Completed"  # type: ignore[index]
    assert sorted(sim.tracking_numbers("100")) == [("FedEx", "794644790132"), ("UPS", "1Z999AA10123456784")]


async def test_a_label_without_tracking_is_one_read_and_one_put(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("7", "Awaiting Payment")
    outcome = await cart.send(make_update("7", "Awaiting Fulfillment"))
    assert isinstance(outcome, Delivered), outcome
    assert wire.sent == [("GET", "/orders/7", None), ("PUT", "/orders/7", {"status_id": 11})]


async def test_the_status_the_order_already_has_is_already_done_with_no_write(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("7", "Cancelled")
    outcome = await cart.send(make_update("7", "Cancelled"))
    assert isinstance(outcome, AlreadyDone), outcome
    assert wire.sent == [("GET", "/orders/7", None)]


async def test_a_repeat_reads_the_shipments_and_creates_nothing(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("100")
    update = make_update("100", "Shipped", tracking=TRACKING)
    assert isinstance(await cart.send(update), Delivered)
    state, wire.sent[:] = sim.order_state("100"), []
    again = await cart.send(update)
    assert isinstance(again, AlreadyDone), again
    assert wire.sent == [("GET", "/orders/100", None), ("GET", "/orders/100/shipments", None)]
    assert sim.order_state("100") == state


async def test_a_repeat_after_one_shipment_adds_only_the_other(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("100")
    await cart.send(make_update("100", "Partially Shipped", tracking=TRACKING[:1]))
    wire.sent[:] = []
    outcome = await cart.send(make_update("100", "Shipped", tracking=TRACKING))
    assert isinstance(outcome, Delivered), outcome
    posts = [body for method, path, body in wire.sent if method == "POST"]
    big, small = (p["id"] for p in sim.orders[100]["products"])
    assert [(p["tracking_number"], p["items"]) for p in posts] == [  # the rest of the order
        ("794644790132", [{"order_product_id": big, "quantity": 1}, {"order_product_id": small, "quantity": 1}])]
    assert [n for _, n in sim.tracking_numbers("100")] == ["1Z999AA10123456784", "794644790132"]
    assert sim.order_state("100")["status"] == "Shipped"  # type: ignore[index]


async def test_a_carrier_bigcommerce_does_not_integrate_goes_as_an_aftership_courier(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("5")
    outcome = await cart.send(make_update("5", "Shipped", tracking=(Tracking("DHL", "JD014600003828"),)))
    assert isinstance(outcome, Delivered), outcome
    post = next(body for method, _, body in wire.sent if method == "POST")
    assert post["shipping_provider"] == "" and post["tracking_carrier"] == "dhl"
    assert sim.tracking_numbers("5") == [("DHL", "JD014600003828")]
    assert carrier_fields("Royal Mail") == {"shipping_provider": "royalmail"}
    assert carrier_fields("Canada  Post") == {"shipping_provider": "canadapost"}
    assert carrier_fields("DHL Global Mail") == {"shipping_provider": "", "tracking_carrier": "dhl-global-mail"}


async def test_more_tracking_numbers_than_items_left_are_named_not_forced(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    sim.add_order("9", quantities=(1,))
    outcome = await cart.send(make_update("9", "Shipped", tracking=TRACKING))
    assert isinstance(outcome, Delivered) and "794644790132" in outcome.detail, outcome
    assert sim.tracking_numbers("9") == [("UPS", "1Z999AA10123456784")]
    wire.sent[:] = []  # the number left out is not retried into a refusal on a repeat
    again = await cart.send(make_update("9", "Shipped", tracking=TRACKING))
    assert isinstance(again, Delivered) and "794644790132" in again.detail, again
    assert [m for m, _, _ in wire.sent].count("POST") == 0


def test_items_are_shared_out_one_unit_at_least_per_shipment_the_first_taking_the_rest() -> None:
    from cartstatus.connectors.bigcommerce.connector import Line
    lines = [Line(11, 5, 3), Line(12, 5, 1)]
    assert allocate(lines, 1) == [
        (5, [{"order_product_id": 11, "quantity": 3}, {"order_product_id": 12, "quantity": 1}])]
    assert allocate(lines, 3) == [(5, [{"order_product_id": 11, "quantity": 2}]),
                                  (5, [{"order_product_id": 11, "quantity": 1}]),
                                  (5, [{"order_product_id": 12, "quantity": 1}])]
    assert len(allocate(lines, 9)) == 4 and allocate([], 2) == []
    # Partially Shipped: one unit each, so a later update's numbers still have items to carry.
    assert allocate(lines, 2, partial=True) == [(5, [{"order_product_id": 11, "quantity": 1}]),
                                                (5, [{"order_product_id": 11, "quantity": 1}])]


# -- references, statuses and the default map -------------------------------------------------------------------

def test_an_order_reference_names_the_number_at_its_end() -> None:
    assert [order_id(r) for r in ("100", "#100", "BC-100", "K-099", " 42 ")] == [100, 100, 100, 99, 42]
    assert [order_id(r) for r in ("", "abc", "100-A", "1.5")] == [None, None, None, None]


async def test_a_reference_with_no_order_id_is_failed_before_any_request(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    outcome = await cart.send(make_update("ABC", "Shipped"))
    assert isinstance(outcome, Failed) and "not a BigCommerce order id" in outcome.reason
    assert sim.requests == 0


def test_the_vocabulary_is_bigcommerces_status_table_in_id_order() -> None:
    """The names and ids are those of the description's GET /order_statuses table."""
    text = spec_file(SPEC).read_text(encoding="utf-8")
    table = dict(re.findall(r"^\s*\| (\d+) \| ([A-Za-z ]+?)\s*\|", text, re.MULTILINE))
    assert {name: int(n) for n, name in table.items()} == dict(STATUS_IDS)
    assert list(STATUS_IDS.values()) == list(range(15)) and tuple(STATUS_IDS) == VOCABULARY


def test_the_default_map() -> None:
    assert dict(DEFAULT_STATUS_MAP) == {
        "Payment Received": "Awaiting Fulfillment", "Processing": "Awaiting Shipment", "Shipped": "Shipped",
        "Partially Shipped": "Partially Shipped", "Cancelled": "Cancelled", "Refunded": "Refunded",
        "Delivered": "Completed", "Completed": "Completed", "On Hold": "Manual Verification Required"}
    # No true equivalent: left to the store's status_map.
    assert not {"Received", "Ship Date Set", "Backordered", "Drop Shipped"} & set(DEFAULT_STATUS_MAP)


# -- errors ----------------------------------------------------------------------------------------------------

async def test_an_unknown_order_is_failed_in_bigcommerces_words(
        sim: BigCommerceSimulator, wire: Recorded, cart: BigCommerceConnector) -> None:
    outcome = await cart.send(make_update("404", "Shipped", tracking=TRACKING))
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == "BigCommerce refused (HTTP 404): The requested resource was not found."
    assert wire.sent == [("GET", "/orders/404", None)]


async def test_a_refused_token_fails_the_connection_test_with_the_401(sim: BigCommerceSimulator) -> None:
    settings = wrap_secrets({**SETTINGS, "access_token": "wrong-token-123"}, BigCommerceConnector.settings_schema)
    connector = BigCommerceConnector(settings, transport=Recorded(sim))
    try:
        result = await connector.test_connection()
        outcome = await connector.send(make_update("1", "Shipped"))
    finally:
        await connector.aclose()
    assert not result.ok and result.detail.startswith("BigCommerce refused the access token (HTTP 401)")
    assert isinstance(outcome, Failed) and "wrong-token-123" not in outcome.reason


async def test_a_good_token_passes_the_connection_test(cart: BigCommerceConnector, wire: Recorded) -> None:
    result = await cart.test_connection()
    assert result.ok and "15 order statuses" in result.detail, result
    assert wire.sent == [("GET", "/order_statuses", None)]


async def test_a_refusal_in_a_400_is_failed_with_its_message(
        sim: BigCommerceSimulator, cart: BigCommerceConnector) -> None:
    sim.add_order("3")
    sim.fail_next("http_4xx")
    outcome = await cart.send(make_update("3", "Shipped"))
    assert outcome == Failed("BigCommerce refused (HTTP 400): The field 'status_id' is invalid.")


# -- the rate limit ----------------------------------------------------------------------------------------------

async def test_every_reply_s_rate_limit_headers_become_a_limit_hint(cart: BigCommerceConnector) -> None:
    sim = simulator(quota=150)
    connector = BigCommerceConnector(cart.settings, transport=Recorded(sim))
    sim.add_order("100")
    try:
        await connector.send(make_update("100", "Shipped", tracking=TRACKING))
    finally:
        await connector.aclose()
    hint = connector.latest_limit_hint
    assert hint is not None and hint.remaining == 150 - 7, hint  # seven requests of the window spent
    assert hint.reset_in is not None and 29.0 < hint.reset_in <= 30.0


async def test_a_429_waits_for_the_window_s_reset(cart: BigCommerceConnector) -> None:
    sim = simulator(quota=2, window_seconds=30.0)
    connector = BigCommerceConnector(cart.settings, transport=Recorded(sim))
    sim.add_order("100")
    try:
        outcome = await connector.send(make_update("100", "Shipped", tracking=TRACKING))
        hint = connector.latest_limit_hint
    finally:
        await connector.aclose()
    assert isinstance(outcome, RetryLater) and "429" in outcome.reason, outcome
    assert outcome.delay is not None and 29.0 < outcome.delay <= 30.0  # X-Rate-Limit-Time-Reset-Ms, no Retry-After
    assert hint is not None and hint.remaining == 0 and hint.reset_in == outcome.delay
    assert sim.throttled == 1 and sim.requests == 3


async def test_the_simulator_s_window_resets(cart: BigCommerceConnector) -> None:
    sim = simulator(quota=1, window_seconds=30.0)
    connector = BigCommerceConnector(cart.settings, transport=Recorded(sim))
    try:
        assert (await connector.test_connection()).ok
        assert not (await connector.test_connection()).ok
        assert sim.window_start is not None
        sim.window_start -= 30.0  # the window has passed
        assert (await connector.test_connection()).ok
    finally:
        await connector.aclose()
    assert sim.throttled == 1


async def test_with_no_quota_the_simulator_never_throttles(cart: BigCommerceConnector) -> None:
    sim = simulator()
    connector = BigCommerceConnector(cart.settings, transport=Recorded(sim))
    try:
        results = [await connector.test_connection() for _ in range(200)]
    finally:
        await connector.aclose()
    assert all(r.ok for r in results) and sim.throttled == 0


# -- the simulator is as strict as BigCommerce ------------------------------------------------------------------------

async def raw(sim: BigCommerceSimulator, method: str, path: str, body: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=SimulatorTransport(sim.app()), base_url=BASE + PREFIX,
                                 headers={"X-Auth-Token": SETTINGS["access_token"]}) as client:
        return await client.request(method, path, json=body)


async def test_the_simulator_refuses_what_bigcommerce_refuses(sim: BigCommerceSimulator) -> None:
    sim.add_order("100")
    address, big, _ = sim.orders[100]["addresses"][0]["id"], *(p["id"] for p in sim.orders[100]["products"])
    assert (await raw(sim, "PUT", "/orders/100", {"status_id": "2"})).status_code == 400
    assert (await raw(sim, "PUT", "/orders/100", {"status_id": 15})).status_code == 400
    no_address = await raw(sim, "POST", "/orders/100/shipments", {"items": [{"order_product_id": big, "quantity": 1}]})
    assert no_address.status_code == 400
    assert no_address.json() == [{"status": 400, "message": "The required field 'order_address_id' was not supplied."}]
    too_many = await raw(sim, "POST", "/orders/100/shipments",
                         {"order_address_id": address, "items": [{"order_product_id": big, "quantity": 3}]})
    assert too_many.status_code == 400 and "remaining" in too_many.json()[0]["message"]
    empty = await raw(sim, "GET", "/orders/100/shipments")
    assert empty.status_code == 204 and empty.content == b""
    assert (await raw(sim, "GET", "/orders/abc")).json() == [
        {"status": 404, "message": "The requested resource was not found."}]
    for reply in (empty, too_many):  # every reply says how much of the window is left
        assert all(h in reply.headers for h in ("X-Rate-Limit-Requests-Quota", "X-Rate-Limit-Requests-Left",
                                                 "X-Rate-Limit-Time-Window-Ms", "X-Rate-Limit-Time-Reset-Ms"))


# -- the description check catches a bad request -------------------------------------------------------------------

def request(method: str, path: str, body: Any = None, **headers: str) -> httpx.Request:
    sent = {"Accept": "application/json", "Content-Type": "application/json",
            "X-Auth-Token": SETTINGS["access_token"], **headers}
    return httpx.Request(method, BASE + PREFIX + path, json=body, headers=sent)


SHIPMENT = {"order_address_id": 1, "items": [{"order_product_id": 2, "quantity": 1}], "tracking_number": "1Z",
            "shipping_provider": "ups"}


def test_the_check_passes_the_requests_the_connector_sends() -> None:
    for good in (request("PUT", "/orders/100", {"status_id": 2}), request("POST", "/orders/100/shipments", SHIPMENT),
                 request("GET", "/orders/100"), request("GET", "/order_statuses")):
        CHECK(good)


@pytest.mark.parametrize(("bad", "words"), [
    (request("PUT", "/orders/100", {"status_id": "2"}), "status_id"),
    (request("PUT", "/orders/100", {"status_id": 15}), "status_id"),
    (request("POST", "/orders/100/shipments", {k: v for k, v in SHIPMENT.items() if k != "order_address_id"}),
     "order_address_id"),
    (request("POST", "/orders/100/shipments", {**SHIPMENT, "items": []}), "items"),
    (request("POST", "/orders/100/shipments", {**SHIPMENT, "items": [{"quantity": 1}]}), "order_product_id"),
    (request("POST", "/orders/100/shipments", {**SHIPMENT, "tracking_number": "9" * 51}), "tracking_number"),
    (request("GET", "/orders/K-100"), "order_id"),
    (request("GET", "/orders/100/notes"), "not found"),
    (request("PATCH", "/orders/100"), "not found"),
    (httpx.Request("GET", BASE + PREFIX + "/orders/100", headers={"Accept": "application/json"}), "X-Auth-Token"),
    (httpx.Request("GET", "https://elsewhere.test" + PREFIX + "/orders/100"), "not under"),
], ids=["status-as-string", "status-out-of-range", "shipment-without-address", "shipment-without-items",
        "item-without-product", "tracking-too-long", "order-id-not-a-number", "unknown-path", "unknown-method",
        "no-credential", "another-host"])
def test_the_check_catches_a_bad_request(bad: httpx.Request, words: str) -> None:
    with pytest.raises(Exception) as caught:
        CHECK(bad)
    text = f"{caught.value} {caught.value.__cause__} {getattr(caught.value, 'schema_errors', '')}"
    assert words.casefold() in text.casefold() or words.casefold() in repr(caught.value).casefold(), text


def test_the_description_is_built_once() -> None:
    assert load_openapi(spec_file(SPEC)) is load_openapi(spec_file(SPEC))


# -- broken on purpose: what the checks catch ------------------------------------------------------------------------

class WritesBlind(BigCommerceConnector):
    """Adds every tracking number's shipment without reading the shipments first."""

    async def _missing_tracking(self, path: str, tracking: Any) -> list[Tracking]:
        return list(tracking)


class SendsTheLabel(BigCommerceConnector):
    """Sends the status name as status_id, which the description (and BigCommerce) refuse."""

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if method == "PUT":
            kwargs["json"] = {"status_id": "Shipped"}
        return await super().request(method, path, **kwargs)


async def test_a_connector_that_writes_without_reading_is_caught_by_the_store(sim: BigCommerceSimulator) -> None:
    sim.add_order("100")
    blind = WritesBlind(wrap_secrets(SETTINGS, BigCommerceConnector.settings_schema), transport=Recorded(sim))
    try:
        first = await blind.send(make_update("100", "Shipped", tracking=TRACKING))
        again = await blind.send(make_update("100", "Shipped", tracking=TRACKING))
    finally:
        await blind.aclose()
    assert isinstance(first, Delivered)
    # Everything is shipped: BigCommerce refuses a second shipment rather than hold the number twice.
    assert isinstance(again, Delivered) and "not added" in again.detail
    sim2 = simulator()
    sim2.add_order("100", quantities=(3, 3))
    blind = WritesBlind(wrap_secrets(SETTINGS, BigCommerceConnector.settings_schema), transport=Recorded(sim2))
    try:
        for _ in range(2):
            await blind.send(make_update("100", "Partially Shipped", tracking=TRACKING))
    finally:
        await blind.aclose()
    numbers = [n for _, n in sim2.tracking_numbers("100")]
    assert numbers.count("794644790132") == 2  # the kit's "exactly once" check fails on this


async def test_a_request_that_breaks_the_description_is_reported(sim: BigCommerceSimulator) -> None:
    sim.add_order("100")
    wire = Recorded(sim)
    broken = SendsTheLabel(wrap_secrets(SETTINGS, BigCommerceConnector.settings_schema), transport=wire)
    try:
        outcome = await broken.send(make_update("100", "Shipped"))
    finally:
        await broken.aclose()
    assert outcome == Failed("BigCommerce refused (HTTP 400): The field 'status_id' is invalid.")
    assert len(wire.problems) == 1 and wire.problems[0].startswith(f"PUT {PREFIX}/orders/100:"), wire.problems


async def test_an_unreadable_reply_is_retried_never_raised(sim: BigCommerceSimulator) -> None:
    class Page(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, html="<html>maintenance</html>")

    connector = BigCommerceConnector(wrap_secrets(SETTINGS, BigCommerceConnector.settings_schema), transport=Page())
    try:
        outcome = await connector.send(make_update("100", "Shipped", tracking=TRACKING))
    finally:
        await connector.aclose()
    assert isinstance(outcome, RetryLater) and "no readable JSON dict" in outcome.reason, outcome
