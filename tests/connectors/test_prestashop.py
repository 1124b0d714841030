"""The PrestaShop connector's own behaviours: the requests it sends, statuses found by name, tracking numbers on
order carriers, read before write, the webservice's errors, and a simulator as strict as the webservice."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cartstatus.connector import Tracking
from cartstatus.connectors.prestashop import PrestaShopConnector
from cartstatus.connectors.prestashop.simulator import PrestaShopSimulator
from cartstatus.connectors.prestashop.webservice import DEFAULT_STATE_NAMES, errors_in
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import AnswerTransport, make_update, simulator_transport

KEY = PrestaShopSimulator.api_key
SETTINGS = {"url": "https://shop.test", "api_key": KEY}
UPS = Tracking("UPS", "1Z999AA10123456784", "2024-05-01")
UPS2 = Tracking("UPS", "1Z999AA10123456785", "2024-05-01")
FEDEX = Tracking("FedEx", "794644790132", "2024-05-02")


def connector(sim: PrestaShopSimulator, transport: httpx.AsyncBaseTransport | None = None,
              **settings: Any) -> PrestaShopConnector:
    return PrestaShopConnector(wrap_secrets({**SETTINGS, **settings}, PrestaShopConnector.settings_schema),
                               transport=transport or simulator_transport(sim))


@contextlib.asynccontextmanager
async def opened(sim: PrestaShopSimulator, transport: httpx.AsyncBaseTransport | None = None,
                 **settings: Any) -> AsyncIterator[PrestaShopConnector]:
    cart = connector(sim, transport, **settings)
    try:
        yield cart
    finally:
        await cart.aclose()


@pytest.fixture
def sim() -> PrestaShopSimulator:
    shop = PrestaShopSimulator()
    shop.add_order("5")
    return shop


@pytest.fixture
async def shop(sim: PrestaShopSimulator) -> AsyncIterator[PrestaShopConnector]:
    cart = connector(sim)
    yield cart
    await cart.aclose()


def fields(body: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(body)
    assert root.tag == "prestashop"
    (entity,) = list(root)
    return entity.tag, {child.tag: child.text or "" for child in entity}


def calls(sim: PrestaShopSimulator) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in sim.seen]


# -- the settings and the map ------------------------------------------------------------------------------------


def test_the_vocabulary_is_a_new_shops_status_names_and_the_map_gives_them() -> None:
    assert PrestaShopConnector.status_vocabulary == DEFAULT_STATE_NAMES
    assert len(DEFAULT_STATE_NAMES) == 13 and DEFAULT_STATE_NAMES[5] == "Canceled"  # PrestaShop spells it so
    assert dict(PrestaShopConnector.default_status_map) == {
        "Payment Received": "Payment accepted", "Processing": "Processing in progress", "Shipped": "Shipped",
        "Drop Shipped": "Shipped", "Delivered": "Delivered", "Completed": "Delivered", "Cancelled": "Canceled",
        "Refunded": "Refunded", "Backordered": "On backorder (paid)"}
    schema = PrestaShopConnector.settings_schema
    assert set(schema["properties"]) == {"url", "api_key", "timeout"} and schema["additionalProperties"] is False
    assert schema["properties"]["api_key"]["secret"] is True


def test_every_request_authenticates_with_the_key_as_the_basic_user_and_no_password(
        sim: PrestaShopSimulator) -> None:
    request = httpx.Request("GET", "https://shop.test/api/orders/5")
    next(connector(sim).http_auth().auth_flow(request))
    assert request.headers["Authorization"] == httpx.BasicAuth(KEY, "")._auth_header


# -- the requests of a delivery --------------------------------------------------------------------------------


async def test_shipped_with_two_numbers_reads_then_writes_the_carriers_then_the_history(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    outcome = await shop.send(make_update("5", "Shipped", tracking=(UPS, FEDEX)))
    assert isinstance(outcome, Delivered), outcome
    assert calls(sim) == [("GET", "/api/orders/5"), ("GET", "/api/order_states"), ("GET", "/api/order_carriers"),
                          ("GET", "/api/carriers"), ("PUT", "/api/order_carriers/1"),
                          ("POST", "/api/order_carriers"), ("POST", "/api/order_histories")]
    assert all(r["query"].get("output_format") == "JSON" for r in sim.seen)
    assert sim.seen[1]["query"]["display"] == "[id,name,deleted]"
    assert sim.seen[2]["query"] == {"filter[id_order]": "[5]", "display": "full", "output_format": "JSON"}
    put, post, history = sim.seen[4:]
    # The PUT is the whole order carrier (PrestaShop nulls what a PUT leaves out), with the UPS number.
    assert fields(put["body"]) == ("order_carrier", {
        "id": "1", "id_order": "5", "id_carrier": "3", "id_order_invoice": "0", "weight": "1.200000",
        "shipping_cost_tax_excl": "7.000000", "shipping_cost_tax_incl": "8.400000",
        "tracking_number": UPS.number, "date_add": "2024-05-01 12:00:00"})
    assert fields(post["body"]) == ("order_carrier", {"id_order": "5", "id_carrier": "4",
                                                      "tracking_number": FEDEX.number})
    assert fields(history["body"]) == ("order_history", {"id_order": "5", "id_order_state": "4"})
    assert history["query"]["sendemail"] == "1"
    # The order's own carrier line, with its first number: PrestaShop mails "Package in transit" with its link.
    assert put["query"].get("sendemail") == "1" and "sendemail" not in post["query"]
    state = sim.order_state("5")
    assert state is not None and state["status"] == "Shipped"
    assert state["emails"] == [f"in_transit https://www.ups.com/track?tracknum={UPS.number}", "shipped"]
    assert state["order_carriers"][0]["weight"] == "1.200000"  # kept through the PUT
    assert sorted(sim.tracking_numbers("5")) == [("FedEx", FEDEX.number), ("UPS", UPS.number)]


async def test_a_status_without_tracking_is_one_read_and_one_history_row(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    assert isinstance(await shop.send(make_update("5", "Canceled")), Delivered)
    assert calls(sim) == [("GET", "/api/orders/5"), ("GET", "/api/order_states"), ("POST", "/api/order_histories")]
    assert fields(sim.seen[-1]["body"])[1] == {"id_order": "5", "id_order_state": "6"}


async def test_statuses_and_carriers_are_read_once_per_store(sim: PrestaShopSimulator,
                                                             shop: PrestaShopConnector) -> None:
    sim.add_order("6")
    await shop.send(make_update("5", "Shipped", tracking=(UPS,)))
    await shop.send(make_update("6", "Delivered", tracking=(FEDEX,)))
    paths = [path for _, path in calls(sim)]
    assert paths.count("/api/order_states") == 1 and paths.count("/api/carriers") == 1


async def test_names_in_several_languages_are_matched_in_any_of_them() -> None:
    sim = PrestaShopSimulator(languages=(1, 2))
    sim.add_order("5")
    async with opened(sim) as cart:
        assert isinstance(await cart.send(make_update("5", "Delivered")), Delivered)
    assert sim.order_state("5")["status"] == "Delivered"  # type: ignore[index]


async def test_a_status_the_shop_renamed_is_failed_with_the_shops_own_names_and_nothing_written() -> None:
    sim = PrestaShopSimulator()
    sim.order_states[4]["name"] = {1: "Sent", 2: "Envoyé"}
    sim.add_order("5")
    async with opened(sim) as cart:
        outcome = await cart.send(make_update("5", "Shipped", tracking=(UPS,)))
    assert isinstance(outcome, Failed) and "'Shipped'" in outcome.reason and "'Sent'" in outcome.reason
    assert all(r["method"] == "GET" for r in sim.seen)


async def test_a_deleted_status_is_not_used() -> None:
    sim = PrestaShopSimulator()
    sim.order_states[4]["deleted"] = "1"
    sim.add_order("5")
    async with opened(sim) as cart:
        assert isinstance(await cart.send(make_update("5", "Shipped")), Failed)


# -- read before write ----------------------------------------------------------------------------------------


async def test_an_order_already_in_the_status_gets_no_second_history_row_nor_e_mail(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    update = make_update("5", "Shipped", tracking=(UPS, FEDEX))
    assert isinstance(await shop.send(update), Delivered)
    sim.seen.clear()
    again = await shop.send(update)
    assert isinstance(again, AlreadyDone), again
    assert all(r["method"] == "GET" for r in sim.seen)
    assert sim.order_state("5")["history"] == ["Shipped"]  # type: ignore[index]
    assert [template for _, template in sim.emails] == [f"in_transit https://www.ups.com/track?tracknum={UPS.number}",
                                                        "shipped"]


async def test_only_the_missing_number_is_written_when_the_status_is_already_there(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    await shop.send(make_update("5", "Shipped", tracking=(UPS,)))
    sim.seen.clear()
    outcome = await shop.send(make_update("5", "Shipped", tracking=(UPS, FEDEX)))
    assert isinstance(outcome, Delivered) and "FedEx" in outcome.detail and "status" not in outcome.detail
    assert [c for c in calls(sim) if c[0] != "GET"] == [("POST", "/api/order_carriers")]


# -- tracking numbers ------------------------------------------------------------------------------------------


async def test_two_numbers_of_one_carrier_share_its_order_carrier(sim: PrestaShopSimulator,
                                                                  shop: PrestaShopConnector) -> None:
    assert isinstance(await shop.send(make_update("5", "Shipped", tracking=(UPS, UPS2))), Delivered)
    (line,) = sim.order_state("5")["order_carriers"]  # type: ignore[index]
    assert line["tracking_number"] == f"{UPS.number}, {UPS2.number}"
    assert "sendemail" not in sim.seen[-2]["query"]  # two numbers in one link would be a broken link: no mail
    assert sim.tracking_numbers("5") == [("UPS", UPS.number), ("UPS", UPS2.number)]


async def test_numbers_that_would_pass_64_characters_are_failed_before_anything_is_written(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    many = tuple(Tracking("UPS", f"1Z999AA1012345678{i}") for i in range(4))
    outcome = await shop.send(make_update("5", "Shipped", tracking=many))
    assert isinstance(outcome, Failed) and "64" in outcome.reason
    assert all(r["method"] == "GET" for r in sim.seen)


async def test_a_carrier_the_shop_lacks_is_failed_with_its_carriers_and_nothing_written(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    outcome = await shop.send(make_update("5", "Shipped", tracking=(UPS, Tracking("DHL", "JD0123"))))
    assert isinstance(outcome, Failed) and "'DHL'" in outcome.reason and "'FedEx'" in outcome.reason
    assert all(r["method"] == "GET" for r in sim.seen)
    assert [p for _, p in calls(sim)].count("/api/carriers") == 2  # read again once: a carrier added since?


async def test_a_carrier_name_matches_a_shop_carrier_holding_it_as_a_word() -> None:
    sim = PrestaShopSimulator()
    sim.carriers[4]["name"] = "FedEx International Priority"
    sim.add_order("5")
    async with opened(sim) as cart:
        assert isinstance(await cart.send(make_update("5", "Shipped", tracking=(FEDEX,))), Delivered)
    assert sim.tracking_numbers("5") == [("FedEx International Priority", FEDEX.number)]


async def test_an_order_line_on_a_carrier_the_shop_edited_since_is_still_its_carriers() -> None:
    sim = PrestaShopSimulator()
    sim.add_order("5")  # placed with UPS, id 3; then the merchant edits UPS: PrestaShop deletes 3, adds 6
    sim.carriers[3]["deleted"] = "1"
    sim.carriers[6] = {**sim.carriers[3], "deleted": "0"}
    async with opened(sim) as cart:
        assert isinstance(await cart.send(make_update("5", "Shipped", tracking=(UPS,))), Delivered)
    assert len(sim.order_state("5")["order_carriers"]) == 1  # type: ignore[index]


def test_carrier_matching_prefers_the_exact_name_and_refuses_an_ambiguous_word() -> None:
    from cartstatus.connectors.prestashop.connector import Carrier
    carriers = [Carrier(1, "UPS Standard", False), Carrier(2, "UPS Express", False), Carrier(3, "UPS", False)]
    assert PrestaShopConnector.match(carriers, "ups") == carriers[2]
    assert PrestaShopConnector.match(carriers[:2], "UPS") is None
    assert PrestaShopConnector.match(carriers[:2], "Express") == carriers[1]
    assert PrestaShopConnector.match(carriers, "PS") is None  # a word, not any part of one


# -- finding the order -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [True, False])
async def test_an_order_by_reference_is_found_by_filter_and_an_unknown_one_is_failed(legacy: bool) -> None:
    sim = PrestaShopSimulator(empty_list_as_array=legacy)
    sim.add_order("XKBKNABJK")
    async with opened(sim) as cart:
        found = await cart.send(make_update("XKBKNABJK", "Delivered"))
        missing = await cart.send(make_update("QQQQQQQQQ", "Delivered"))
    assert isinstance(found, Delivered)
    assert sim.seen[0]["query"]["filter[reference]"] == "[XKBKNABJK]"
    assert isinstance(missing, Failed) and "QQQQQQQQQ" in missing.reason


async def test_an_unknown_order_id_is_failed_from_the_webservices_empty_404(shop: PrestaShopConnector) -> None:
    outcome = await shop.send(make_update("404", "Shipped"))
    assert isinstance(outcome, Failed) and "/api/orders/404" in outcome.reason and "404" in outcome.reason


async def test_one_reference_on_several_orders_is_failed_naming_them() -> None:
    sim = PrestaShopSimulator()
    sim.add_order("SPLITREF1")
    sim.add_order("SPLITREF2")
    sim.orders[2]["reference"] = "SPLITREF1"  # a cart split between two carriers: two orders, one reference
    async with opened(sim) as cart:
        outcome = await cart.send(make_update("SPLITREF1", "Shipped"))
    assert isinstance(outcome, Failed) and "(1, 2)" in outcome.reason


async def test_a_reference_that_cannot_go_in_a_filter_is_failed_before_any_request(
        sim: PrestaShopSimulator, shop: PrestaShopConnector) -> None:
    assert isinstance(await shop.send(make_update("A]|B", "Shipped")), Failed)
    assert sim.requests == 0


# -- the webservice's errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "said"), [
    ("X" * 32, "Authentification key is not active (code 20); No permission for this authentication key (code 21)"),
    ("short-key-for-a-format-check-xx", "Invalid authentication key format (code 18)"),
])
async def test_a_refused_key_is_failed_in_the_webservices_words(key: str, said: str) -> None:
    sim = PrestaShopSimulator()
    async with opened(sim, api_key=key) as cart:
        result = await cart.test_connection()
    assert not result.ok and result.detail == f"PrestaShop refused the webservice key (HTTP 401): {said}"


async def test_no_credential_at_all_is_the_dispatchers_bare_401() -> None:
    reply = await httpx.AsyncClient(transport=simulator_transport(PrestaShopSimulator())).get(
        "https://shop.test/api/orders/5?output_format=JSON")
    assert reply.status_code == 401 and reply.text == "401 Unauthorized" and "Basic realm" in reply.headers[
        "www-authenticate"]


async def test_the_connection_test_names_the_version(shop: PrestaShopConnector) -> None:
    result = await shop.test_connection()
    assert result.ok and result.detail == "PrestaShop 8.1.7 webservice answers; the key reads 13 order statuses"


async def test_a_key_without_permission_is_failed_in_the_webservices_words(sim: PrestaShopSimulator) -> None:
    sim.permissions["order_histories"] = {"GET"}
    async with opened(sim) as cart:
        outcome = await cart.send(make_update("5", "Shipped"))
    assert outcome == Failed("PrestaShop refused (HTTP 405): Method POST is not allowed for the resource "
                             "order_histories with this authentication key (code 25)")


def reply(status: int, body: str, path: str = "/api/orders/5") -> httpx.Response:
    return httpx.Response(status, text=body, request=httpx.Request("GET", f"https://shop.test{path}"))


def test_classify_reads_the_webservices_own_codes() -> None:
    cart = PrestaShopConnector(wrap_secrets(SETTINGS, PrestaShopConnector.settings_schema))
    disabled = reply(503, '{"errors":[{"code":22,"message":"The PrestaShop webservice is disabled. Please activate '
                          'it in the PrestaShop Back Office"}]}')
    assert isinstance(cart.outcome_for_response(disabled), Failed)
    unreadable = reply(500, "<?xml version=\"1.0\"?><prestashop><errors><error><code><![CDATA[127]]></code>"
                            "<message><![CDATA[XML error : String could not be parsed as XML]]></message></error>"
                            "</errors></prestashop>")
    assert cart.outcome_for_response(unreadable) == Failed(
        "PrestaShop could not read the request: XML error : String could not be parsed as XML (code 127)")
    assert isinstance(cart.outcome_for_response(reply(500, '{"errors":[{"code":46,"message":"Unable to save '
                                                               'resource"}]}')), RetryLater)
    assert isinstance(cart.outcome_for_response(reply(502, "<html>Bad Gateway</html>")), RetryLater)
    assert cart.outcome_for_response(reply(200, '{"order":{"id":5}}')) is None


async def test_a_bare_server_error_page_is_retried(sim: PrestaShopSimulator) -> None:
    transport = AnswerTransport(simulator_transport(sim))
    transport.answer_next(500)
    async with opened(sim, transport) as cart:
        assert isinstance(await cart.send(make_update("5", "Shipped")), RetryLater)


# -- a host's limit ----------------------------------------------------------------------------------------------


async def test_a_hosts_limit_is_a_429_with_retry_after_read_as_a_hold_for_the_store() -> None:
    sim = PrestaShopSimulator(quota=2, window_seconds=30.0)
    sim.add_order("5")
    async with opened(sim) as cart:
        outcome = await cart.send(make_update("5", "Shipped"))
        hint = cart.latest_limit_hint
    assert isinstance(outcome, RetryLater) and outcome.delay == 30.0
    assert sim.throttled == 1
    assert hint is not None and (hint.remaining, hint.reset_in) == (0, 30.0)


# -- the simulator refuses what the webservice refuses -------------------------------------------------------------


async def post(sim: PrestaShopSimulator, path: str, body: str, method: str = "POST",
               key: str = KEY) -> httpx.Response:
    async with httpx.AsyncClient(transport=simulator_transport(sim), auth=httpx.BasicAuth(key, "")) as client:
        return await client.request(method, f"https://shop.test/api/{path}", content=body,
                                    params={"output_format": "JSON"})


HISTORY = "<prestashop><order_history><id_order>{}</id_order><id_order_state>{}</id_order_state></order_history>" \
          "</prestashop>"


@pytest.mark.parametrize(("path", "body", "method", "status", "code"), [
    ("order_histories", "<prestashop><order_history><id_order>5</id_order>", "POST", 500, "127"),
    ("order_histories", "<prestashop><order_history><id_order>5</id_order></order_history></prestashop>",
     "POST", 400, "41"),
    ("order_histories", HISTORY.format(5, 99), "POST", 400, "85"),
    ("order_histories", HISTORY.format(77, 4), "POST", 500, "46"),
    ("order_histories", HISTORY.replace("<id_order>", "<id>3</id><id_order>").format(5, 4), "POST", 400, "91"),
    ("order_histories", '{"order_history": {"id_order": 5, "id_order_state": 4}}', "POST", 500, "127"),
    ("order_carriers/1", "<prestashop><order_carrier><id_order>5</id_order><id_carrier>3</id_carrier>"
                         "</order_carrier></prestashop>", "PUT", 400, "90"),
    ("order_carriers/1", "<prestashop><order_carrier><id>1</id><id_order>5</id_order><id_carrier>3</id_carrier>"
                         f"<tracking_number>{'1' * 65}</tracking_number></order_carrier></prestashop>", "PUT", 400,
     "85"),
    ("order_carriers/9", "<prestashop><order_carrier><id>9</id><id_order>5</id_order><id_carrier>3</id_carrier>"
                         "</order_carrier></prestashop>", "PUT", 404, "92"),
    ("order_states", "<prestashop><order_state><name>x</name></order_state></prestashop>", "POST", 405, "25"),
])
async def test_the_simulator_refuses_bodies_the_webservice_refuses(
        sim: PrestaShopSimulator, path: str, body: str, method: str, status: int, code: str) -> None:
    answer = await post(sim, path, body, method)
    assert answer.status_code == status, answer.text
    assert [c for c, _ in errors_in(answer.text)][:1] == [code], answer.text
    assert sim.order_state("5")["history"] == []  # type: ignore[index]


async def test_a_put_leaving_fields_out_nulls_them_as_the_webservice_does(sim: PrestaShopSimulator) -> None:
    answer = await post(sim, "order_carriers/1", "<prestashop><order_carrier><id>1</id><id_order>5</id_order>"
                        "<id_carrier>3</id_carrier><tracking_number>1Z</tracking_number></order_carrier>"
                        "</prestashop>", "PUT")
    assert answer.status_code == 200
    assert sim.order_carriers[1]["weight"] is None and sim.order_carriers[1]["tracking_number"] == "1Z"


async def test_errors_come_in_xml_without_output_format(sim: PrestaShopSimulator) -> None:
    async with httpx.AsyncClient(transport=simulator_transport(sim), auth=httpx.BasicAuth("X" * 32, "")) as client:
        answer = await client.get("https://shop.test/api/orders/5")
    assert answer.status_code == 401 and answer.text.startswith("<?xml")
    assert errors_in(answer.text) == [("20", "Authentification key is not active"),
                                      ("21", "No permission for this authentication key")]


async def test_a_good_history_row_sets_the_state_and_answers_201(sim: PrestaShopSimulator) -> None:
    answer = await post(sim, "order_histories?sendemail=1", HISTORY.format(5, 4))
    assert answer.status_code == 201 and answer.json()["order_history"]["id_order_state"] == "4"
    assert sim.order_state("5")["status"] == "Shipped"  # type: ignore[index]


@pytest.mark.parametrize("ask", [{"params": {"output_format": "JSON"}}, {"headers": {"Output-Format": "JSON"}},
                                 {"headers": {"Io-Format": "JSON"}}, {"params": {"io_format": "JSON"}}])
async def test_the_simulator_answers_json_however_the_webservice_takes_the_ask(
        sim: PrestaShopSimulator, ask: dict[str, Any]) -> None:
    async with httpx.AsyncClient(transport=simulator_transport(sim), auth=httpx.BasicAuth(KEY, "")) as client:
        answer = await client.get("https://shop.test/api/orders/5", **ask)
        plain = await client.get("https://shop.test/api/orders/5")
    assert answer.json()["order"]["current_state"] == "2"
    assert plain.text.startswith("<?xml") and "<current_state>2</current_state>" in plain.text


class OkPage(httpx.AsyncBaseTransport):
    """A proxy that answers 200 with its own page, whatever is asked."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"page": "maintenance"} if "orders" in request.url.path else None,
                              text=None if "orders" in request.url.path else "<html>maintenance</html>")


async def test_a_reply_not_shaped_as_the_webservices_is_retried_and_no_empty_status_list_is_kept(
        sim: PrestaShopSimulator) -> None:
    async with opened(sim, OkPage()) as cart:
        outcome = await cart.send(make_update("5", "Shipped"))
        result = await cart.test_connection()
        assert cart._states is None
    assert isinstance(outcome, RetryLater) and not result.ok and "no order statuses" in result.detail
    async with opened(sim, OkPage()) as cart:
        assert isinstance(await cart.send(make_update("XKBKNABJK", "Shipped")), Failed)  # [] is "none"
