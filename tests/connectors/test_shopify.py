"""The shopify connector's own behaviour: the mutations each value sends, read before write, Shopify's
refusals, its cost limit turned into limit hints, and the schema check that guards every document."""

from __future__ import annotations

import json
from typing import Any

import graphql
import httpx
import pytest
from cartstatus.connector import LimitHint, Tracking
from cartstatus.connectors.shopify import ShopifyConnector, documents
from cartstatus.connectors.shopify.connector import (
    ORDER_READ_COST,
    VOCABULARY,
    Shipment,
    order_gid,
    plan_shipments,
)
from cartstatus.connectors.shopify.simulator import SDL, ShopifySimulator, requested_cost, schema
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, RetryLater
from cartstatus.secrets import wrap_secrets
from cartstatus.testing import SimulatorTransport, make_update

from .spec_graphql import GraphQLCheck, RequestBreaksSchema, check_document

TOKEN = "shpat_test_access_token_1"
SETTINGS = {"shop": "test-store.myshopify.com", "access_token": TOKEN}
UPS = Tracking("UPS", "1Z999AA10123456784")
UPS_2 = Tracking("UPS", "1Z999AA10123456785")
FEDEX = Tracking("FedEx", "794644790132")
CHECK = GraphQLCheck("shopify-admin-2026-07.graphql", path=r"/admin/api/2026-07/graphql\.json",
                     credential_header="X-Shopify-Access-Token")


class Recording(SimulatorTransport):
    """The simulator, every request checked against Shopify's schema and kept as (root field, variables)."""

    def __init__(self, sim: ShopifySimulator) -> None:
        super().__init__(sim.app(), timeout_cap=2.0)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.urls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        CHECK(request)
        body = json.loads(request.content)
        operation = graphql.parse(body["query"]).definitions[0]
        assert isinstance(operation, graphql.OperationDefinitionNode)
        root = operation.selection_set.selections[0]
        assert isinstance(root, graphql.FieldNode)
        self.sent.append((root.name.value, body["variables"]))
        self.urls.append(str(request.url))
        return await super().handle_async_request(request)

    def fields(self) -> list[str]:
        return [name for name, _ in self.sent]


class Hints:
    """A stand-in for the controller's pacer: every hint the connector gives."""

    def __init__(self) -> None:
        self.hints: list[LimitHint] = []

    async def acquire(self) -> None:
        return None

    def hint(self, hint: LimitHint) -> None:
        self.hints.append(hint)


@pytest.fixture
def sim() -> ShopifySimulator:
    return ShopifySimulator(access_token=TOKEN)


def connector(transport: httpx.AsyncBaseTransport, **settings: Any) -> ShopifyConnector:
    return ShopifyConnector(wrap_secrets({**SETTINGS, **settings}, ShopifyConnector.settings_schema),
                            transport=transport)


async def send(sim: ShopifySimulator, ref: str, value: str, tracking: tuple[Tracking, ...] = (),
               **kw: Any) -> tuple[Any, Recording]:
    transport = Recording(sim)
    cart = connector(transport)
    try:
        return await cart.send(make_update(ref, value, tracking=tracking, **kw)), transport
    finally:
        await cart.aclose()


# -- settings and the map --------------------------------------------------------------


def test_endpoint_from_the_shop_the_version_and_api_base() -> None:
    assert connector(httpx.MockTransport(lambda r: httpx.Response(500))).endpoint == \
        "https://test-store.myshopify.com/admin/api/2026-07/graphql.json"
    other = connector(httpx.MockTransport(lambda r: httpx.Response(500)), api_version="2026-10",
                      api_base="http://proxy.test:8080/")
    assert other.endpoint == "http://proxy.test:8080/admin/api/2026-10/graphql.json"


def test_the_default_map_names_only_labels_shopify_has_and_leaves_the_rest_to_the_store() -> None:
    standard = {label for _, label, _ in DEFAULT_STATUS_EVENTS}
    mapping = ShopifyConnector.default_status_map
    assert set(mapping) <= standard and set(mapping.values()) <= set(VOCABULARY)
    assert mapping["Shipped"] == "fulfilled" and mapping["Cancelled"] == "cancelled"
    assert mapping["Completed"] == "closed" and mapping["Payment Received"] == "paid"
    assert mapping["On Hold"] == "on-hold"
    # Shopify has no received, partly-shipped, ship-date or refund state a status change could set.
    assert not {"Received", "Partially Shipped", "Ship Date Set", "Refunded"} & set(mapping)


def test_order_references_become_shopify_gids() -> None:
    assert order_gid("450789469") == "gid://shopify/Order/450789469"
    assert order_gid(" gid://shopify/Order/1 ") == "gid://shopify/Order/1"


# -- the requests for each value ------------------------------------------------------------


async def test_fulfilled_reads_the_order_then_ships_each_carrier_in_its_own_fulfilment(sim: ShopifySimulator) -> None:
    sim.add_order("1001")
    outcome, sent = await send(sim, "1001", "fulfilled", (UPS, FEDEX, UPS_2))
    assert isinstance(outcome, Delivered), outcome
    assert sent.urls[0] == "https://test-store.myshopify.com/admin/api/2026-07/graphql.json"
    assert sent.fields() == ["order", "fulfillmentCreate", "fulfillmentCreate"]
    assert sent.sent[0][1] == {"id": "gid://shopify/Order/1001"}
    lines = list(next(iter(sim.orders["1001"].fulfillment_orders.values()))["lines"])
    fo = next(iter(sim.orders["1001"].fulfillment_orders))
    assert sent.sent[1][1] == {"fulfillment": {
        "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo,
                                         "fulfillmentOrderLineItems": [{"id": lines[0], "quantity": 1}]}],
        "notifyCustomer": False,
        "trackingInfo": {"company": "UPS", "numbers": [UPS.number, UPS_2.number]}}}
    assert sent.sent[2][1]["fulfillment"]["trackingInfo"] == {"company": "FedEx", "numbers": [FEDEX.number]}
    assert sent.sent[2][1]["fulfillment"]["lineItemsByFulfillmentOrder"][0]["fulfillmentOrderLineItems"] == [
        {"id": lines[1], "quantity": 2}]
    assert sorted(sim.tracking_numbers("1001")) == sorted([("UPS", UPS.number), ("UPS", UPS_2.number),
                                                           ("FedEx", FEDEX.number)])
    assert sim.order_state("1001")["fulfillment"] == "FULFILLED"  # type: ignore[index]


async def test_one_carrier_is_one_fulfilment_of_everything_open(sim: ShopifySimulator) -> None:
    sim.add_order("1002")
    outcome, sent = await send(sim, "1002", "fulfilled", (UPS, UPS_2))
    assert isinstance(outcome, Delivered)
    assert sent.fields() == ["order", "fulfillmentCreate"]
    fo = next(iter(sim.orders["1002"].fulfillment_orders))
    assert sent.sent[1][1]["fulfillment"]["lineItemsByFulfillmentOrder"] == [{"fulfillmentOrderId": fo}]


async def test_fulfilled_without_tracking_ships_without_tracking_info(sim: ShopifySimulator) -> None:
    sim.add_order("1003")
    outcome, sent = await send(sim, "1003", "fulfilled")
    assert isinstance(outcome, Delivered) and "without tracking" in outcome.detail
    assert "trackingInfo" not in sent.sent[1][1]["fulfillment"]


@pytest.mark.parametrize(("value", "mutation", "variables"), [
    ("paid", "orderMarkAsPaid", {"input": {"id": "gid://shopify/Order/1004"}}),
    ("closed", "orderClose", {"input": {"id": "gid://shopify/Order/1004"}}),
    ("on-hold", "tagsAdd", {"id": "gid://shopify/Order/1004", "tags": ["cartstatus:on-hold"]}),
    ("cancelled", "orderCancel", {"orderId": "gid://shopify/Order/1004", "reason": "OTHER", "restock": False,
                                  "notifyCustomer": False,
                                  "staffNote": "Cancelled in the order manager (order OM-1004): out of stock"}),
])
async def test_each_value_is_its_own_mutation(sim: ShopifySimulator, value: str, mutation: str,
                                              variables: dict[str, Any]) -> None:
    sim.add_order("1004")
    outcome, sent = await send(sim, "1004", value, note="out of stock")
    assert isinstance(outcome, Delivered), outcome
    assert sent.sent == [("order", {"id": "gid://shopify/Order/1004"}), (mutation, variables)]
    assert sim.order_state("1004")["status"] == value  # type: ignore[index]


async def test_a_new_status_tag_replaces_the_old_one_and_other_values_remove_it(sim: ShopifySimulator) -> None:
    sim.add_order("1005", "on-hold")
    sim.orders["1005"].tags.append("VIP")  # the merchant's own tag stays
    outcome, sent = await send(sim, "1005", "backordered")
    assert isinstance(outcome, Delivered)
    assert sent.sent[1:] == [("tagsRemove", {"id": "gid://shopify/Order/1005", "tags": ["cartstatus:on-hold"]}),
                             ("tagsAdd", {"id": "gid://shopify/Order/1005", "tags": ["cartstatus:backordered"]})]
    outcome, sent = await send(sim, "1005", "fulfilled", (UPS,))
    assert isinstance(outcome, Delivered)
    assert sent.fields() == ["order", "fulfillmentCreate", "tagsRemove"]
    assert sim.orders["1005"].tags == ["VIP"]
    assert sim.order_state("1005")["status"] == "fulfilled"  # type: ignore[index]


async def test_cancelled_sends_no_tracking_and_says_so(sim: ShopifySimulator) -> None:
    sim.add_order("1006")
    outcome, sent = await send(sim, "1006", "cancelled", (UPS,))
    assert isinstance(outcome, Delivered) and "a cancelled order ships nothing" in outcome.detail
    assert sent.fields() == ["order", "orderCancel"]
    assert sim.tracking_numbers("1006") == [] and sim.order_state("1006")["status"] == "cancelled"  # type: ignore[index]


# -- read before write -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["fulfilled", "paid", "closed", "cancelled", "processing"])
async def test_what_shopify_already_has_is_already_done_after_one_read(sim: ShopifySimulator, value: str) -> None:
    sim.add_order("1010", value)
    tracking = (UPS,) if value == "fulfilled" else ()
    if tracking:
        sim.orders["1010"].fulfillments[0]["tracking"] = [("UPS", UPS.number)]
    outcome, sent = await send(sim, "1010", value, tracking)
    assert isinstance(outcome, AlreadyDone), outcome
    assert sent.fields() == ["order"]


async def test_a_number_shopify_holds_is_not_shipped_again_and_a_new_one_is(sim: ShopifySimulator) -> None:
    sim.add_order("1011")
    first, _ = await send(sim, "1011", "paid", (UPS,))
    assert isinstance(first, Delivered)
    sim.orders["1011"].fulfillment_orders[next(iter(sim.orders["1011"].fulfillment_orders))]["status"] = "OPEN"
    again, sent = await send(sim, "1011", "paid", (UPS,))
    assert isinstance(again, AlreadyDone) and sent.fields() == ["order"]
    assert sim.tracking_numbers("1011") == [("UPS", UPS.number)]


async def test_more_carriers_than_lines_are_told_in_the_outcome(sim: ShopifySimulator) -> None:
    sim.add_order("1012", lines=(1,))
    outcome, sent = await send(sim, "1012", "fulfilled", (UPS, FEDEX))
    assert isinstance(outcome, Delivered)
    assert sent.fields() == ["order", "fulfillmentCreate"]
    assert "FedEx numbers 794644790132 not recorded" in outcome.detail
    assert sim.tracking_numbers("1012") == [("UPS", UPS.number)]


async def test_a_later_parcel_of_the_same_carrier_joins_its_fulfilment_keeping_the_numbers_held(
        sim: ShopifySimulator) -> None:
    sim.add_order("1013")
    await send(sim, "1013", "fulfilled", (UPS,))
    outcome, sent = await send(sim, "1013", "fulfilled", (UPS, UPS_2))
    assert isinstance(outcome, Delivered), outcome
    fulfilment = sim.orders["1013"].fulfillments[0]["id"]
    assert sent.sent[1:] == [("fulfillmentTrackingInfoUpdate", {
        "fulfillmentId": fulfilment, "notifyCustomer": False,
        "trackingInfoInput": {"company": "UPS", "numbers": [UPS.number, UPS_2.number]}})]
    assert sim.tracking_numbers("1013") == [("UPS", UPS.number), ("UPS", UPS_2.number)]
    again, sent = await send(sim, "1013", "fulfilled", (UPS, UPS_2))
    assert isinstance(again, AlreadyDone) and sent.fields() == ["order"]


async def test_numbers_for_an_order_shipped_without_tracking_go_on_that_fulfilment(sim: ShopifySimulator) -> None:
    sim.add_order("1014", "fulfilled")
    outcome, sent = await send(sim, "1014", "closed", (FEDEX,))
    assert isinstance(outcome, Delivered), outcome
    assert sent.fields() == ["order", "fulfillmentTrackingInfoUpdate", "orderClose"]
    assert sim.tracking_numbers("1014") == [("FedEx", FEDEX.number)]


def test_shipments_take_whole_lines_in_order_the_last_carrier_the_rest() -> None:
    lines = [("fo1", "a", 1), ("fo1", "b", 2), ("fo2", "c", 3)]
    shipments, left = plan_shipments(lines, [("UPS", ["1"]), ("FedEx", ["2"])])
    assert left == []
    assert shipments == [Shipment("UPS", ("1",), {"fo1": [("a", 1)]}),
                         Shipment("FedEx", ("2",), {"fo1": [("b", 2)], "fo2": [("c", 3)]})]
    assert plan_shipments([], [("UPS", ["1"])]) == ([], [("UPS", ["1"])])


# -- Shopify's refusals ---------------------------------------------------------------------------


async def test_an_unknown_order_is_failed_naming_it(sim: ShopifySimulator) -> None:
    outcome, sent = await send(sim, "404404", "fulfilled", (UPS,))
    assert isinstance(outcome, Failed) and "gid://shopify/Order/404404" in outcome.reason
    assert sent.fields() == ["order"]


async def test_shopify_refuses_to_cancel_a_fulfilled_order_in_its_own_words(sim: ShopifySimulator) -> None:
    sim.add_order("1020", "fulfilled")
    outcome, _ = await send(sim, "1020", "cancelled")
    assert outcome == Failed("the cart refused: INVALID: Cannot cancel an order with fulfillments that can't be "
                             "cancelled (orderId)")


async def test_a_cancelled_order_cannot_be_fulfilled(sim: ShopifySimulator) -> None:
    sim.add_order("1021", "cancelled")
    outcome, sent = await send(sim, "1021", "fulfilled", (UPS,))
    assert isinstance(outcome, Failed) and "is cancelled" in outcome.reason
    assert sent.fields() == ["order"]


async def test_a_user_error_is_failed_with_its_message(sim: ShopifySimulator) -> None:
    sim.add_order("1022")
    sim.orders["1022"].financial = "AUTHORIZED"  # Shopify will not mark it paid: capture it instead
    outcome, _ = await send(sim, "1022", "paid")
    assert outcome == Failed("the cart refused: Order cannot be marked as paid. (id)")


async def test_nothing_fulfillable_is_failed_not_already_done(sim: ShopifySimulator) -> None:
    sim.add_order("1023")
    for fo in sim.orders["1023"].fulfillment_orders.values():
        fo["status"] = "ON_HOLD"
    outcome, sent = await send(sim, "1023", "fulfilled")
    assert isinstance(outcome, Failed) and "ON_HOLD" in outcome.reason
    assert sent.fields() == ["order"]


async def test_a_refused_token_is_failed_with_shopifys_words(sim: ShopifySimulator) -> None:
    cart = ShopifyConnector(wrap_secrets({**SETTINGS, "access_token": "shpat_wrong_token_9"},
                                         ShopifyConnector.settings_schema), transport=Recording(sim))
    try:
        outcome = await cart.send(make_update("1", "closed"))
        result = await cart.test_connection()
    finally:
        await cart.aclose()
    assert outcome == Failed("Shopify refused the access token (HTTP 401): [API] Invalid API key or access token "
                             "(unrecognized login or wrong password)")
    assert not result.ok and "Invalid API key" in result.detail and "shpat_wrong" not in result.detail


@pytest.mark.parametrize(("fault", "kind", "words"), [
    ("access_denied", Failed, "ACCESS_DENIED: Access denied for order field"),
    ("http_402", Failed, "HTTP 402 from the cart: {\"errors\":\"Unavailable Shop\"}"),
    ("http_429", RetryLater, "HTTP 429"),
    ("http_503", RetryLater, "HTTP 503"),
])
async def test_shopifys_errors(sim: ShopifySimulator, fault: str, kind: type, words: str) -> None:
    sim.add_order("1030")
    sim.fail_next(fault)
    outcome, _ = await send(sim, "1030", "closed")
    assert isinstance(outcome, kind) and words in outcome.reason, outcome


async def test_a_reply_that_is_not_graphql_is_retried() -> None:
    page = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>maintenance</html>"))
    cart = connector(page)
    try:
        outcome = await cart.send(make_update("1", "closed"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, RetryLater)


async def test_the_connection_test_names_the_store(sim: ShopifySimulator) -> None:
    transport = Recording(sim)
    cart = connector(transport)
    try:
        result = await cart.test_connection()
    finally:
        await cart.aclose()
    assert result.ok and "Kit Store (kit-store.myshopify.com)" in result.detail
    assert transport.fields() == ["shop"]


# -- the cost limit -----------------------------------------------------------------------------------


def cost_reply(available: float, requested: int = 179, throttled: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"extensions": {"cost": {
        "requestedQueryCost": requested, "actualQueryCost": None if throttled else 6,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}}}
    if throttled:
        body["errors"] = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
    else:
        body["data"] = {"shop": {"name": "x"}}
    return httpx.Response(200, json=body)


def hints_for(*replies: httpx.Response) -> tuple[ShopifyConnector, list[tuple[int | None, float | None]]]:
    cart = connector(httpx.MockTransport(lambda r: httpx.Response(500)))
    pacer = Hints()
    cart.pace_with(pacer)
    for reply in replies:
        cart.outcome_for_response(reply)
    return cart, [(h.remaining, None if h.reset_in is None else round(h.reset_in, 3)) for h in pacer.hints]


def test_the_bucket_is_told_in_requests_of_the_costliest_query() -> None:
    # 1000 points hold five order reads (179 each); a sixth fits once 74 more are restored (0.74 s at 100/s).
    _, hints = hints_for(cost_reply(1000.0))
    assert hints == [(5, 0.74)]


def test_an_emptied_bucket_holds_the_store_then_lets_one_request_through() -> None:
    _, hints = hints_for(cost_reply(78.0))
    assert hints == [(0, 1.01), (1, 2.8)]


def test_a_throttled_reply_holds_the_store_until_its_cost_is_restored_and_is_retry_later() -> None:
    cart, hints = hints_for(cost_reply(28.0, throttled=True))
    assert hints[0] == (0, 1.51)
    assert cart.throttled == 1
    assert cart.outcome_for_response(cost_reply(28.0, throttled=True)) == RetryLater(
        "the cart asks to wait: THROTTLED: Throttled", 1.51)


def test_a_costlier_query_seen_in_a_reply_becomes_the_unit() -> None:
    cart, hints = hints_for(cost_reply(1000.0, requested=400))
    assert cart.costliest == 400 and hints == [(2, 2.0)]


def test_the_simulator_charges_the_order_read_what_the_connector_counts_on() -> None:
    document = graphql.parse(documents.ORDER)
    operation = document.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    assert schema().query_type is not None
    assert requested_cost(operation.selection_set, schema().query_type, {}) == ORDER_READ_COST


async def test_a_throttled_request_is_sent_again_once_the_bucket_has_room() -> None:
    sim = ShopifySimulator(access_token=TOKEN, bucket_size=200.0, restore_rate=1000.0)
    sim.add_order("1040")
    sim.add_order("1041")
    transport = Recording(sim)
    cart = connector(transport)
    try:
        first = await cart.send(make_update("1040", "closed"))
        sim._available = 0.0  # the store's bucket emptied (by this app's other sends) between the two
        second = await cart.send(make_update("1041", "closed"))
    finally:
        await cart.aclose()
    assert isinstance(first, Delivered) and isinstance(second, Delivered), (first, second)
    assert sim.throttled == 1 and cart.throttled == 1
    assert transport.fields() == ["order", "orderClose", "order", "order", "orderClose"]


async def test_a_long_throttle_gives_the_record_back_with_the_wait() -> None:
    sim = ShopifySimulator(access_token=TOKEN, bucket_size=200.0, restore_rate=10.0)
    sim.add_order("1042")
    sim.available()
    sim._available = 0.0
    outcome, sent = await send(sim, "1042", "closed")
    assert isinstance(outcome, RetryLater) and outcome.delay is not None and outcome.delay > 15
    assert sent.fields() == ["order"] and sim.throttled == 1


# -- the schema check and the simulator's schema ----------------------------------------------------------


@pytest.fixture(scope="module")
def shopify_schema() -> graphql.GraphQLSchema:
    return CHECK.schema()


def test_every_document_validates_against_shopifys_schema(shopify_schema: graphql.GraphQLSchema) -> None:
    for name, document in documents.ALL.items():
        assert not graphql.validate(shopify_schema, graphql.parse(document)), name


@pytest.mark.parametrize(("document", "variables", "words"), [
    ("query { order(id: \"gid://shopify/Order/1\") { id status } }", {}, "Cannot query field 'status'"),
    ("mutation { orderClose(id: \"gid://shopify/Order/1\") { userErrors { message } } }", {},
     "Unknown argument 'id'"),
    (documents.FULFIL, {"fulfillment": {"trackingInfo": {"company": "UPS", "numbers": ["1"]}}},
     "lineItemsByFulfillmentOrder"),
    (documents.FULFIL, {"fulfillment": {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": "x"}],
                                        "trackingInfo": {"carrier": "UPS"}}}, "carrier"),
    (documents.CANCEL, {"orderId": "gid://shopify/Order/1", "reason": "CHANGED_MIND", "restock": False},
     "CHANGED_MIND"),
    (documents.CANCEL, {"orderId": "gid://shopify/Order/1", "reason": "OTHER"}, "restock"),
    (documents.TAGS_ADD, {"id": "gid://shopify/Order/1", "tags": [None]}, "tags"),
])
def test_the_schema_check_catches_bad_documents_and_bad_variables(
        shopify_schema: graphql.GraphQLSchema, document: str, variables: dict[str, Any], words: str) -> None:
    with pytest.raises(RequestBreaksSchema, match=words):
        check_document(shopify_schema, document, variables)


def test_the_schema_check_looks_at_the_request_itself() -> None:
    url = "https://test-store.myshopify.com/admin/api/2026-07/graphql.json"
    good = {"query": documents.SHOP, "variables": {}}
    headers = {"X-Shopify-Access-Token": "t"}
    CHECK(httpx.Request("POST", url, json=good, headers=headers))
    for request, words in [
        (httpx.Request("GET", url, headers=headers), "POSTed"),
        (httpx.Request("POST", url.replace("2026-07", "2025-01"), json=good, headers=headers), "endpoint"),
        (httpx.Request("POST", url, json=good), "X-Shopify-Access-Token"),
        (httpx.Request("POST", url, data={"query": documents.SHOP}, headers=headers), "content type"),
        (httpx.Request("POST", url, json={**good, "extra": 1}, headers=headers), "extra"),
    ]:
        with pytest.raises(RequestBreaksSchema, match=words):
            CHECK(request)


def _field_types(target: graphql.GraphQLSchema, type_name: str) -> dict[str, Any]:
    kind = target.type_map[type_name]
    if isinstance(kind, graphql.GraphQLEnumType):
        return {"values": set(kind.values)}
    if isinstance(kind, graphql.GraphQLScalarType):
        return {}
    return {name: (str(f.type), {a: str(v.type) for a, v in getattr(f, "args", {}).items()})
            for name, f in kind.fields.items()}  # type: ignore[union-attr]


def test_the_simulators_schema_is_a_subset_of_shopifys(shopify_schema: graphql.GraphQLSchema) -> None:
    ours = graphql.build_schema(SDL)
    for name in ours.type_map:
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        assert name in shopify_schema.type_map, f"Shopify has no type {name}"
        theirs, mine = _field_types(shopify_schema, name), _field_types(ours, name)
        if "values" in mine:
            assert mine["values"] <= theirs["values"], name
            continue
        for field_name, (field_type, args) in mine.items():
            assert field_name in theirs, f"Shopify's {name} has no field {field_name}"
            assert theirs[field_name][0] == field_type, f"{name}.{field_name}"
            for arg, arg_type in args.items():
                assert theirs[field_name][1].get(arg) == arg_type, f"{name}.{field_name}({arg})"


async def test_the_simulator_refuses_what_shopify_refuses(sim: ShopifySimulator) -> None:
    async with httpx.AsyncClient(transport=SimulatorTransport(sim.app()), base_url="https://s.test") as client:
        path = "/admin/api/2026-07/graphql.json"
        headers = {"X-Shopify-Access-Token": TOKEN}
        unknown = await client.post(path, headers=headers, json={"query": "{ order(id: \"1\") { status } }"})
        bad_enum = await client.post(path, headers=headers, json={"query": documents.CANCEL, "variables": {
            "orderId": "gid://shopify/Order/1", "reason": "NOPE", "restock": True}})
        no_query = await client.post(path, headers=headers, json={"variables": {}})
    assert unknown.status_code == 200 and "Cannot query field 'status'" in unknown.json()["errors"][0]["message"]
    assert bad_enum.status_code == 200 and "NOPE" in bad_enum.json()["errors"][0]["message"]
    assert no_query.status_code == 400 and no_query.json() == {
        "errors": {"query": "Required parameter missing or invalid"}}


async def test_the_simulator_records_what_it_applied(sim: ShopifySimulator) -> None:
    sim.add_order("1050")
    await send(sim, "1050", "closed")
    assert [name for name, _ in sim.mutations] == ["orderClose"]


class SendsABadCancel(ShopifyConnector):
    """A broken connector: a reason Shopify does not have."""

    async def _act(self, order: Any, value: str, update: Any) -> list[str]:
        await self.graphql(documents.CANCEL, {"orderId": order["id"], "reason": "CHANGED_MIND", "restock": False})
        return ["cancelled"]


async def test_the_kit_fails_a_connector_whose_request_breaks_shopifys_schema(sim: ShopifySimulator) -> None:
    from cartstatus.testing.simulator import CheckedTransport

    from .test_shopify_conformance import TestShopify

    sim.add_order("1060")
    kit = TestShopify()
    problems: list[str] = []
    kit.request_problems = problems  # type: ignore[attr-defined]
    cart = SendsABadCancel(wrap_secrets(SETTINGS, ShopifyConnector.settings_schema),
                           transport=CheckedTransport(SimulatorTransport(sim.app()), CHECK, problems))
    try:
        outcome = await cart.send(make_update("1060", "cancelled"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, Failed) and "CHANGED_MIND" in outcome.reason  # the simulator refuses it too
    with pytest.raises(AssertionError, match=r"break the cart's API description(.|\n)*CHANGED_MIND"):
        kit.assert_requests_follow_the_description()


async def test_a_timeout_after_a_throttle_is_not_sent_again(sim: ShopifySimulator) -> None:
    # A request that timed out may have run: only a THROTTLED refusal (which did not) is sent again.
    sim.add_order("1070")
    transport = Recording(sim)
    cart = connector(transport)
    cart.outcome_for_response(cost_reply(28.0, throttled=True))  # an earlier THROTTLED reply, read
    sim.fail_next("timeout")
    transport.timeout_cap = 0.05
    try:
        outcome = await cart.send(make_update("1070", "closed"))
    finally:
        await cart.aclose()
    assert isinstance(outcome, RetryLater) and "timed out" in outcome.reason
    assert transport.fields() == ["order"]


def test_a_throttled_reply_without_its_cost_still_holds_the_store() -> None:
    bare = httpx.Response(200, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})
    cart, hints = hints_for(bare)
    assert hints == [(0, None)]
    assert isinstance(cart.outcome_for_response(bare), RetryLater)


async def test_an_order_with_more_fulfilment_orders_than_one_read_says_so(sim: ShopifySimulator) -> None:
    order = sim.add_order("1080")
    for n in range(6):
        order.fulfillment_orders[f"gid://shopify/FulfillmentOrder/9{n}"] = {
            "status": "OPEN", "lines": {f"gid://shopify/FulfillmentOrderLineItem/9{n}": [1, 1]}}
    outcome, _ = await send(sim, "1080", "fulfilled", (UPS,))
    assert isinstance(outcome, Delivered) and "ship the others in Shopify" in outcome.detail
    assert sim.order_state("1080")["unshipped"] == 2  # type: ignore[index]
    again, sent = await send(sim, "1080", "fulfilled", (UPS,))
    assert isinstance(again, Failed) and "ship the others in Shopify" in again.reason
    assert sent.fields() == ["order"]


async def test_the_simulators_bucket_charges_the_requested_cost_then_refunds_to_the_actual() -> None:
    sim = ShopifySimulator(access_token=TOKEN, bucket_size=1000.0, restore_rate=0.001)
    sim.add_order("1090")
    async with httpx.AsyncClient(transport=SimulatorTransport(sim.app()), base_url="https://s.test") as client:
        reply = await client.post("/admin/api/2026-07/graphql.json", headers={"X-Shopify-Access-Token": TOKEN},
                                  json={"query": documents.ORDER, "variables": {"id": "gid://shopify/Order/1090"}})
    cost = reply.json()["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (179, 7)
    assert cost["throttleStatus"]["maximumAvailable"] == 1000.0 and cost["throttleStatus"]["restoreRate"] == 0.001
    assert 992.9 < cost["throttleStatus"]["currentlyAvailable"] < 993.1
    assert sim.points == 7


async def test_without_a_bucket_the_simulator_reports_a_full_standard_one(sim: ShopifySimulator) -> None:
    async with httpx.AsyncClient(transport=SimulatorTransport(sim.app()), base_url="https://s.test") as client:
        reply = await client.post("/admin/api/2026-07/graphql.json", headers={"X-Shopify-Access-Token": TOKEN},
                                  json={"query": documents.SHOP})
    assert reply.json()["extensions"]["cost"] == {"requestedQueryCost": 1, "actualQueryCost": 1, "throttleStatus": {
        "maximumAvailable": 2000.0, "currentlyAvailable": 2000.0, "restoreRate": 100.0}}
