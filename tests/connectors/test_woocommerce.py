"""The WooCommerce connector's own behaviours: the requests it sends, tracking as customer notes read
before they are written, the batch call and its limits, WooCommerce's refusals, and a simulator that
refuses what WooCommerce refuses."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import jsonschema
import pytest
from cartstatus.connector import StatusUpdate, Tracking
from cartstatus.connectors.woocommerce import WooCommerceConnector
from cartstatus.connectors.woocommerce.connector import VOCABULARY, names_number, tracking_note
from cartstatus.connectors.woocommerce.simulator import WooCommerceSimulator
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

KEY, SECRET = WooCommerceSimulator.consumer_key, WooCommerceSimulator.consumer_secret
SETTINGS: dict[str, Any] = {"url": "https://shop.test", "consumer_key": KEY, "consumer_secret": SECRET}
TRACKING = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))
API = "/wp-json/wc/v3"


def connector(sim: WooCommerceSimulator, **settings: Any) -> WooCommerceConnector:
    merged = {**SETTINGS, **settings}
    return WooCommerceConnector(wrap_secrets(merged, WooCommerceConnector.settings_schema),
                                transport=simulator_transport(sim))


@pytest.fixture
def sim() -> WooCommerceSimulator:
    store = WooCommerceSimulator()
    for ref in ("1001", "1002", "1003"):
        store.add_order(ref, "processing")
    return store


@pytest.fixture
async def woo(sim: WooCommerceSimulator) -> AsyncIterator[WooCommerceConnector]:
    conn = connector(sim)
    yield conn
    await conn.aclose()


def calls(sim: WooCommerceSimulator) -> list[tuple[str, str, Any]]:
    return list(sim.calls)


# -- the requests -------------------------------------------------------------------------------


async def test_a_label_with_tracking_reads_the_notes_then_adds_one_per_number_then_sets_the_status(
        sim: WooCommerceSimulator, woo: WooCommerceConnector) -> None:
    outcome = await woo.send(make_update("1001", "completed", tracking=TRACKING, note="kit"))
    assert isinstance(outcome, Delivered) and "2 tracking note(s)" in outcome.detail, outcome
    assert calls(sim) == [
        ("GET", f"{API}/orders/1001/notes", None),
        ("POST", f"{API}/orders/1001/notes",
         {"note": "Shipped with UPS on 2024-05-01, tracking number 1Z999AA10123456784", "customer_note": True}),
        ("POST", f"{API}/orders/1001/notes",
         {"note": "Shipped with FedEx, tracking number 794644790132", "customer_note": True}),
        ("PUT", f"{API}/orders/1001", {"status": "completed"}),
    ]
    assert sim.orders["1001"]["status"] == "completed"
    assert sim.tracking_numbers("1001") == [("UPS", "1Z999AA10123456784"), ("FedEx", "794644790132")]


async def test_the_notes_are_read_as_customer_notes_only(sim: WooCommerceSimulator) -> None:
    requests: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        requests.append(request)

    conn = connector(sim)
    conn.client.event_hooks["request"].append(record)
    try:
        await conn.send(make_update("1001", "completed", tracking=TRACKING[:1]))
    finally:
        await conn.aclose()
    assert requests[0].url.params["type"] == "customer"
    assert requests[0].url.path == f"{API}/orders/1001/notes"


@pytest.mark.parametrize("status", VOCABULARY)
async def test_a_label_without_tracking_is_one_put(status: str, sim: WooCommerceSimulator,
                                                   woo: WooCommerceConnector) -> None:
    outcome = await woo.send(make_update("1002", status))
    assert isinstance(outcome, Delivered), outcome
    assert calls(sim) == [("PUT", f"{API}/orders/1002", {"status": status})]
    assert sim.orders["1002"]["status"] == status


async def test_every_request_is_authenticated_with_basic_key_and_secret(sim: WooCommerceSimulator) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers["authorization"])

    conn = connector(sim)
    conn.client.event_hooks["request"].append(record)
    try:
        await conn.send(make_update("1001", "completed", tracking=TRACKING))
        assert (await conn.test_connection()).ok
    finally:
        await conn.aclose()
    expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert seen and set(seen) == {expected}


async def test_the_connection_test_reads_one_order(sim: WooCommerceSimulator, woo: WooCommerceConnector) -> None:
    result = await woo.test_connection()
    assert result.ok, result.detail
    assert calls(sim) == [("GET", f"{API}/orders", None)]


# -- the default map and the vocabulary -----------------------------------------------------------


def test_the_default_map_gives_woocommerces_own_statuses() -> None:
    mapping = WooCommerceConnector.default_status_map
    assert mapping == {
        "Payment Received": "processing", "Processing": "processing", "Drop Shipped": "processing",
        "Partially Shipped": "processing", "Backordered": "processing", "Shipped": "completed",
        "Delivered": "completed", "Completed": "completed", "Cancelled": "cancelled", "On Hold": "on-hold",
        "Refunded": "refunded"}
    # "Received" would be pending payment: an order already paid must never be sent back to it.
    assert "Received" not in mapping and "Ship Date Set" not in mapping
    assert "trash" not in VOCABULARY and "trash" not in mapping.values()
    # Every label a default setup notifies the cart with has a value: `cartstatus check` passes as it is.
    assert {label for _, label, notify in DEFAULT_STATUS_EVENTS if notify} <= set(mapping)


async def test_a_status_a_plugin_adds_is_taken_only_when_the_store_names_it(sim: WooCommerceSimulator) -> None:
    sim.extra_statuses = ("shipped",)
    plain, plugin = connector(sim), connector(sim, statuses=["shipped"])
    try:
        refused = await plain.send(make_update("1001", "shipped"))
        assert isinstance(refused, Failed) and "shipped" in refused.reason and sim.requests == 0
        taken = await plugin.send(make_update("1001", "shipped"))
        assert isinstance(taken, Delivered), taken
        assert sim.orders["1001"]["status"] == "shipped"
        assert plugin.status_vocabulary == (*VOCABULARY, "shipped")
        assert WooCommerceConnector.status_vocabulary == VOCABULARY  # one store's statuses are not another's
        assert WooCommerceConnector.vocabulary_for({"statuses": ["shipped"]}) == (*VOCABULARY, "shipped")
    finally:
        await plain.aclose()
        await plugin.aclose()


async def test_a_plugin_status_the_store_lacks_is_refused_by_woocommerce(sim: WooCommerceSimulator) -> None:
    conn = connector(sim, statuses=["shipped"])  # named in the settings, but the store has no such plugin
    try:
        outcome = await conn.send(make_update("1001", "shipped"))
    finally:
        await conn.aclose()
    assert isinstance(outcome, Failed) and "rest_invalid_param" in outcome.reason, outcome
    assert sim.orders["1001"]["status"] == "processing"


def test_the_settings_schema() -> None:
    schema = WooCommerceConnector.settings_schema
    valid = jsonschema.Draft202012Validator(schema)
    assert valid.is_valid(SETTINGS)
    assert valid.is_valid({**SETTINGS, "timeout": 20, "statuses": ["shipped", "awaiting-pickup"]})
    for bad in ({**SETTINGS, "url": "http://shop.test"},  # the key would cross in clear, and WooCommerce refuses
                {**SETTINGS, "statuses": ["trash"]}, {**SETTINGS, "statuses": ["completed"]},
                {**SETTINGS, "statuses": ["Shipped Out"]}, {**SETTINGS, "extra": 1}):
        assert not valid.is_valid(bad), bad
    assert all(p.get("description") for p in schema["properties"].values())
    assert schema["properties"]["consumer_key"]["secret"] and schema["properties"]["consumer_secret"]["secret"]


# -- read before write -------------------------------------------------------------------------------


async def test_a_number_a_note_already_names_is_not_written_again(sim: WooCommerceSimulator,
                                                                 woo: WooCommerceConnector) -> None:
    sim._add_note(sim.orders["1001"], "Your parcel: UPS 1Z999AA10123456784", True)
    sim._add_note(sim.orders["1001"], "internal: FedEx 794644790132", False)  # the customer never saw it
    sim.calls.clear()
    outcome = await woo.send(make_update("1001", "completed", tracking=TRACKING))
    assert isinstance(outcome, Delivered), outcome
    posted = [body["note"] for method, _, body in sim.calls if method == "POST"]
    assert posted == ["Shipped with FedEx, tracking number 794644790132"]


async def test_a_repeat_writes_no_note_twice(sim: WooCommerceSimulator, woo: WooCommerceConnector) -> None:
    update = make_update("1001", "completed", tracking=TRACKING)
    assert isinstance(await woo.send(update), Delivered)
    before = sim.order_state("1001")
    sim.calls.clear()
    again = await woo.send(update)
    assert isinstance(again, Delivered | AlreadyDone), again
    assert [c[0] for c in sim.calls] == ["GET", "PUT"]
    assert sim.order_state("1001") == before
    # One status-change note from WooCommerce itself, and one customer note per number.
    assert [n for n, customer in before["notes"] if not customer] == [  # type: ignore[index]
        "Order status changed from Processing to Completed."]


def test_a_number_is_matched_whole() -> None:
    assert names_number("Shipped with UPS, tracking number 1Z999", "1Z999")
    assert not names_number("Shipped with UPS, tracking number 91Z9990", "1Z999")
    assert not names_number("tracking 1Z999-2", "1Z999")
    assert tracking_note(Tracking("USPS", "9400", None)) == "Shipped with USPS, tracking number 9400"


class SkipsTheRead(WooCommerceConnector):
    """Broken on purpose: writes every note without reading what the order has."""

    async def _add_tracking(self, update: StatusUpdate) -> int:
        for track in update.tracking:
            await self.call("POST", self.url(f"/orders/{update.cart_order_ref}/notes"),
                            json={"note": tracking_note(track), "customer_note": True})
        return len(update.tracking)


async def test_a_connector_that_does_not_read_first_is_caught(sim: WooCommerceSimulator) -> None:
    conn = SkipsTheRead(wrap_secrets(SETTINGS, WooCommerceConnector.settings_schema),
                        transport=simulator_transport(sim))
    try:
        update = make_update("1001", "completed", tracking=TRACKING)
        await conn.send(update)
        await conn.send(update)
    finally:
        await conn.aclose()
    assert sorted(sim.tracking_numbers("1001")).count(("UPS", "1Z999AA10123456784")) == 2


# -- WooCommerce's refusals ----------------------------------------------------------------------------


async def test_an_unknown_order_is_failed_in_woocommerces_words(sim: WooCommerceSimulator,
                                                                 woo: WooCommerceConnector) -> None:
    plain = await woo.send(make_update("4040", "completed"))
    assert isinstance(plain, Failed), plain
    assert "HTTP 400 woocommerce_rest_shop_order_invalid_id" in plain.reason and "no such order" in plain.reason
    tracked = await woo.send(make_update("4040", "completed", tracking=TRACKING))
    assert isinstance(tracked, Failed) and "HTTP 404 woocommerce_rest_shop_order_invalid_id" in tracked.reason
    assert [c[0] for c in sim.calls] == ["PUT", "GET"]  # nothing written for the unknown order


async def test_a_reference_that_is_not_an_id_meets_no_route() -> None:
    sim = WooCommerceSimulator(numeric_ids=True)
    sim.add_order("K-100")
    conn = connector(sim)
    try:
        outcome = await conn.send(make_update("K-100", "completed"))
    finally:
        await conn.aclose()
    assert isinstance(outcome, Failed) and "rest_no_route" in outcome.reason and "/wp-json/wc/v3" in outcome.reason


@pytest.mark.parametrize(("settings", "sim_settings", "words"), [
    ({"consumer_secret": "cs_not-the-secret-0000"}, {}, "woocommerce_rest_authentication_error"),
    ({"consumer_key": "ck_unknown-key-0000000"}, {}, "woocommerce_rest_cannot_edit"),
    ({}, {"read_only": True}, "does not have write permissions"),
])
async def test_a_refused_key_is_failed_with_what_to_check(settings: dict[str, str], sim_settings: dict[str, Any],
                                                          words: str) -> None:
    sim = WooCommerceSimulator(**sim_settings)
    sim.add_order("1001")
    conn = connector(sim, **settings)
    try:
        outcome = await conn.send(make_update("1001", "completed"))
    finally:
        await conn.aclose()
    assert isinstance(outcome, Failed) and words in outcome.reason, outcome
    assert "consumer_key and consumer_secret" in outcome.reason and "HTTP 401" in outcome.reason
    assert SECRET not in outcome.reason and KEY not in outcome.reason


async def test_the_connection_test_says_why_the_key_is_refused() -> None:
    sim = WooCommerceSimulator()
    conn = connector(sim, consumer_secret="cs_not-the-secret-0000")
    try:
        result = await conn.test_connection()
    finally:
        await conn.aclose()
    assert not result.ok and "Consumer secret is invalid." in result.detail


async def test_a_hosts_429_holds_the_store_for_its_retry_after() -> None:
    sim = WooCommerceSimulator(quota=1, window_seconds=30.0)
    sim.add_order("1001")
    sim.add_order("1002")
    conn = connector(sim)
    try:
        assert isinstance(await conn.send(make_update("1001", "completed")), Delivered)
        assert conn.latest_limit_hint is None
        throttled = await conn.send(make_update("1002", "completed"))
        hint = conn.latest_limit_hint
    finally:
        await conn.aclose()
    assert isinstance(throttled, RetryLater) and throttled.delay is not None and 29 <= throttled.delay <= 30
    assert hint is not None and hint.remaining == 0 and hint.reset_in == throttled.delay
    assert sim.throttled == 1 and sim.orders["1002"]["status"] == "pending"


async def test_a_5xx_and_a_timeout_are_retried(sim: WooCommerceSimulator, woo: WooCommerceConnector) -> None:
    sim.fail_next("http_500")
    assert isinstance(await woo.send(make_update("1001", "completed")), RetryLater)
    sim.fail_next("timeout")
    assert isinstance(await woo.send(make_update("1001", "completed")), RetryLater)


# -- the batch call -----------------------------------------------------------------------------------


def batches(sim: WooCommerceSimulator) -> list[list[dict[str, Any]]]:
    return [body["update"] for method, path, body in sim.calls if path == f"{API}/orders/batch"]


async def send_batch(sim: WooCommerceSimulator, updates: Sequence[StatusUpdate], **settings: Any) -> list[Outcome]:
    conn = connector(sim, **settings)
    try:
        return await conn.send_batch(updates)
    finally:
        await conn.aclose()


async def test_101_updates_take_two_batch_requests_of_100_and_1() -> None:
    sim = WooCommerceSimulator()
    refs = [str(2000 + i) for i in range(101)]
    for ref in refs:
        sim.add_order(ref, "processing")
    outcomes = await send_batch(sim, [make_update(ref, "completed") for ref in refs])
    assert all(isinstance(o, Delivered) for o in outcomes) and len(outcomes) == 101
    sent = batches(sim)
    assert [len(b) for b in sent] == [100, 1] and sim.requests == 2
    assert sent[0][0] == {"id": 2000, "status": "completed"}  # WooCommerce's ids are integers
    assert all(sim.orders[ref]["status"] == "completed" for ref in refs)


async def test_an_item_error_fails_only_that_update(sim: WooCommerceSimulator) -> None:
    updates = [make_update("1001", "completed"), make_update("4040", "completed"),
               make_update("1002", "cancelled"), make_update("1003", "No-Such-Status")]
    outcomes = await send_batch(sim, updates)
    assert [type(o) for o in outcomes] == [Delivered, Failed, Delivered, Failed]
    assert "woocommerce_rest_shop_order_invalid_id" in outcomes[1].reason  # type: ignore[union-attr]
    assert "No-Such-Status" in outcomes[3].reason  # type: ignore[union-attr]
    assert batches(sim) == [[{"id": 1001, "status": "completed"}, {"id": 4040, "status": "completed"},
                             {"id": 1002, "status": "cancelled"}]]  # the unknown label never left
    assert (sim.orders["1001"]["status"], sim.orders["1002"]["status"]) == ("completed", "cancelled")


async def test_a_batch_writes_each_orders_missing_notes_first(sim: WooCommerceSimulator) -> None:
    sim._add_note(sim.orders["1001"], tracking_note(TRACKING[0]), True)
    updates = [make_update("1001", "completed", tracking=TRACKING), make_update("1002", "completed")]
    outcomes = await send_batch(sim, updates)
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert [(m, p) for m, p, _ in sim.calls] == [
        ("GET", f"{API}/orders/1001/notes"), ("POST", f"{API}/orders/1001/notes"), ("POST", f"{API}/orders/batch")]
    assert sim.tracking_numbers("1001") == [("UPS", "1Z999AA10123456784"), ("FedEx", "794644790132")]


async def test_an_order_whose_notes_fail_is_left_out_of_the_batch(sim: WooCommerceSimulator) -> None:
    updates = [make_update("4040", "completed", tracking=TRACKING), make_update("1001", "completed")]
    outcomes = await send_batch(sim, updates)
    assert isinstance(outcomes[0], Failed) and isinstance(outcomes[1], Delivered)
    assert batches(sim) == [[{"id": 1001, "status": "completed"}]]


async def test_a_plugin_status_is_sent_alone_not_in_the_batch(sim: WooCommerceSimulator) -> None:
    sim.extra_statuses = ("shipped",)
    outcomes = await send_batch(sim, [make_update("1001", "shipped"), make_update("1002", "completed")],
                                statuses=["shipped"])
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert ("PUT", f"{API}/orders/1001", {"status": "shipped"}) in sim.calls
    assert batches(sim) == [[{"id": 1002, "status": "completed"}]]


async def test_a_batch_the_store_refuses_whole_gives_every_update_its_outcome(sim: WooCommerceSimulator) -> None:
    sim.fail_next("http_503")
    retried = await send_batch(sim, [make_update("1001", "completed"), make_update("1002", "completed")])
    assert all(isinstance(o, RetryLater) and o.delay == sim.retry_after for o in retried)
    refused = WooCommerceSimulator(read_only=True)
    refused.add_order("1001")
    failed = await send_batch(refused, [make_update("1001", "completed")])
    assert isinstance(failed[0], Failed) and "write permissions" in failed[0].reason


async def test_a_store_with_a_lower_batch_limit_is_sent_smaller_batches() -> None:
    sim = WooCommerceSimulator(batch_limit=10)
    refs = [str(3000 + i) for i in range(25)]
    for ref in refs:
        sim.add_order(ref)
    conn = connector(sim)
    try:
        outcomes = await conn.send_batch([make_update(ref, "processing") for ref in refs])
        assert conn.batch_limit == 10  # learnt from the 413, kept for the store
    finally:
        await conn.aclose()
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert [len(b) for b in batches(sim)] == [25, 10, 10, 5]


def test_a_batch_items_error_is_read_on_its_own() -> None:
    woo = WooCommerceConnector(wrap_secrets(SETTINGS, WooCommerceConnector.settings_schema))
    update = make_update("1001", "completed")
    busy = {"id": 1001, "error": {"code": "woocommerce_rest_cannot_update", "message": "Locked.",
                                  "data": {"status": 503}}}
    assert isinstance(woo.item_outcome(busy, update), RetryLater)
    refused = {"id": 1001, "error": {"code": "x", "message": "No.", "data": {"status": 400}}}
    assert woo.item_outcome(refused, update) == Failed("WooCommerce refused (HTTP 400 x): No.")
    # A batch item with a status the store lacks is saved as pending without an error: caught, not Delivered.
    assert isinstance(woo.item_outcome({"id": 1001, "status": "pending"}, update), Failed)
    assert isinstance(woo.item_outcome({"id": 1001, "status": "completed"}, update), Delivered)


# -- the simulator refuses what WooCommerce refuses --------------------------------------------------------


async def raw(sim: WooCommerceSimulator, method: str, path: str, body: Any = None,
              auth: tuple[str, str] = (KEY, SECRET)) -> httpx.Response:
    async with httpx.AsyncClient(transport=simulator_transport(sim), base_url="https://shop.test",
                                 auth=auth) as client:
        return await client.request(method, API + path, json=body)


async def test_the_simulator_checks_bodies_as_woocommerce_does(sim: WooCommerceSimulator) -> None:
    trash = await raw(sim, "PUT", "/orders/1001", {"status": "trash"})
    assert trash.status_code == 400 and trash.json()["code"] == "rest_invalid_param"
    number = await raw(sim, "PUT", "/orders/1001", {"status": 5})
    assert number.status_code == 400 and number.json()["data"]["params"]["status"].endswith("type string.")
    no_note = await raw(sim, "POST", "/orders/1001/notes", {"customer_note": True})
    assert (no_note.status_code, no_note.json()["code"]) == (400, "rest_missing_callback_param")
    yes = await raw(sim, "POST", "/orders/1001/notes", {"note": "hi", "customer_note": "yes"})
    assert (yes.status_code, yes.json()["code"]) == (400, "rest_invalid_param")
    made = await raw(sim, "POST", "/orders/1001/notes", {"note": "hi", "customer_note": "true"})
    assert made.status_code == 201 and made.json()["customer_note"] is True
    too_many = await raw(sim, "POST", "/orders/batch", {"update": [{"id": 1001, "status": "completed"}] * 101})
    assert too_many.status_code == 413 and too_many.json() == {
        "code": "woocommerce_rest_request_entity_too_large",
        "message": "Unable to accept more than 100 items for this request.", "data": {"status": 413}}
    assert sim.orders["1001"]["status"] == "processing"


async def test_the_simulators_batch_saves_an_unknown_status_as_pending_as_woocommerce_does(
        sim: WooCommerceSimulator) -> None:
    reply = await raw(sim, "POST", "/orders/batch", {"update": [{"id": 1001, "status": "shipped"},
                                                                {"id": 9, "status": "completed"}]})
    items = reply.json()["update"]
    assert items[0]["status"] == "pending" and sim.orders["1001"]["status"] == "pending"
    assert items[1] == {"id": 9, "error": {"code": "woocommerce_rest_shop_order_invalid_id",
                                           "message": "Invalid ID.", "data": {"status": 400}}}


async def test_the_simulator_refuses_keys_as_woocommerce_does(sim: WooCommerceSimulator) -> None:
    wrong = await raw(sim, "GET", "/orders", auth=(KEY, "cs_wrong-secret"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "woocommerce_rest_authentication_error")
    unknown = await raw(sim, "GET", "/orders", auth=("ck_nobody", "cs_wrong-secret"))
    assert unknown.json() == {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                              "data": {"status": 401}}
    batch = await raw(sim, "POST", "/orders/batch", {"update": []}, auth=("ck_nobody", "x"))
    assert (batch.status_code, batch.json()["code"]) == (401, "woocommerce_rest_cannot_batch")


async def test_a_reference_reaches_no_other_route_and_adds_no_parameter(sim: WooCommerceSimulator,
                                                                         woo: WooCommerceConnector) -> None:
    outcome = await woo.send(make_update("1001/notes?force=true", "completed", tracking=TRACKING[:1]))
    assert isinstance(outcome, Failed) and "rest_no_route" in outcome.reason, outcome
    assert len(sim.calls) == 1 and sim.calls[0][1].endswith("force=true/notes")  # one path, quoted whole
    assert sim.order_state("1001") == {"status": "processing", "notes": []}
