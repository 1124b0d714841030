"""The vendure connector's own behaviours, against its simulator: the requests each label makes, the default map,
read before write, refusals in Vendure's words, the token Vendure stops taking, a host's limit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from cartstatus.connector import Tracking
from cartstatus.connectors.vendure import VendureConnector
from cartstatus.connectors.vendure.connector import VOCABULARY, share_items
from cartstatus.connectors.vendure.simulator import VendureSimulator
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import make_update, simulator_transport

PASSWORD = "unit-Vendure-Pass-7"
SETTINGS = {"url": "https://shop.test/admin-api", "username": "superadmin", "password": PASSWORD}
UPS, FEDEX = Tracking("UPS", "1Z999AA10123456784"), Tracking("FedEx", "794644790132")


def new_cart(**kwargs: Any) -> VendureSimulator:
    return VendureSimulator(password=PASSWORD, **kwargs)


def send_all(sim: VendureSimulator, *updates: Any, settings: dict[str, Any] | None = None) -> list[Outcome]:
    async def run() -> list[Outcome]:
        connector = VendureConnector(wrap_secrets(settings or SETTINGS, VendureConnector.settings_schema),
                                     transport=simulator_transport(sim))
        try:
            return [await connector.send(u) for u in updates]
        finally:
            await connector.aclose()

    return asyncio.run(run())


def operations(sim: VendureSimulator) -> list[str]:
    return [root for root, _ in sim.sent]


# -- declarations ---------------------------------------------------------------------------------------------

def test_the_default_map_names_vendure_states_for_the_labels_it_has() -> None:
    assert VendureConnector.default_status_map == {
        "Payment Received": "PaymentSettled", "Shipped": "Shipped", "Drop Shipped": "Shipped",
        "Delivered": "Delivered", "Cancelled": "Cancelled"}
    assert set(VendureConnector.default_status_map.values()) <= set(VOCABULARY)
    standard = {label for _, label, _ in DEFAULT_STATUS_EVENTS}
    assert set(VendureConnector.default_status_map) <= standard
    # Vendure derives these itself from fulfillments; the connector cannot say which items.
    assert "Partially Shipped" not in VendureConnector.default_status_map


def test_the_settings_are_the_issues_names_and_nothing_else() -> None:
    schema = VendureConnector.settings_schema
    assert set(schema["properties"]) == {"url", "username", "password", "timeout"}
    assert schema["additionalProperties"] is False and schema["properties"]["password"]["secret"] is True
    assert all(p.get("description") for p in schema["properties"].values())


# -- the requests each label makes ----------------------------------------------------------------------------

def test_paid_settles_each_authorized_payment_and_vendure_moves_the_order() -> None:
    sim = new_cart()
    sim.add_order("V-1", "PaymentAuthorized")
    [outcome] = send_all(sim, make_update("V-1", "PaymentSettled"))
    assert isinstance(outcome, Delivered), outcome
    assert operations(sim) == ["login", "orders", "settlePayment", "order"]
    assert sim.sent[2][1] == {"id": sim.orders["V-1"]["payments"][0]["id"]}
    assert sim.order_state("V-1")["status"] == "PaymentSettled"  # type: ignore[index]


def test_shipped_with_two_numbers_makes_two_fulfillments_sharing_the_items_then_ships_them() -> None:
    sim = new_cart()
    sim.add_order("V-2")  # PaymentSettled; lines of 2 and 1 items
    [outcome] = send_all(sim, make_update("V-2", "Shipped", tracking=(UPS, FEDEX)))
    assert isinstance(outcome, Delivered), outcome
    assert operations(sim) == ["login", "orders", "addFulfillmentToOrder", "addFulfillmentToOrder",
                               "transitionFulfillmentToState", "transitionFulfillmentToState", "order"]
    line1, line2 = (line["id"] for line in sim.orders["V-2"]["lines"])
    assert [v["input"] for _, v in sim.sent[2:4]] == [
        {"lines": [{"orderLineId": line1, "quantity": 2}],
         "handler": {"code": "manual-fulfillment", "arguments": [{"name": "method", "value": "UPS"},
                                                                 {"name": "trackingCode", "value": UPS.number}]}},
        {"lines": [{"orderLineId": line2, "quantity": 1}],
         "handler": {"code": "manual-fulfillment", "arguments": [{"name": "method", "value": "FedEx"},
                                                                 {"name": "trackingCode", "value": FEDEX.number}]}}]
    assert [v["state"] for _, v in sim.sent[4:6]] == ["Shipped", "Shipped"]
    state = sim.order_state("V-2")
    assert state is not None and state["status"] == "Shipped"
    assert sim.tracking_numbers("V-2") == [("UPS", UPS.number), ("FedEx", FEDEX.number)]


def test_shipped_without_a_number_fulfils_every_item_once() -> None:
    sim = new_cart()
    sim.add_order("V-3")
    [outcome] = send_all(sim, make_update("V-3", "Shipped"))
    assert isinstance(outcome, Delivered), outcome
    [(_, fulfil)] = [s for s in sim.sent if s[0] == "addFulfillmentToOrder"]
    assert fulfil["input"]["handler"]["arguments"] == [{"name": "method", "value": ""}]
    assert sum(line["quantity"] for line in fulfil["input"]["lines"]) == 3
    assert sim.order_state("V-3")["status"] == "Shipped"  # type: ignore[index]


def test_delivered_moves_pending_and_shipped_fulfillments_to_delivered() -> None:
    sim = new_cart()
    sim.add_order("V-4")
    send_all(sim, make_update("V-4", "Shipped", tracking=(UPS,)))
    sim.sent.clear()
    [outcome] = send_all(sim, make_update("V-4", "Delivered"))
    assert isinstance(outcome, Delivered), outcome
    assert operations(sim) == ["login", "orders", "transitionFulfillmentToState", "order"]
    assert sim.order_state("V-4")["status"] == "Delivered"  # type: ignore[index]


def test_cancelled_cancels_the_order_with_the_note_as_reason_and_records_no_tracking() -> None:
    sim = new_cart()
    sim.add_order("V-5")
    [outcome, again] = send_all(sim, make_update("V-5", "Cancelled", tracking=(UPS,), note="out of stock"),
                                make_update("V-5", "Cancelled", tracking=(UPS,), note="out of stock"))
    assert isinstance(outcome, Delivered) and UPS.number in outcome.detail, outcome
    assert isinstance(again, AlreadyDone), again
    assert [s for s in sim.sent if s[0] == "cancelOrder"] == [
        ("cancelOrder", {"input": {"orderId": sim.orders["V-5"]["id"], "reason": "out of stock"}})]
    state = sim.order_state("V-5")
    assert state is not None and state["status"] == "Cancelled" and state["cancel_reason"] == "out of stock"
    assert sim.tracking_numbers("V-5") == []


# -- read before write ----------------------------------------------------------------------------------------

def test_a_repeat_creates_nothing_twice_and_says_already_done() -> None:
    sim = new_cart()
    sim.add_order("V-6")
    update = make_update("V-6", "Shipped", tracking=(UPS, FEDEX))
    first, again = send_all(sim, update, update)
    assert isinstance(first, Delivered) and isinstance(again, AlreadyDone), (first, again)
    assert len(sim.fulfillments) == 2
    assert operations(sim)[-1] == "orders"  # the repeat only read


def test_a_number_the_cart_holds_on_a_cancelled_fulfillment_is_not_made_again() -> None:
    sim = new_cart()
    sim.add_order("V-7")
    send_all(sim, make_update("V-7", "PaymentSettled", tracking=(UPS,)))
    [fulfillment] = sim.fulfillments.values()
    fulfillment["state"] = "Cancelled"  # a person cancelled it in Vendure's admin
    sim.sent.clear()
    [outcome] = send_all(sim, make_update("V-7", "PaymentSettled", tracking=(UPS,)))
    assert isinstance(outcome, AlreadyDone), outcome
    assert "addFulfillmentToOrder" not in operations(sim)


def test_a_number_with_no_item_left_is_named_in_the_outcome() -> None:
    sim = new_cart()
    sim.add_order("V-8")
    send_all(sim, make_update("V-8", "Shipped", tracking=(UPS,)))  # every item in the UPS fulfillment
    [outcome] = send_all(sim, make_update("V-8", "Shipped", tracking=(UPS, FEDEX)))
    assert isinstance(outcome, AlreadyDone) and FEDEX.number in outcome.detail, outcome
    assert sim.tracking_numbers("V-8") == [("UPS", UPS.number)]


def test_items_are_shared_in_line_order_as_evenly_as_whole_items_allow() -> None:
    assert share_items([("a", 2), ("b", 1)], 2) == [[("a", 2)], [("b", 1)]]
    assert share_items([("a", 3)], 2) == [[("a", 2)], [("a", 1)]]
    assert share_items([("a", 1), ("b", 1), ("c", 1)], 1) == [[("a", 1), ("b", 1), ("c", 1)]]
    assert share_items([("a", 1)], 3) == [[("a", 1)]]  # more numbers than items: the rest find none
    assert share_items([], 2) == []


# -- refusals -------------------------------------------------------------------------------------------------

def test_a_move_the_order_process_forbids_is_refused_in_vendures_words_before_any_write() -> None:
    sim = new_cart()
    sim.add_order("V-9", "PaymentAuthorized")
    [outcome] = send_all(sim, make_update("V-9", "Shipped", tracking=(UPS,)))
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == ('Vendure refused: ORDER_STATE_TRANSITION_ERROR: Cannot transition Order from '
                              '"PaymentAuthorized" to "Shipped"')
    assert operations(sim) == ["login", "orders", "transitionOrderToState"]
    assert sim.fulfillments == {}


def test_a_guard_refusal_carries_its_transition_error() -> None:
    sim = new_cart()
    sim.add_order("V-10", "ArrangingPayment")
    sim.orders["V-10"]["payments"] = []  # nothing to settle: Vendure's guard says why not
    [outcome] = send_all(sim, make_update("V-10", "PaymentSettled"))
    assert isinstance(outcome, Failed), outcome
    assert 'Cannot transition Order from "ArrangingPayment" to "PaymentSettled"' in outcome.reason
    assert "when the total is not covered by settled Payments" in outcome.reason


def test_an_untranslated_message_is_completed_by_the_transition_error() -> None:
    connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema))
    reply = httpx.Response(200, json={"data": {"transitionFulfillmentToState": {
        "__typename": "FulfillmentStateTransitionError", "errorCode": "FULFILLMENT_STATE_TRANSITION_ERROR",
        "message": "errorResult.FULFILLMENT_STATE_TRANSITION_ERROR",
        "transitionError": 'Cannot transition Fulfillment from "Delivered" to "Shipped"'}}})
    outcome = connector.outcome_for_response(reply)
    assert isinstance(outcome, Failed)
    assert outcome.reason.endswith('; Cannot transition Fulfillment from "Delivered" to "Shipped"'), outcome


def test_an_unknown_order_is_failed_without_a_write() -> None:
    sim = new_cart()
    [outcome] = send_all(sim, make_update("NOPE", "Shipped", tracking=(UPS,)))
    assert isinstance(outcome, Failed) and "'NOPE'" in outcome.reason, outcome
    assert operations(sim) == ["login", "orders"]


def test_a_refused_password_fails_in_vendures_words() -> None:
    sim = new_cart()
    sim.add_order("V-11")
    [outcome] = send_all(sim, make_update("V-11", "Shipped"), settings={**SETTINGS, "password": "wrong-one"})
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason == ("login refused: Vendure refused: INVALID_CREDENTIALS_ERROR: "
                              "The provided credentials are invalid")


# -- the token ------------------------------------------------------------------------------------------------

def test_a_forbidden_reply_is_a_refused_token_logged_in_again_once() -> None:
    sim = new_cart()
    sim.add_order("V-12")
    sim.add_order("V-13")

    async def run() -> tuple[Outcome, Outcome]:
        connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema),
                                     transport=simulator_transport(sim))
        try:
            first = await connector.send(make_update("V-12", "Shipped"))
            sim.fail_next("forbidden")  # Vendure no longer knows the token: FORBIDDEN in an HTTP 200
            return first, await connector.send(make_update("V-13", "Shipped"))
        finally:
            await connector.aclose()

    first, second = asyncio.run(run())
    assert isinstance(first, Delivered) and isinstance(second, Delivered), (first, second)
    assert sim.logins == 2


def test_only_the_bearer_token_goes_out_never_a_cookie() -> None:
    """Vendure reads a session cookie before the bearer token: an anonymous session's cookie would hide it."""
    sim = new_cart()
    sim.add_order("V-14")
    sim.add_order("V-15")

    async def run() -> Outcome:
        connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema),
                                     transport=simulator_transport(sim))
        try:
            await connector.send(make_update("V-14", "Shipped"))
            # The cookie of another (anonymous) session, as Vendure hands one out to an unknown token.
            connector.client.cookies.set("session", "eyJ0b2tlbiI6ImFub255bW91cyJ9")
            return await connector.send(make_update("V-15", "Shipped"))
        finally:
            await connector.aclose()

    assert isinstance(asyncio.run(run()), Delivered)
    assert sim.logins == 1


def test_the_simulator_reads_a_cookie_before_the_bearer_token_as_vendure_does() -> None:
    sim = new_cart()
    sim.tokens.add("good")
    query = {"query": "query Q($code: String!) { orders(options: {filter: {code: {eq: $code}}}) { items { id } } }",
             "variables": {"code": "X"}}

    async def run(cookie: str | None) -> httpx.Response:
        headers = {"Authorization": "Bearer good"} | ({"Cookie": f"session={cookie}"} if cookie else {})
        async with httpx.AsyncClient(transport=simulator_transport(sim)) as client:
            return await client.post("https://shop.test/admin-api", json=query, headers=headers)

    assert "errors" not in asyncio.run(run(None)).json()
    assert asyncio.run(run("eyJ0b2tlbiI6ImFub255bW91cyJ9")).json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_login_reply_without_the_token_header_is_retried_later() -> None:
    sim = new_cart()
    sim.add_order("V-16")

    class NoHeader(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = simulator_transport(sim)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            reply = await self.inner.handle_async_request(request)
            await reply.aread()
            headers = [(k, v) for k, v in reply.headers.items() if k.lower() != "vendure-auth-token"]
            return httpx.Response(reply.status_code, headers=headers, content=reply.content)

    async def run() -> Outcome:
        connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema), transport=NoHeader())
        try:
            return await connector.send(make_update("V-16", "Shipped"))
        finally:
            await connector.aclose()

    outcome = asyncio.run(run())
    assert isinstance(outcome, RetryLater) and "no token" in outcome.reason, outcome


# -- the simulator keeps to Vendure's API ----------------------------------------------------------------------

@pytest.mark.parametrize(("body", "status", "code"), [
    ({"query": "query { nope }"}, 400, "GRAPHQL_VALIDATION_FAILED"),
    ({"query": "query Q($id: ID!) { order(id: $id) { id } }"}, 200, "BAD_USER_INPUT"),
    ({"query": "mutation M($input: FulfillOrderInput!) { addFulfillmentToOrder(input: $input) { __typename } }",
      "variables": {"input": {"lines": [{"orderLineId": "1"}], "handler": {"code": "manual-fulfillment",
                                                                          "arguments": []}}}}, 400, "BAD_USER_INPUT"),
    ({}, 400, "BAD_REQUEST"),
])
def test_the_simulator_refuses_what_vendure_refuses(body: dict[str, Any], status: int, code: str) -> None:
    sim = new_cart()
    sim.tokens.add("good")

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=simulator_transport(sim)) as client:
            return await client.post("https://shop.test/admin-api", json=body,
                                     headers={"Authorization": "Bearer good"})

    reply = asyncio.run(run())
    assert reply.status_code == status and reply.json()["errors"][0]["extensions"]["code"] == code, reply.text


def test_a_hosts_limit_is_a_429_with_retry_after_and_retried_later() -> None:
    sim = new_cart(quota=3, window_seconds=30.0)
    sim.add_order("V-17")
    [outcome] = send_all(sim, make_update("V-17", "Shipped", tracking=(UPS,)))
    assert isinstance(outcome, RetryLater) and outcome.delay is not None and 1.0 <= outcome.delay <= 30.0, outcome
    assert sim.throttled == 1


def test_a_forbidden_reply_that_came_compressed_is_still_read_as_a_refused_token() -> None:
    """The refusal is handed on as a 401 with the body as read: a gzip header left on it would break the reading."""
    import gzip
    import json

    sim = new_cart()
    sim.add_order("V-18")
    body = json.dumps({"errors": [{"message": "You are not currently authorized to perform this action",
                                   "extensions": {"code": "FORBIDDEN"}}], "data": None}).encode()
    answers = iter([httpx.Response(200, headers={"content-encoding": "gzip"}, content=gzip.compress(body))])

    class OnceCompressed(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = simulator_transport(sim)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if b"CartstatusOrder" in request.content:
                refused = next(answers, None)
                if refused is not None:
                    return refused
            return await self.inner.handle_async_request(request)

    async def run() -> Outcome:
        connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema),
                                     transport=OnceCompressed())
        try:
            return await connector.send(make_update("V-18", "Shipped"))
        finally:
            await connector.aclose()

    assert isinstance(asyncio.run(run()), Delivered)
    assert sim.logins == 2


def test_a_page_that_is_not_a_graphql_answer_is_retried_later() -> None:
    sim = new_cart()
    sim.add_order("V-19")

    class ProxyPage(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = simulator_transport(sim)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if b"CartstatusOrder" in request.content:
                return httpx.Response(200, html="<html>maintenance</html>")
            return await self.inner.handle_async_request(request)

    async def run() -> Outcome:
        connector = VendureConnector(wrap_secrets(SETTINGS, VendureConnector.settings_schema), transport=ProxyPage())
        try:
            return await connector.send(make_update("V-19", "Shipped"))
        finally:
            await connector.aclose()

    assert isinstance(asyncio.run(run()), RetryLater)
