"""The medusa connector's own behaviours: the exact requests of each label, the default map, reading before
writing, Medusa's refusals and faults, and a simulator that refuses what Medusa refuses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cartstatus.connector import Tracking
from cartstatus.connectors.medusa import MedusaConnector
from cartstatus.connectors.medusa import connector as connector_module
from cartstatus.connectors.medusa.connector import ORDER_FIELDS, VOCABULARY
from cartstatus.connectors.medusa.simulator import MedusaSimulator, select_fields
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import CutTransport, make_update, simulator_transport

SETTINGS = {"url": "https://shop.test/", "email": "admin@medusa.test", "password": "medusa-test-pass-1"}
UPS = Tracking("UPS", "1Z999AA10123456784")
FEDEX = Tracking("FedEx", "794644790132")
ORDER = "order_01TEST"


def connector(sim: MedusaSimulator, **settings: Any) -> MedusaConnector:
    return MedusaConnector(wrap_secrets({**SETTINGS, **settings}, MedusaConnector.settings_schema),
                           transport=simulator_transport(sim))


async def send(sim: MedusaSimulator, label: str, *tracking: Tracking, ref: str = ORDER) -> Outcome:
    cart = connector(sim)
    try:
        return await cart.send(make_update(ref, label, tracking=tracking))
    finally:
        await cart.aclose()


def writes(sim: MedusaSimulator) -> list[tuple[str, Any]]:
    """The requests that change something (the login aside): path and body."""
    return [(path, body) for method, path, body in sim.calls if method == "POST" and not path.startswith("/auth")]


@pytest.fixture
def sim() -> MedusaSimulator:
    cart = MedusaSimulator()
    cart.add_order(ORDER)
    return cart


# -- settings and the map ------------------------------------------------------------------------

def test_default_map_names_only_what_medusa_has() -> None:
    assert MedusaConnector.default_status_map == {"Payment Received": "captured", "Shipped": "shipped",
                                                  "Delivered": "delivered", "Completed": "completed",
                                                  "Cancelled": "canceled"}
    standard = {label for _, label, _ in DEFAULT_STATUS_EVENTS}
    assert set(MedusaConnector.default_status_map) <= standard
    assert set(MedusaConnector.default_status_map.values()) <= set(VOCABULARY)
    # No Medusa action for these: a store must map them itself, or they are refused before any request.
    assert not {"Processing", "On Hold", "Backordered", "Refunded"} & set(MedusaConnector.default_status_map)


def test_settings_schema_marks_the_password_secret_and_wants_a_url() -> None:
    props = MedusaConnector.settings_schema["properties"]
    assert props["password"]["secret"] is True
    assert set(props) == {"url", "email", "password", "timeout"}
    assert all(p.get("description") for p in props.values())
    assert props["url"]["pattern"] == "^https?://"


async def test_a_label_outside_the_vocabulary_sends_nothing(sim: MedusaSimulator) -> None:
    outcome = await send(sim, "Processing")
    assert isinstance(outcome, Failed) and "status_map" in outcome.reason
    assert sim.requests == 0


# -- the exact requests of each label ------------------------------------------------------------

async def test_shipped_fulfils_everything_then_ships_it_with_every_number_as_a_label(sim: MedusaSimulator) -> None:
    outcome = await send(sim, "shipped", UPS, FEDEX)
    assert outcome == Delivered("items fulfilled; shipment created with 2 tracking numbers")
    items = [{"id": i["id"], "quantity": 1} for i in sim.orders[ORDER]["items"]]
    fulfillment = sim.orders[ORDER]["fulfillments"][0]["id"]
    assert writes(sim) == [
        (f"/admin/orders/{ORDER}/fulfillments",
         {"items": items, "metadata": {"cartstatus_carriers": {UPS.number: "UPS", FEDEX.number: "FedEx"}}}),
        (f"/admin/orders/{ORDER}/fulfillments/{fulfillment}/shipments",
         {"items": items, "labels": [
             {"tracking_number": UPS.number, "tracking_url": f"https://www.ups.com/track?tracknum={UPS.number}",
              "label_url": ""},
             {"tracking_number": FEDEX.number,
              "tracking_url": f"https://www.fedex.com/fedextrack/?trknbr={FEDEX.number}", "label_url": ""}]}),
    ]
    reads = [(path, params) for method, path, params in sim.calls if method == "GET"]
    assert reads == [(f"/admin/orders/{ORDER}", None)] * 2  # before writing, and for the new fulfillment's id
    assert sim.order_state(ORDER)["medusa"] == {"status": "pending", "payment_status": "authorized",  # type: ignore[index]
                                                "fulfillment_status": "shipped"}


async def test_the_order_is_read_with_the_fields_the_connector_decides_from() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/user/emailpass":
            return httpx.Response(200, json={"token": "t.o.k"})
        return httpx.Response(200, json={"order": {"id": ORDER, "status": "completed", "items": [],
                                                   "fulfillments": [], "payment_collections": []}})

    cart = MedusaConnector(wrap_secrets(SETTINGS, MedusaConnector.settings_schema),
                           transport=httpx.MockTransport(answer))
    try:
        assert isinstance(await cart.send(make_update(ORDER, "completed")), AlreadyDone)
    finally:
        await cart.aclose()
    assert str(seen[1].url).startswith(f"https://shop.test/admin/orders/{ORDER}?fields=")  # no double slash
    assert seen[1].url.params["fields"] == ORDER_FIELDS
    assert seen[1].headers["authorization"] == "Bearer t.o.k"
    # items' quantities live on their detail: Medusa gives items.quantity only when detail.quantity is asked for
    assert "items.detail.quantity" in ORDER_FIELDS.split(",") and "items.quantity" not in ORDER_FIELDS.split(",")


def test_the_simulator_answers_fields_as_medusa_does(sim: MedusaSimulator) -> None:
    body = sim.order_body(sim.orders[ORDER])
    picked = select_fields(body, "id,status,items.id,items.quantity,fulfillments.id")
    assert picked["items"] == [{"id": i["id"]} for i in sim.orders[ORDER]["items"]]  # no quantity: Medusa's way
    assert "metadata" not in picked and picked["payment_status"] == "authorized"  # always added
    with_detail = select_fields(body, "items.id,items.detail.quantity")
    assert with_detail["items"][0] == {"id": sim.orders[ORDER]["items"][0]["id"], "quantity": 1,
                                       "detail": {"quantity": 1}}
    assert select_fields(body, "*items")["items"] == body["items"] == select_fields(body, "items.*")["items"]


async def test_a_connector_asking_for_items_quantity_would_ship_nothing(
        sim: MedusaSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the real Medusa taught: ``items.quantity`` is not a field; the simulator answers the same."""
    monkeypatch.setattr(connector_module, "ORDER_FIELDS", ORDER_FIELDS.replace("items.detail.quantity",
                                                                               "items.quantity"))
    await send(sim, "shipped", UPS)
    state = sim.order_state(ORDER)
    assert state is not None and state["status"] != "shipped" and state["fulfillments"] == []


async def test_delivered_ships_then_marks_each_fulfillment_delivered(sim: MedusaSimulator) -> None:
    assert isinstance(await send(sim, "delivered", UPS), Delivered)
    paths = [path for path, _ in writes(sim)]
    fulfillment = sim.orders[ORDER]["fulfillments"][0]["id"]
    assert paths == [f"/admin/orders/{ORDER}/fulfillments",
                     f"/admin/orders/{ORDER}/fulfillments/{fulfillment}/shipments",
                     f"/admin/orders/{ORDER}/fulfillments/{fulfillment}/mark-as-delivered"]
    assert writes(sim)[-1][1] == {}
    assert sim.order_state(ORDER)["status"] == "delivered"  # type: ignore[index]


@pytest.mark.parametrize(("label", "path", "medusa"), [
    ("captured", "/admin/payments/{payment}/capture", ("pending", "captured", "not_fulfilled")),
    ("completed", "/admin/orders/{order}/complete", ("completed", "authorized", "not_fulfilled")),
    ("canceled", "/admin/orders/{order}/cancel", ("canceled", "canceled", "not_fulfilled")),
])
async def test_one_action_each(sim: MedusaSimulator, label: str, path: str, medusa: tuple[str, ...]) -> None:
    payment = sim.orders[ORDER]["payments"][0]["id"]
    assert isinstance(await send(sim, label), Delivered)
    assert writes(sim) == [(path.format(payment=payment, order=ORDER), {})]
    state = sim.order_state(ORDER)
    assert state is not None and tuple(state["medusa"].values()) == medusa


async def test_tracking_with_a_label_that_ships_nothing_is_kept_in_the_orders_metadata(sim: MedusaSimulator) -> None:
    sim.orders[ORDER]["metadata"] = {"gift": "yes"}
    assert isinstance(await send(sim, "canceled", UPS), Delivered)
    assert writes(sim) == [
        # written before the cancel: Medusa takes nothing more on a canceled order
        (f"/admin/orders/{ORDER}", {"metadata": {"gift": "yes", "cartstatus_tracking": [
            {"carrier": "UPS", "number": UPS.number}]}}),
        (f"/admin/orders/{ORDER}/cancel", {}),
    ]
    assert sim.tracking_numbers(ORDER) == [("UPS", UPS.number)]


# -- reading before writing -----------------------------------------------------------------------

async def test_a_repeat_writes_nothing(sim: MedusaSimulator) -> None:
    assert isinstance(await send(sim, "delivered", UPS, FEDEX), Delivered)
    made = len(writes(sim))
    again = await send(sim, "delivered", UPS, FEDEX)
    assert again == AlreadyDone("Medusa's order already had delivered and every tracking number")
    assert len(writes(sim)) == made
    assert sorted(sim.tracking_numbers(ORDER)) == [("FedEx", FEDEX.number), ("UPS", UPS.number)]


async def test_a_fulfillment_the_merchant_made_is_shipped_not_made_again(sim: MedusaSimulator) -> None:
    order = sim.orders[ORDER]
    first = order["items"][0]
    sim._fulfil(order, [{"id": first["id"], "quantity": 1}], None)  # the merchant fulfilled one line in the admin
    assert isinstance(await send(sim, "shipped", UPS), Delivered)
    fulfilments = [body for path, body in writes(sim) if path.endswith("/fulfillments")]
    assert fulfilments == [{"items": [{"id": order["items"][1]["id"], "quantity": 1}],
                            "metadata": {"cartstatus_carriers": {UPS.number: "UPS"}}}]  # only what was left
    shipments = [body for path, body in writes(sim) if path.endswith("/shipments")]
    assert [len(body["labels"]) for body in shipments] == [1, 0]  # the numbers once, on the first shipment
    assert sim.order_state(ORDER)["medusa"]["fulfillment_status"] == "shipped"  # type: ignore[index]
    # The merchant's fulfillment names no carrier: the label's tracking page still does.
    assert sim.tracking_numbers(ORDER) == [("ups", UPS.number)]


async def test_a_new_number_for_a_shipped_order_goes_to_the_metadata_not_a_second_shipment() -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER, "shipped")
    outcome = await send(sim, "shipped", FEDEX)
    assert outcome == Delivered("1 tracking numbers kept in the order's metadata")
    assert [path for path, _ in writes(sim)] == [f"/admin/orders/{ORDER}"]
    assert await send(sim, "shipped", FEDEX) == AlreadyDone(
        "Medusa's order already had shipped and every tracking number")


async def test_a_capture_is_not_repeated(sim: MedusaSimulator) -> None:
    assert isinstance(await send(sim, "captured"), Delivered)
    assert isinstance(await send(sim, "captured"), AlreadyDone)
    assert len([path for path, _ in writes(sim) if path.endswith("/capture")]) == 1


async def test_items_that_need_no_shipping_get_their_own_fulfillment() -> None:
    """Medusa refuses one fulfillment of a book and an e-book: one each, the numbers with the book."""
    sim = MedusaSimulator()
    sim.add_order(ORDER, items=2, digital=1)
    book, ebook = sim.orders[ORDER]["items"]
    assert isinstance(await send(sim, "shipped", UPS), Delivered)
    fulfilments = [body for path, body in writes(sim) if path.endswith("/fulfillments")]
    assert fulfilments == [{"items": [{"id": book["id"], "quantity": 1}],
                            "metadata": {"cartstatus_carriers": {UPS.number: "UPS"}}},
                           {"items": [{"id": ebook["id"], "quantity": 1}]}]
    shipments = [body["labels"] for path, body in writes(sim) if path.endswith("/shipments")]
    assert [len(labels) for labels in shipments] == [1, 0]
    state = sim.order_state(ORDER)
    assert state is not None and state["medusa"]["fulfillment_status"] == "shipped"
    assert [(f["requires_shipping"], len(f["labels"])) for f in state["fulfillments"]] == [(True, 1), (False, 0)]


@pytest.mark.parametrize("label", ["shipped", "delivered"])
async def test_a_mixed_order_cut_after_each_request_ends_as_one_delivery(label: str) -> None:
    async def deliver(after: int | None) -> tuple[int, dict[str, Any] | None]:
        sim = MedusaSimulator()
        sim.add_order(ORDER, items=3, digital=1)
        update = make_update(ORDER, label, tracking=(UPS, FEDEX))
        cut = CutTransport(simulator_transport(sim), after=after)
        cart = MedusaConnector(wrap_secrets(SETTINGS, MedusaConnector.settings_schema), transport=cut)
        try:
            first = await cart.send(update)
        finally:
            await cart.aclose()
        if after is not None:
            assert isinstance(first, RetryLater), (after, first)
            assert isinstance(await send(sim, label, UPS, FEDEX), Delivered | AlreadyDone)
        return cut.requests, sim.order_state(ORDER)

    calls, whole = await deliver(None)
    assert calls == (7 if label == "shipped" else 10)  # login, read, 2 fulfil, read, 2 ship (, read, 2 deliver)
    for after in range(1, calls):
        assert (await deliver(after))[1] == whole, after


# -- Medusa's refusals and faults -----------------------------------------------------------------

async def test_cancelling_a_completed_order_is_failed_in_medusas_words() -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER, "completed")
    outcome = await send(sim, "canceled")
    assert outcome == Failed("Medusa refused: Cannot cancel a completed order. Please use the return process to "
                             "handle refunds or exchanges. (not_allowed, HTTP 400)")


async def test_cancelling_a_shipped_order_is_failed() -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER, "shipped")
    outcome = await send(sim, "canceled")
    assert isinstance(outcome, Failed) and "All fulfillments must be canceled" in outcome.reason


async def test_shipping_a_canceled_order_is_failed_in_medusas_words() -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER, "canceled")
    outcome = await send(sim, "shipped", UPS)
    assert outcome == Failed(f"Medusa refused: Order with id {ORDER} has been canceled. (invalid_data, HTTP 400)")
    assert sim.orders[ORDER]["fulfillments"] == []


async def test_capturing_a_canceled_payment_is_never_already_done() -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER, "canceled")
    outcome = await send(sim, "captured")
    assert isinstance(outcome, Failed) and "no payment to capture" in outcome.reason and "canceled" in outcome.reason


async def test_an_unknown_order_is_failed_with_medusas_words(sim: MedusaSimulator) -> None:
    outcome = await send(sim, "shipped", ref="order_01NOSUCH")
    assert outcome == Failed("Medusa refused: Order id not found: order_01NOSUCH (not_found, HTTP 404)")


async def test_a_conflict_is_retried(sim: MedusaSimulator) -> None:
    cart = connector(sim)
    try:
        assert (await cart.test_connection()).ok
        sim.fail_next("http_409")
        outcome = await cart.send(make_update(ORDER, "completed"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, RetryLater) and "conflicted with another request" in outcome.reason


async def test_medusas_bare_500_for_an_unknown_fulfillment_is_retried() -> None:
    """Medusa 2.21 answers a shipment for a fulfillment it does not have with a bare 500 ``unknown_error``."""
    sim = MedusaSimulator()
    sim.add_order(ORDER)
    app = sim.app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
        token = (await client.post("/auth/user/emailpass", json={"email": sim.email, "password": sim.password})
                 ).json()["token"]
        reply = await client.post(f"/admin/orders/{ORDER}/fulfillments/ful_nope/shipments",
                                  json={"items": []}, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 500 and reply.json()["type"] == "unknown_error"
    assert isinstance(MedusaConnector(SETTINGS).outcome_for_response(reply), RetryLater)


async def test_a_refused_password_never_shows_in_the_reason(sim: MedusaSimulator) -> None:
    cart = connector(sim, password="wrong-medusa-pass-1")
    try:
        outcome = await cart.send(make_update(ORDER, "shipped"))
        tested = await cart.test_connection()
    finally:
        await cart.aclose()
    assert outcome == Failed("login refused: Medusa refused the admin credential: Invalid email or password "
                             "(HTTP 401)")
    assert not tested.ok and "wrong-medusa-pass-1" not in tested.detail + repr(cart)


async def test_a_hosts_limit_is_a_429_with_retry_after_and_holds_the_store() -> None:
    sim = MedusaSimulator(quota=3, window_seconds=30.0)
    sim.add_order(ORDER)
    cart = connector(sim)
    try:
        first = await cart.send(make_update(ORDER, "completed"))  # login, read, complete
        throttled = await cart.send(make_update(ORDER, "completed"))
    finally:
        await cart.aclose()
    assert isinstance(first, Delivered)
    assert isinstance(throttled, RetryLater) and throttled.delay is not None and 25 <= throttled.delay <= 30
    assert sim.throttled == 1
    hint = cart.latest_limit_hint
    assert hint is not None and hint.remaining == 0 and hint.reset_in == throttled.delay


# -- the simulator refuses what Medusa refuses ----------------------------------------------------

class CarrierInTheLabel(MedusaConnector):
    """A connector that puts the carrier in the label, as Medusa's labels have no such field."""

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for label in (kwargs.get("json") or {}).get("labels") or []:
            label["carrier"] = "UPS"
        return await super().call(method, url, **kwargs)


async def test_a_field_medusa_does_not_know_is_refused_as_medusa_does(sim: MedusaSimulator) -> None:
    cart = CarrierInTheLabel(wrap_secrets(SETTINGS, MedusaConnector.settings_schema),
                             transport=simulator_transport(sim))
    try:
        outcome = await cart.send(make_update(ORDER, "shipped", tracking=(UPS,)))
    finally:
        await cart.aclose()
    assert outcome == Failed("Medusa refused: Invalid request: Unrecognized fields: 'carrier' "
                             "(invalid_data, HTTP 400)")


@pytest.mark.parametrize(("path", "body", "message"), [
    (f"/admin/orders/{ORDER}/fulfillments", {}, "Invalid request: Field 'items' is required"),
    (f"/admin/orders/{ORDER}/fulfillments", {"items": []},
     "Invalid request: Value for field 'items' too small, expected at least: '1'"),
    (f"/admin/orders/{ORDER}/fulfillments", {"items": [{"id": "x", "quantity": "1"}]},
     "Invalid request: Field 'items, 0, quantity' is required"),
    (f"/admin/orders/{ORDER}", {"bogus": 1}, "Invalid request: Unrecognized fields: 'bogus'"),
    (f"/admin/orders/{ORDER}", {"metadata": "x"},
     "Invalid request: Expected type: 'record' for field 'metadata', got: 'x'"),
])
async def test_the_simulator_checks_bodies_as_medusa_does(path: str, body: Any, message: str) -> None:
    sim = MedusaSimulator()
    sim.add_order(ORDER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app()), base_url="http://m") as client:
        token = (await client.post("/auth/user/emailpass", json={"email": sim.email, "password": sim.password})
                 ).json()["token"]
        reply = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert (reply.status_code, reply.json()) == (400, {"type": "invalid_data", "message": message})


async def test_the_simulator_ships_a_fulfillment_once_and_refuses_a_bad_tracking_url(sim: MedusaSimulator) -> None:
    order = sim.orders[ORDER]
    fulfillment = sim._fulfil(order, [{"id": i["id"], "quantity": 1} for i in order["items"]], None)
    items = [{"id": i["id"], "quantity": 1} for i in order["items"]]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app()), base_url="http://m") as client:
        token = (await client.post("/auth/user/emailpass", json={"email": sim.email, "password": sim.password})
                 ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        path = f"/admin/orders/{ORDER}/fulfillments/{fulfillment['id']}/shipments"
        ftp = await client.post(path, headers=auth, json={"items": items, "labels": [
            {"tracking_number": "A1", "tracking_url": "ftp://x", "label_url": ""}]})
        first = await client.post(path, headers=auth, json={"items": items})
        second = await client.post(path, headers=auth, json={"items": items})
        unauthorized = await client.get(f"/admin/orders/{ORDER}", headers={"Authorization": "Bearer nope"})
    assert ftp.json() == {"type": "invalid_data", "message": "Invalid request: URL must use http: or https: scheme"}
    assert first.status_code == 200
    assert (second.status_code, second.json()) == (400, {"type": "not_allowed",
                                                         "message": "Shipment has already been created"})
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"message": "Unauthorized"})
