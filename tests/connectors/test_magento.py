"""The magento connector's own behaviour: the exact requests per label, read before write, Magento's errors, the
increment-id lookup, and the Swagger 2.0 check catching requests that break Magento's description."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cartstatus import AlreadyDone, Delivered, Failed, RetryLater, Tracking
from cartstatus.connectors.magento import MagentoConnector
from cartstatus.connectors.magento.connector import VOCABULARY, carrier_code, magento_message
from cartstatus.connectors.magento.simulator import MagentoSimulator
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import SimulatorTransport, make_update

from .spec_swagger import RequestProblem
from .test_magento_conformance import SETTINGS, magento_check

SEARCH = "searchCriteria[filterGroups][0][filters][0]"
TRACKS = (Tracking("UPS", "1Z999AA10123456784", "2024-05-01"), Tracking("FedEx", "794644790132"))


class Recorder(SimulatorTransport):
    """The simulator in memory, every request kept as (METHOD, path after /V1, query, JSON body) and checked
    against Magento's description."""

    def __init__(self, sim: MagentoSimulator, check: Callable[[httpx.Request], None] | None = None) -> None:
        super().__init__(sim.app())
        self.sent: list[tuple[str, str, dict[str, str], Any]] = []
        self.check = check

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if self.check:
            self.check(request)
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path.split("/V1", 1)[1], dict(request.url.params), body))
        return await super().handle_async_request(request)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.sent if m != "GET"]


def connector(sim: MagentoSimulator, **settings: Any) -> tuple[MagentoConnector, Recorder]:
    transport = Recorder(sim, magento_check())
    return MagentoConnector(wrap_secrets({**SETTINGS, **settings}, MagentoConnector.settings_schema),
                            transport=transport), transport


async def send(sim: MagentoSimulator, *updates: Any, **settings: Any) -> tuple[list[Any], Recorder]:
    cart, transport = connector(sim, **settings)
    try:
        return [await cart.send(u) for u in updates], transport
    finally:
        await cart.aclose()


def entity(sim: MagentoSimulator, ref: str) -> int:
    return int(sim.orders[ref]["entity_id"])


# -- declarations ------------------------------------------------------------------------------


def test_the_default_map_names_standard_labels_and_magento_statuses() -> None:
    standard = {label for _, label, _ in DEFAULT_STATUS_EVENTS}
    assert set(MagentoConnector.default_status_map) <= standard
    assert set(MagentoConnector.default_status_map.values()) == set(VOCABULARY)
    assert MagentoConnector.default_status_map["Shipped"] == "complete"
    assert MagentoConnector.default_status_map["Cancelled"] == "canceled"
    assert MagentoConnector.default_status_map["On Hold"] == "holded"
    assert "Refunded" not in MagentoConnector.default_status_map  # a credit memo's work, not a status


def test_the_settings_schema() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(MagentoConnector.settings_schema)
    assert validator.is_valid({**SETTINGS, "order_ref": "entity_id", "timeout": 10})
    for bad in ({**SETTINGS, "order_ref": "sku"}, {**SETTINGS, "url": "magento.test"},
                {**SETTINGS, "store_code": "Default Store"}, {**SETTINGS, "notify": True}, {"url": SETTINGS["url"]}):
        assert not validator.is_valid(bad), bad
    assert MagentoConnector.settings_schema["properties"]["token"]["secret"] is True


def test_carrier_codes_are_magentos_own_else_custom() -> None:
    assert [carrier_code(c) for c in ("UPS", "FedEx", "usps", "DHL", "Royal Mail")] == [
        "ups", "fedex", "usps", "dhl", "custom"]


def test_magento_messages_have_their_placeholders_filled() -> None:
    assert magento_message({"message": "The consumer isn't authorized to access %resources.",
                            "parameters": {"resources": "Magento_Sales::ship"}}) == (
        "The consumer isn't authorized to access Magento_Sales::ship.")
    assert magento_message({"message": "No such %1 in %2 (%10)", "parameters": list("abcdefghij")}) == (
        "No such a in b (j)")
    assert magento_message("<html>") is None


# -- the requests of each label -------------------------------------------------------------------


async def test_complete_on_a_paid_order_is_one_shipment_with_both_tracks() -> None:
    sim = MagentoSimulator()
    sim.add_order("000000123", "processing")  # invoiced: a full shipment makes it Complete by itself
    oid = entity(sim, "000000123")
    (outcome,), transport = await send(sim, make_update("000000123", "complete", tracking=TRACKS))
    assert isinstance(outcome, Delivered), outcome
    assert transport.sent[0][:3] == ("GET", "/orders", {
        f"{SEARCH}[field]": "increment_id", f"{SEARCH}[value]": "000000123", f"{SEARCH}[conditionType]": "eq"})
    assert transport.sent[2][:3] == ("GET", "/shipments", {
        f"{SEARCH}[field]": "order_id", f"{SEARCH}[value]": str(oid), f"{SEARCH}[conditionType]": "eq"})
    assert transport.writes() == [("POST", f"/order/{oid}/ship", {"notify": False, "tracks": [
        {"track_number": "1Z999AA10123456784", "title": "UPS", "carrier_code": "ups"},
        {"track_number": "794644790132", "title": "FedEx", "carrier_code": "fedex"}]})]
    state = sim.order_state("000000123")
    assert state is not None and (state["state"], state["status"]) == ("complete", "complete")
    assert state["comments"] == []  # Magento's own action made the status: no comment needed


async def test_complete_on_an_order_not_invoiced_ships_then_sets_the_status_with_a_comment() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")  # pending: Magento leaves a shipped, unpaid order processing
    oid = entity(sim, "K-1")
    (outcome,), transport = await send(sim, make_update("K-1", "complete", status="OM Shipped"))
    assert isinstance(outcome, Delivered), outcome
    assert [(m, p) for m, p, _ in transport.writes()] == [("POST", f"/order/{oid}/ship"),
                                                          ("POST", f"/orders/{oid}/comments")]
    assert transport.writes()[0][2] == {"notify": False, "tracks": []}
    assert transport.writes()[1][2] == {"statusHistory": {
        "comment": "OM Shipped (from the order manager)", "is_customer_notified": 0, "is_visible_on_front": 0,
        "parent_id": oid, "status": "complete"}}
    assert sim.orders["K-1"]["status"] == "complete"


async def test_processing_on_a_new_order_is_a_status_comment_only() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    oid = entity(sim, "K-1")
    (outcome,), transport = await send(sim, make_update("K-1", "processing", note="picked"))
    assert isinstance(outcome, Delivered)
    assert transport.writes() == [("POST", f"/orders/{oid}/comments", {"statusHistory": {
        "comment": "picked", "is_customer_notified": 0, "is_visible_on_front": 0, "parent_id": oid,
        "status": "processing"}})]


async def test_hold_and_unhold() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "processing")
    oid = entity(sim, "K-1")
    (held, again, released), transport = await send(
        sim, make_update("K-1", "holded"), make_update("K-1", "holded"), make_update("K-1", "processing"))
    assert isinstance(held, Delivered) and isinstance(again, AlreadyDone) and isinstance(released, Delivered)
    assert [(m, p) for m, p, _ in transport.writes()] == [("POST", f"/orders/{oid}/hold"),
                                                          ("POST", f"/orders/{oid}/unhold")]
    assert sim.orders["K-1"]["status"] == "processing"


async def test_tracking_for_an_order_on_hold_is_shipped_between_unhold_and_hold() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    sim.orders["K-1"].update(state="holded", status="holded", hold_before_state="new", hold_before_status="pending")
    oid = entity(sim, "K-1")
    (outcome,), transport = await send(sim, make_update("K-1", "holded", tracking=TRACKS))
    assert isinstance(outcome, Delivered), outcome
    assert [(m, p) for m, p, _ in transport.writes()] == [
        ("POST", f"/orders/{oid}/unhold"), ("POST", f"/order/{oid}/ship"), ("POST", f"/orders/{oid}/hold")]
    assert sim.orders["K-1"]["status"] == "holded" and len(sim.tracking_numbers("K-1")) == 2


async def test_cancel() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    oid = entity(sim, "K-1")
    (outcome, again), transport = await send(sim, make_update("K-1", "canceled"), make_update("K-1", "canceled"))
    assert isinstance(outcome, Delivered) and isinstance(again, AlreadyDone), (outcome, again)
    assert transport.writes() == [("POST", f"/orders/{oid}/cancel", None)]


async def test_an_invoiced_order_is_not_canceled_and_nothing_is_written() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "processing")
    (outcome,), transport = await send(sim, make_update("K-1", "canceled", tracking=TRACKS))
    assert isinstance(outcome, Failed) and "credit memo" in outcome.reason
    assert transport.writes() == [] and sim.orders["K-1"]["status"] == "processing"


async def test_a_cancel_magento_answers_false_is_failed() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "pending_payment")
    sim.orders["K-1"]["state"] = "complete"  # behind the connector's back, between its read and its cancel

    class Racing(MagentoConnector):
        async def read_order(self, entity_id: int) -> dict[str, Any]:
            return {**await super().read_order(entity_id), "state": "new", "status": "pending"}

    racing = Racing(wrap_secrets(SETTINGS, MagentoConnector.settings_schema), transport=Recorder(sim, magento_check()))
    try:
        outcome = await racing.send(make_update("K-1", "canceled"))
    finally:
        await racing.aclose()
    assert isinstance(outcome, Failed) and "would not cancel" in outcome.reason and "false" in outcome.reason


async def test_a_canceled_order_takes_no_other_status() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "canceled")
    (outcome,), transport = await send(sim, make_update("K-1", "processing"))
    assert isinstance(outcome, Failed) and "canceled" in outcome.reason
    assert transport.writes() == []


async def test_a_complete_order_takes_no_other_status() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "complete")
    (outcome,), transport = await send(sim, make_update("K-1", "holded"))
    assert outcome == Failed("the order is complete in Magento (state complete): it cannot become holded")
    assert transport.writes() == []


async def test_a_hold_magento_refuses_is_failed_in_its_words() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "canceled")

    class Stale(MagentoConnector):  # reads the order as it was before someone canceled it in the admin
        async def read_order(self, entity_id: int) -> dict[str, Any]:
            return {**await super().read_order(entity_id), "state": "processing", "status": "processing"}

    racing = Stale(wrap_secrets(SETTINGS, MagentoConnector.settings_schema), transport=Recorder(sim, magento_check()))
    try:
        outcome = await racing.send(make_update("K-1", "holded"))
    finally:
        await racing.aclose()
    assert outcome == Failed("Magento refused (HTTP 400): A hold action is not available.")


# -- read before write -------------------------------------------------------------------------------


async def test_a_repeat_reads_and_writes_nothing() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    update = make_update("K-1", "complete", tracking=TRACKS, note="shipped by OM")
    (first,), transport = await send(sim, update)
    (again,), repeat = await send(sim, update)
    assert isinstance(first, Delivered) and isinstance(again, AlreadyDone), (first, again)
    assert len(transport.writes()) == 2  # the ship and the comment
    assert repeat.writes() == [] and [p for _, p, _, _ in repeat.sent] == ["/orders", "/orders/1", "/shipments"]
    assert len(sim.shipments) == 1 and len(sim.orders["K-1"]["status_histories"]) == 1


async def test_the_increment_id_is_looked_up_once_per_store() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    _, transport = await send(sim, make_update("K-1", "processing"), make_update("K-1", "holded"))
    searches = [s for s in transport.sent if s[1] == "/orders" and s[0] == "GET"]
    assert len(searches) == 1


async def test_a_new_tracking_number_after_the_whole_order_shipped_joins_the_latest_shipment() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "processing")
    oid = entity(sim, "K-1")
    late = Tracking("DHL", "JD014600006281234567")
    (first, second), transport = await send(sim, make_update("K-1", "complete", tracking=TRACKS[:1]),
                                            make_update("K-1", "complete", tracking=(*TRACKS[:1], late)))
    assert isinstance(first, Delivered) and isinstance(second, Delivered), (first, second)
    assert transport.writes()[-1] == ("POST", "/shipment/track", {"entity": {
        "track_number": "JD014600006281234567", "title": "DHL", "carrier_code": "dhl", "order_id": oid,
        "parent_id": 1, "weight": 0, "qty": 0, "description": ""}})
    assert len(sim.shipments) == 1
    assert sorted(sim.tracking_numbers("K-1")) == [("DHL", "JD014600006281234567"), ("UPS", "1Z999AA10123456784")]


async def test_tracking_an_order_that_can_take_no_shipment_is_said_not_recorded() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "canceled")
    (outcome,), transport = await send(sim, make_update("K-1", "canceled", tracking=TRACKS))
    assert isinstance(outcome, AlreadyDone) and "1Z999AA10123456784" in outcome.detail, outcome
    assert transport.writes() == []


async def test_a_comment_already_there_is_not_added_again() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1")
    update = make_update("K-1", "processing", note="packed")
    (first,), _ = await send(sim, update)
    (again,), transport = await send(sim, update)  # a new connector, as after a crash
    assert isinstance(first, Delivered) and isinstance(again, AlreadyDone)
    assert transport.writes() == [] and len(sim.orders["K-1"]["status_histories"]) == 1


# -- references and errors -------------------------------------------------------------------------


async def test_entity_ids_are_used_as_they_are_with_order_ref_entity_id() -> None:
    sim = MagentoSimulator()
    sim.add_order("42")
    (outcome, bad), transport = await send(sim, make_update("42", "processing"), make_update("K-1", "processing"),
                                           order_ref="entity_id")
    assert isinstance(outcome, Delivered)
    assert transport.sent[0][:2] == ("GET", "/orders/42")
    assert isinstance(bad, Failed) and "entity id" in bad.reason
    assert len(transport.sent) == 3  # the order, its shipments, the comment; and nothing for K-1
    assert all("K-1" not in p for _, p, _, _ in transport.sent)


async def test_an_unknown_order() -> None:
    sim = MagentoSimulator()
    (by_increment,), _ = await send(sim, make_update("000000404", "processing"))
    (by_entity,), _ = await send(sim, make_update("404", "processing"), order_ref="entity_id")
    assert by_increment == Failed("Magento has no order with increment id '000000404'")
    assert by_entity == Failed("Magento found no such order or route (HTTP 404): The entity that was requested doesn't "
                               "exist. Verify the entity and try again.")


async def test_a_refused_token_gives_magentos_words() -> None:
    sim = MagentoSimulator()
    cart, _ = connector(sim, token="wrong-token-123")
    try:
        result = await cart.test_connection()
    finally:
        await cart.aclose()
    assert not result.ok
    assert result.detail == ("Magento refused the access token (HTTP 401): The consumer isn't authorized to access "
                             "Magento_Sales::actions_view.")


async def test_the_bearer_token_is_sent_and_the_store_code_is_in_the_path() -> None:
    seen: list[httpx.Request] = []
    sim = MagentoSimulator(store_codes=("fr",))
    sim.add_order("K-1")

    class Peek(Recorder):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await super().handle_async_request(request)

    cart = MagentoConnector(wrap_secrets({**SETTINGS, "store_code": "fr"}, MagentoConnector.settings_schema),
                            transport=Peek(sim))
    try:
        outcome = await cart.send(make_update("K-1", "processing"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, Delivered)
    assert seen[0].headers["authorization"] == f"Bearer {SETTINGS['token']}"
    assert seen[0].url.path == "/rest/fr/V1/orders"
    (wrong,), _ = await send(sim, make_update("K-1", "processing"), store_code="default")
    assert wrong == Failed("Magento found no such order or route (HTTP 404): Request does not match any route.")


async def test_a_hosts_limit_is_retry_later_with_its_delay() -> None:
    sim = MagentoSimulator(quota=2, window_seconds=30)
    sim.add_order("K-1")
    cart, _ = connector(sim)
    try:
        outcome = await cart.send(make_update("K-1", "processing"))
        hint = cart.latest_limit_hint
    finally:
        await cart.aclose()
    assert isinstance(outcome, RetryLater) and outcome.delay is not None and 29 <= outcome.delay <= 30
    assert sim.throttled == 1
    assert hint is not None and hint.remaining == 0


# -- the Swagger 2.0 check ---------------------------------------------------------------------------


def test_the_spec_check_catches_a_track_without_its_number() -> None:
    check = magento_check()
    good = {"notify": False, "tracks": [{"track_number": "1Z9", "title": "UPS", "carrier_code": "ups"}]}
    check(httpx.Request("POST", "http://magento.test/rest/default/V1/order/7/ship", json=good))
    with pytest.raises(RequestProblem, match="track_number"):
        check(httpx.Request("POST", "http://magento.test/rest/default/V1/order/7/ship",
                            json={"tracks": [{"title": "UPS", "carrier_code": "ups"}]}))


def test_the_spec_check_catches_a_wrong_wrapper_a_wrong_type_and_a_wrong_path() -> None:
    check = magento_check()
    url = "http://magento.test/rest/default/V1"
    history = {"comment": "x", "is_customer_notified": 0, "is_visible_on_front": 0, "parent_id": 7, "status": "x"}
    check(httpx.Request("POST", f"{url}/orders/7/comments", json={"statusHistory": history}))
    for request, words in [
        (httpx.Request("POST", f"{url}/orders/7/comments", json={"entity": history}), "not arguments"),
        (httpx.Request("POST", f"{url}/orders/7/comments", json=history), "not arguments"),
        (httpx.Request("POST", f"{url}/orders/7/comments",
                       json={"statusHistory": {**history, "is_customer_notified": False}}), "integer"),
        (httpx.Request("POST", f"{url}/orders/K-7/cancel"), "not of type integer"),
        (httpx.Request("PUT", f"{url}/orders/7/hold"), "takes no PUT"),
        (httpx.Request("POST", f"{url}/orders/7/status"), "no path"),
        (httpx.Request("GET", f"{url}/orders", params={"searchCriteria[filter_groups][0][filters][0][field]": "x"}),
         "declares no query parameter"),
        (httpx.Request("GET", "http://magento.test/rest/V1/orders/7"), "base path"),
    ]:
        with pytest.raises(RequestProblem, match=words):
            check(request)


async def test_a_connector_that_drops_the_wrapper_is_caught_by_the_check_and_refused_by_the_simulator() -> None:
    class Unwrapped(MagentoConnector):
        async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
            if url.endswith("/comments") and "json" in kwargs:
                kwargs["json"] = kwargs["json"]["statusHistory"]
            return await super().call(method, url, **kwargs)

    sim = MagentoSimulator()
    sim.add_order("K-1")
    problems: list[str] = []

    def check(request: httpx.Request) -> None:
        try:
            magento_check()(request)
        except RequestProblem as problem:
            problems.append(str(problem))

    cart = Unwrapped(wrap_secrets(SETTINGS, MagentoConnector.settings_schema), transport=Recorder(sim, check))
    try:
        outcome = await cart.send(make_update("K-1", "processing"))
    finally:
        await cart.aclose()
    assert problems and "not arguments of the call" in problems[0]
    assert outcome == Failed('Magento refused (HTTP 400): "statusHistory" is required. Enter and try again.')


async def test_magentos_shipment_refusals() -> None:
    sim = MagentoSimulator()
    sim.add_order("K-1", "payment_review")
    sim.add_order("K-2", "processing")
    transport = Recorder(sim)  # unchecked: two requests here break the description on purpose
    cart = MagentoConnector(wrap_secrets(SETTINGS, MagentoConnector.settings_schema), transport=transport)
    try:
        review = await cart.send(make_update("K-1", "complete", tracking=TRACKS))
        held = await cart.client.post(cart.url(f"/order/{entity(sim, 'K-1')}/ship"), json={})
        # Straight at the store (the connector never sends these): a track without its number, nothing left to ship.
        no_number = await cart.client.post(cart.url(f"/order/{entity(sim, 'K-2')}/ship"),
                                           json={"tracks": [{"title": "UPS", "carrier_code": "ups"}]})
        await cart.send(make_update("K-2", "complete"))
        nothing_left = await cart.client.post(cart.url(f"/order/{entity(sim, 'K-2')}/ship"), json={})
    finally:
        await cart.aclose()
    assert review == Failed("the order is payment_review in Magento (payment review): settle its payment first")
    assert held.json() == {"message": "Shipment Document Validation Error(s):\nA shipment cannot be created when an "
                                      "order has a status of payment_review"}
    assert no_number.status_code == 400 and no_number.json()["message"].endswith("Please enter a tracking number.")
    assert nothing_left.json() == {"message": "Shipment Document Validation Error(s):\nThe order does not allow a "
                                              "shipment to be created."}


async def test_without_reading_the_shipments_a_repeat_would_record_the_numbers_twice() -> None:
    """The read before write is what keeps a repeat harmless: a connector that skips it doubles the tracks."""

    class Forgetful(MagentoConnector):
        async def read_shipments(self, entity_id: int) -> list[dict[str, Any]]:
            shipments = await super().read_shipments(entity_id)
            return [{**s, "tracks": []} for s in shipments]  # as if it had not looked at the tracks

    sim = MagentoSimulator()
    sim.add_order("K-1", "processing")
    update = make_update("K-1", "complete", tracking=TRACKS)
    for cls in (MagentoConnector, Forgetful):
        sim.shipments.clear()
        sim.add_order("K-1", "processing")
        cart = cls(wrap_secrets(SETTINGS, MagentoConnector.settings_schema), transport=Recorder(sim))
        try:
            outcomes = [await cart.send(update), await cart.send(update)]
        finally:
            await cart.aclose()
        assert all(isinstance(o, Delivered | AlreadyDone) for o in outcomes), outcomes
        held = sorted(n for _, n in sim.tracking_numbers("K-1"))
        expected = sorted(t.number for t in TRACKS) * (1 if cls is MagentoConnector else 2)
        assert held == sorted(expected), (cls.__name__, held)
