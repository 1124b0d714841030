"""A Shopify store's Admin GraphQL API, the part the shopify connector uses, in memory (tests, benchmarks).

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``, answered as Shopify documents:

- the request is parsed, validated and run by graphql-core against :data:`SDL`, a subset of Shopify's own
  2026-07 schema (the same type, field and argument names and types; a test checks it against the full
  schema), so a document or variables Shopify would refuse are refused here too, with HTTP 200 and
  ``errors``, and a reply holds exactly the fields asked for;
- refusals of a mutation are its ``userErrors`` (``orderCancelUserErrors`` for ``orderCancel``), HTTP 200;
- a wrong token is HTTP 401 ``{"errors": "[API] Invalid API key or access token (unrecognized login or
  wrong password)"}``; a body without ``query`` is HTTP 400; an unknown order is ``"order": null``;
- every reply carries ``extensions.cost`` (``requestedQueryCost``, ``actualQueryCost``, ``throttleStatus``).
  With ``bucket_size`` set, the bucket is enforced as Shopify's leaky bucket: a request is charged its
  requested cost before it runs (refused with ``THROTTLED``, HTTP 200, when the bucket holds less), then
  refunded the difference to its actual cost; ``restore_rate`` points come back each second. Costs follow
  Shopify's rules of thumb: an object 1, a scalar or enum 0, ``first: n`` n times its selection (plus 2 on
  a connection), a mutation 10.

Orders have one fulfilment order with two lines by default (quantities 1 and 2), a PENDING financial status
(a manual payment method) and no tags.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import graphql
from graphql import (
    FieldNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    get_named_type,
    value_from_ast_untyped,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import CANCELLED, CLOSED, FULFILLED, PAID, TAG_PREFIX, TAGGED

#: The subset of Shopify's Admin schema (2026-07) this simulator serves: names and types as Shopify's.
SDL = """
schema { query: QueryRoot mutation: Mutation }
scalar DateTime
scalar URL
interface Node { id: ID! }
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY STAFF OTHER }
enum OrderDisplayFinancialStatus { PENDING AUTHORIZED PARTIALLY_PAID PARTIALLY_REFUNDED VOIDED PAID REFUNDED EXPIRED }
enum OrderDisplayFulfillmentStatus {
  UNFULFILLED PARTIALLY_FULFILLED FULFILLED RESTOCKED PENDING_FULFILLMENT OPEN IN_PROGRESS ON_HOLD SCHEDULED
  REQUEST_DECLINED
}
enum FulfillmentStatus { PENDING OPEN SUCCESS CANCELLED ERROR FAILURE }
enum FulfillmentOrderStatus { OPEN IN_PROGRESS CANCELLED INCOMPLETE CLOSED SCHEDULED ON_HOLD }
enum OrderCancelUserErrorCode {
  NO_REFUND_PERMISSION NO_REFUND_TO_STORE_CREDIT_PERMISSION STORE_CREDIT_REFUND_EXPIRATION_IN_PAST
  STORE_CREDIT_REFUND_MISSING_CUSTOMER STORE_CREDIT_REFUND_B2B_NOT_SUPPORTED NOT_FOUND INVALID INTERNAL_ERROR
}
type Shop { name: String! myshopifyDomain: String! }
type Order implements Node {
  id: ID!
  name: String!
  closed: Boolean!
  closedAt: DateTime
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  tags: [String!]!
  note: String
  fulfillments(first: Int, query: String): [Fulfillment!]!
  fulfillmentOrders(displayable: Boolean = false, first: Int, after: String, last: Int, before: String,
                    reverse: Boolean = false, query: String): FulfillmentOrderConnection!
}
type Fulfillment implements Node {
  id: ID!
  status: FulfillmentStatus!
  trackingInfo(first: Int): [FulfillmentTrackingInfo!]!
}
type FulfillmentTrackingInfo { company: String number: String url: URL }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! }
type FulfillmentOrderConnection { nodes: [FulfillmentOrder!]! pageInfo: PageInfo! }
type FulfillmentOrder implements Node {
  id: ID!
  status: FulfillmentOrderStatus!
  lineItems(first: Int, after: String, last: Int, before: String,
            reverse: Boolean = false): FulfillmentOrderLineItemConnection!
}
type FulfillmentOrderLineItemConnection { nodes: [FulfillmentOrderLineItem!]! }
type FulfillmentOrderLineItem implements Node { id: ID! remainingQuantity: Int! totalQuantity: Int! }
type Job implements Node { id: ID! done: Boolean! }
type UserError { field: [String!] message: String! }
type OrderCancelUserError { code: OrderCancelUserErrorCode field: [String!] message: String! }
type FulfillmentCreatePayload { fulfillment: Fulfillment userErrors: [UserError!]! }
type FulfillmentTrackingInfoUpdatePayload { fulfillment: Fulfillment userErrors: [UserError!]! }
type OrderClosePayload { order: Order userErrors: [UserError!]! }
type OrderMarkAsPaidPayload { order: Order userErrors: [UserError!]! }
type OrderCancelPayload {
  job: Job
  orderCancelUserErrors: [OrderCancelUserError!]!
  userErrors: [UserError!]! @deprecated(reason: "Use `orderCancelUserErrors` instead.")
}
type TagsAddPayload { node: Node userErrors: [UserError!]! }
type TagsRemovePayload { node: Node userErrors: [UserError!]! }
input FulfillmentTrackingInput { number: String url: URL company: String numbers: [String!] urls: [URL!] }
input FulfillmentOrderLineItemInput { id: ID! quantity: Int! }
input FulfillmentOrderLineItemsInput {
  fulfillmentOrderId: ID!
  fulfillmentOrderLineItems: [FulfillmentOrderLineItemInput!]
}
input FulfillmentInput {
  trackingInfo: FulfillmentTrackingInput
  notifyCustomer: Boolean
  lineItemsByFulfillmentOrder: [FulfillmentOrderLineItemsInput!]!
}
input OrderCloseInput { id: ID! }
input OrderMarkAsPaidInput { id: ID! }
type QueryRoot { order(id: ID!): Order shop: Shop! job(id: ID!): Job }
type Mutation {
  fulfillmentCreate(fulfillment: FulfillmentInput!, message: String): FulfillmentCreatePayload
  fulfillmentTrackingInfoUpdate(fulfillmentId: ID!, trackingInfoInput: FulfillmentTrackingInput!,
                                notifyCustomer: Boolean): FulfillmentTrackingInfoUpdatePayload
  orderClose(input: OrderCloseInput!): OrderClosePayload
  orderMarkAsPaid(input: OrderMarkAsPaidInput!): OrderMarkAsPaidPayload
  orderCancel(orderId: ID!, refund: Boolean, restock: Boolean!, reason: OrderCancelReason!,
              notifyCustomer: Boolean = false, staffNote: String = null): OrderCancelPayload
  tagsAdd(id: ID!, tags: [String!]!): TagsAddPayload
  tagsRemove(id: ID!, tags: [String!]!): TagsRemovePayload
}
"""

_SCHEMA: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = build_schema(SDL)
    return _SCHEMA


UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
MUTATION_COST = 10
#: Shopify's Standard plan: a bucket of 2,000 points, 100 restored a second.
STANDARD_BUCKET, STANDARD_RESTORE = 2000.0, 100.0
FAULTS = ("http_429", "http_503", "timeout", "access_denied", "http_402")
THROTTLED_DOCS = "https://shopify.dev/api/usage/rate-limits"


def _first(node: FieldNode, variables: dict[str, Any]) -> int | None:
    for arg in node.arguments or ():
        if arg.name.value == "first":
            value = value_from_ast_untyped(arg.value, variables)
            return int(value) if isinstance(value, int) else None
    return None


def requested_cost(sel: SelectionSetNode | None, parent: GraphQLObjectType, variables: dict[str, Any]) -> int:
    """What Shopify charges before running a selection: objects 1, scalars 0, ``first: n`` times n (a
    connection: 2, plus n times its ``nodes``/``edges``, plus its ``pageInfo`` once)."""
    total = 0
    for node in (sel.selections if sel else ()):
        if not isinstance(node, FieldNode) or node.name.value.startswith("__"):
            continue
        definition = parent.fields.get(node.name.value)
        if definition is None:
            continue
        named = get_named_type(definition.type)
        if not isinstance(named, GraphQLObjectType):
            if node.selection_set is not None and hasattr(named, "fields"):  # an interface: its own fields
                total += 1
            continue
        first = _first(node, variables)
        if first is not None and named.name.endswith("Connection") and node.selection_set is not None:
            each = [n for n in node.selection_set.selections
                    if isinstance(n, FieldNode) and n.name.value in ("nodes", "edges")]
            once = [n for n in node.selection_set.selections if n not in each]
            total += 2 + first * requested_cost(SelectionSetNode(selections=tuple(each)), named, variables) \
                + requested_cost(SelectionSetNode(selections=tuple(once)), named, variables)
            continue
        inner = requested_cost(node.selection_set, named, variables)
        total += 1 + inner if first is None else first * (1 + inner)
    return total


def actual_cost(value: Any) -> int:
    """What the reply held: one point per object."""
    if isinstance(value, dict):
        return 1 + sum(actual_cost(v) for v in value.values())
    if isinstance(value, list):
        return sum(actual_cost(v) for v in value)
    return 0


@dataclass
class SimOrder:
    gid: str
    name: str
    financial: str = "PENDING"
    closed: bool = False
    cancelled_at: str | None = None
    cancel_reason: str | None = None
    tags: list[str] = field(default_factory=list)
    # fulfilment orders: {id: {"status": ..., "lines": {line id: [total, remaining]}}}
    fulfillment_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # fulfilments: {"id", "status", "tracking": [(company, number)], "lines": [(line id, qty)]}
    fulfillments: list[dict[str, Any]] = field(default_factory=list)
    staff_notes: list[str] = field(default_factory=list)
    # The latest of "fulfilled" / "paid" done to it, for order_state's status.
    latest: str | None = None
    initial: str = "New"

    def remaining(self) -> int:
        return sum(line[1] for fo in self.fulfillment_orders.values() for line in fo["lines"].values())

    def fulfillment_status(self) -> str:
        shipped = sum(qty for f in self.fulfillments if f["status"] == "SUCCESS" for _, qty in f["lines"])
        if self.remaining() == 0 and shipped:
            return "FULFILLED"
        if shipped:
            return "PARTIALLY_FULFILLED"
        if any(fo["status"] == "ON_HOLD" for fo in self.fulfillment_orders.values()):
            return "ON_HOLD"
        return "UNFULFILLED"


@dataclass
class ShopifySimulator:
    """The kit's simulator protocol (see :mod:`cartstatus.testing.simulator`), plus Shopify's cost limit."""

    access_token: str = "shpat_kit_access_token_1"
    shop_name: str = "Kit Store"
    domain: str = "kit-store.myshopify.com"
    retry_after: int = 2
    permanent_fault: str = "access_denied"
    #: Points in the bucket (Shopify's maximumAvailable); None: never throttled (the kit's speed).
    bucket_size: float | None = None
    #: Points restored a second (Shopify's restoreRate).
    restore_rate: float = STANDARD_RESTORE
    requests: int = 0
    throttled: int = 0  # THROTTLED replies given
    points: float = 0.0  # actual cost charged, in all
    orders: dict[str, SimOrder] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    mutations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (field, arguments) applied
    _available: float | None = None
    _at: float = 0.0
    _ids: Any = field(default_factory=lambda: itertools.count(1001))

    # -- the kit's protocol ----------------------------------------------------

    def add_order(self, ref: str, status: str = "New", *, lines: tuple[int, ...] = (1, 2)) -> SimOrder:
        """An open, unpaid, unfulfilled order ``ref`` (its numeric id), with lines of these quantities;
        ``status`` one of the connector's values puts it there as Shopify would have it."""
        order = SimOrder(gid=f"gid://shopify/Order/{ref}", name=f"#{ref}", initial=status)
        fo = f"gid://shopify/FulfillmentOrder/{next(self._ids)}"
        order.fulfillment_orders[fo] = {"status": "OPEN", "lines": {
            f"gid://shopify/FulfillmentOrderLineItem/{next(self._ids)}": [qty, qty] for qty in lines}}
        self.orders[ref] = order
        if status == FULFILLED:
            self._fulfil(order, [{"fulfillmentOrderId": fo}], None)
        elif status == PAID:
            order.financial, order.latest = "PAID", PAID
        elif status == CLOSED:
            order.closed = True
        elif status == CANCELLED:
            self._cancel(order, "OTHER", None)
        elif status in TAGGED:
            order.tags.append(f"{TAG_PREFIX}{status}")
        return order

    def order(self, gid: str) -> SimOrder | None:
        return self.orders.get(gid.removeprefix("gid://shopify/Order/")) if gid.startswith(
            "gid://shopify/Order/") else None

    def status(self, order: SimOrder) -> str:
        """The order as one of the connector's values: its status tag, else cancelled, closed, else the
        latest of fulfilled and paid, else the status it was added with."""
        tags = [t.removeprefix(TAG_PREFIX) for t in order.tags if t.startswith(TAG_PREFIX)]
        if tags:
            return tags[-1]
        if order.cancelled_at:
            return CANCELLED
        if order.closed:
            return CLOSED
        return order.latest or order.initial

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        if order is None:
            return None
        return {"status": self.status(order), "closed": order.closed, "cancelled": bool(order.cancelled_at),
                "financial": order.financial, "fulfillment": order.fulfillment_status(), "tags": list(order.tags),
                "fulfillments": [{"tracking": [list(t) for t in f["tracking"]],
                                  "quantity": sum(q for _, q in f["lines"])} for f in order.fulfillments],
                "unshipped": order.remaining()}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self.orders.get(ref)
        return [] if order is None else [t for f in order.fulfillments if f["status"] == "SUCCESS"
                                         for t in f["tracking"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; the simulator knows {', '.join(FAULTS)}")
        self.faults += [kind] * count

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/admin/api/{version}/graphql.json", self._graphql, methods=["POST"])])

    # -- the bucket --------------------------------------------------------------

    def available(self, now: float | None = None) -> float:
        maximum = self.bucket_size if self.bucket_size is not None else STANDARD_BUCKET
        if self.bucket_size is None:
            return maximum
        now = time.monotonic() if now is None else now
        if self._available is None:
            self._available, self._at = maximum, now
        self._available = min(maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now
        return self._available

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": {
            "maximumAvailable": self.bucket_size if self.bucket_size is not None else STANDARD_BUCKET,
            "currentlyAvailable": round(self.available(), 3),
            "restoreRate": self.restore_rate if self.bucket_size is not None else STANDARD_RESTORE}}

    # -- the endpoint --------------------------------------------------------------

    async def _graphql(self, request: Request) -> Response:
        self.requests += 1
        headers = {"X-Shopify-API-Version": request.path_params["version"]}
        if self.faults:
            fault = await self._fault(self.faults.pop(0), headers)
            if fault is not None:
                return fault
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return JSONResponse({"errors": UNAUTHORIZED}, status_code=401, headers=headers)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}}, status_code=400,
                                headers=headers)
        variables = body.get("variables") or {}
        try:
            document = graphql.parse(body["query"])
        except graphql.GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]}, headers=headers)
        problems = graphql.validate(schema(), document)
        if problems:
            return JSONResponse({"errors": [p.formatted for p in problems]}, headers=headers)
        operation = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
        assert operation is not None  # validated: a document has one
        mutation = operation.operation == OperationType.MUTATION
        root = schema().mutation_type if mutation else schema().query_type
        assert root is not None
        requested = (MUTATION_COST if mutation else 0) + requested_cost(
            operation.selection_set, root, variables if isinstance(variables, dict) else {})
        if self.bucket_size is not None:
            if self.available() < requested:
                self.throttled += 1
                return JSONResponse({"errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED", "documentation": THROTTLED_DOCS}}],
                    "extensions": {"cost": self._cost(requested, None)}}, headers=headers)
            self._available = self.available() - requested
        result = graphql.execute_sync(schema(), document, root_value=self._root(mutation),
                                 variable_values=variables if isinstance(variables, dict) else None)
        actual = (MUTATION_COST if mutation else 0) + (actual_cost(result.data) - 1 if result.data else 0)
        actual = min(actual, requested)
        self.points += actual
        if self.bucket_size is not None:
            self._available = min(self.bucket_size, self.available() + requested - actual)
        reply: dict[str, Any] = {}
        if result.errors:
            reply["errors"] = [e.formatted for e in result.errors]
        reply["data"] = result.data
        reply["extensions"] = {"cost": self._cost(requested, actual)}
        return JSONResponse(reply, headers=headers)

    async def _fault(self, kind: str, headers: dict[str, str]) -> Response | None:
        if kind == "timeout":
            await asyncio.sleep(3600)
        wait = {**headers, "Retry-After": str(self.retry_after)}
        if kind == "http_429":
            return JSONResponse({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                                           "resume uninterrupted service."}, status_code=429, headers=wait)
        if kind == "http_503":
            return JSONResponse({"errors": "Service Unavailable"}, status_code=503, headers=wait)
        if kind == "http_402":
            return JSONResponse({"errors": "Unavailable Shop"}, status_code=402, headers=headers)
        # access_denied: the app lacks a scope; Shopify answers HTTP 200 with an error naming it.
        return JSONResponse({"errors": [{"message": "Access denied for order field. Required access: "
                                                    "`read_orders` access scope.",
                                         "extensions": {"code": "ACCESS_DENIED",
                                                        "documentation": "https://shopify.dev/api/usage/access-scopes",
                                                        "requiredAccess": "`read_orders` access scope."}}],
                             "data": None}, headers=headers)

    # -- the resolvers: plain dicts, graphql-core's default resolver reads them -----------

    def _root(self, mutation: bool) -> dict[str, Any]:
        if mutation:
            return {"fulfillmentCreate": self._m_fulfil, "fulfillmentTrackingInfoUpdate": self._m_tracking,
                    "orderClose": self._m_close,
                    "orderMarkAsPaid": self._m_paid, "orderCancel": self._m_cancel,
                    "tagsAdd": self._m_tags_add, "tagsRemove": self._m_tags_remove}
        return {"order": lambda _info, id: self._order_view(self.order(id)),
                "shop": {"name": self.shop_name, "myshopifyDomain": self.domain},
                "job": lambda _info, id: {"id": id, "done": True}}

    def _order_view(self, order: SimOrder | None) -> dict[str, Any] | None:
        if order is None:
            return None

        def fulfillments(_info: Any, first: int | None = None, query: str | None = None) -> list[dict[str, Any]]:
            return [{"id": f["id"], "status": f["status"],
                     "trackingInfo": lambda _i, first=None, f=f: [{"company": c, "number": n, "url": None}
                                                                  for c, n in f["tracking"][:first]]}
                    for f in order.fulfillments[:first]]

        def fulfillment_orders(_info: Any, first: int | None = None, **_: Any) -> dict[str, Any]:
            return {"nodes": [{"id": fo_id, "status": fo["status"], "lineItems": lambda _i, first=None, fo=fo, **_k: {
                "nodes": [{"id": line, "totalQuantity": q[0], "remainingQuantity": q[1]}
                          for line, q in list(fo["lines"].items())[:first]]}}
                for fo_id, fo in list(order.fulfillment_orders.items())[:first]],
                "pageInfo": {"hasNextPage": first is not None and len(order.fulfillment_orders) > first,
                             "hasPreviousPage": False}}

        return {"id": order.gid, "name": order.name, "closed": order.closed,
                "closedAt": "2026-12-02T09:00:00Z" if order.closed else None, "cancelledAt": order.cancelled_at,
                "cancelReason": order.cancel_reason, "displayFinancialStatus": order.financial,
                "displayFulfillmentStatus": order.fulfillment_status(), "tags": list(order.tags), "note": None,
                "fulfillments": fulfillments, "fulfillmentOrders": fulfillment_orders}

    @staticmethod
    def _errors(*messages: tuple[list[str] | None, str]) -> list[dict[str, Any]]:
        return [{"field": where, "message": message} for where, message in messages]

    def _m_fulfil(self, _info: Any, fulfillment: dict[str, Any], message: str | None = None) -> dict[str, Any]:
        self.mutations.append(("fulfillmentCreate", fulfillment))
        by_order = fulfillment["lineItemsByFulfillmentOrder"]
        orders = {o.gid: o for o in self.orders.values()}
        owners = {gid for gid, o in orders.items() for item in by_order
                  if item["fulfillmentOrderId"] in o.fulfillment_orders}
        if len(owners) != 1:
            return {"fulfillment": None, "userErrors": self._errors(
                (["fulfillment", "lineItemsByFulfillmentOrder"], "Fulfillment order does not exist."))}
        order = orders[owners.pop()]
        tracking = fulfillment.get("trackingInfo") or {}
        numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else [])
        try:
            created = self._fulfil(order, by_order, tracking.get("company"), numbers)
        except ValueError as refusal:
            return {"fulfillment": None, "userErrors": self._errors((["fulfillment"], str(refusal)))}
        return {"fulfillment": {"id": created["id"], "status": created["status"],
                                "trackingInfo": lambda _i, first=None: [
                                    {"company": c, "number": n, "url": None} for c, n in created["tracking"]]},
                "userErrors": []}

    def _m_tracking(self, _info: Any, fulfillmentId: str, trackingInfoInput: dict[str, Any],
                    notifyCustomer: bool | None = None) -> dict[str, Any]:
        self.mutations.append(("fulfillmentTrackingInfoUpdate", {
            "fulfillmentId": fulfillmentId, "trackingInfoInput": trackingInfoInput}))
        found = next((f for o in self.orders.values() for f in o.fulfillments if f["id"] == fulfillmentId), None)
        if found is None or found["status"] != "SUCCESS":
            return {"fulfillment": None, "userErrors": self._errors((["fulfillmentId"], "Fulfillment not found."))}
        numbers = trackingInfoInput.get("numbers") or (
            [trackingInfoInput["number"]] if trackingInfoInput.get("number") else [])
        # Shopify replaces the fulfilment's tracking with what is given.
        found["tracking"] = [(trackingInfoInput.get("company"), n) for n in numbers]
        return {"fulfillment": {"id": found["id"], "status": found["status"], "trackingInfo": lambda _i, first=None: [
            {"company": c, "number": n, "url": None} for c, n in found["tracking"]]}, "userErrors": []}

    def _fulfil(self, order: SimOrder, by_order: list[dict[str, Any]], company: str | None,
                numbers: Sequence[str] = ()) -> dict[str, Any]:
        taken: list[tuple[dict[str, Any], str, int]] = []
        for item in by_order:
            fo = order.fulfillment_orders[item["fulfillmentOrderId"]]
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                raise ValueError(f"Fulfillment order {item['fulfillmentOrderId']} has an unfulfillable status= "
                                 f"{fo['status'].lower()}.")
            wanted = item.get("fulfillmentOrderLineItems")
            pairs = [(line, q[1]) for line, q in fo["lines"].items() if q[1] > 0] if wanted is None else [
                (w["id"], int(w["quantity"])) for w in wanted]
            for line, qty in pairs:
                if line not in fo["lines"]:
                    raise ValueError(f"Fulfillment order line item {line} does not exist.")
                if qty <= 0 or qty > fo["lines"][line][1]:
                    raise ValueError("Invalid fulfillment order line item quantity requested.")
                taken.append((fo, line, qty))
        if not taken:
            raise ValueError("Fulfillment must contain at least one line item.")
        for fo, line, qty in taken:
            fo["lines"][line][1] -= qty
        for fo in order.fulfillment_orders.values():
            if all(q[1] == 0 for q in fo["lines"].values()):
                fo["status"] = "CLOSED"
            elif fo["status"] == "OPEN":
                fo["status"] = "IN_PROGRESS"
        created = {"id": f"gid://shopify/Fulfillment/{next(self._ids)}", "status": "SUCCESS",
                   "tracking": [(company, n) for n in numbers], "lines": [(line, qty) for _, line, qty in taken]}
        order.fulfillments.append(created)
        order.latest = FULFILLED
        return created

    def _m_close(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.mutations.append(("orderClose", input))
        order = self.order(input["id"])
        if order is None:
            return {"order": None, "userErrors": self._errors((["id"], "Order does not exist"))}
        order.closed = True
        return {"order": self._order_view(order), "userErrors": []}

    def _m_paid(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.mutations.append(("orderMarkAsPaid", input))
        order = self.order(input["id"])
        if order is None:
            return {"order": None, "userErrors": self._errors((["id"], "Order does not exist"))}
        if order.cancelled_at or order.financial not in ("PENDING", "PARTIALLY_PAID", "EXPIRED"):
            return {"order": None, "userErrors": self._errors((["id"], "Order cannot be marked as paid."))}
        order.financial, order.latest = "PAID", PAID
        return {"order": self._order_view(order), "userErrors": []}

    def _m_cancel(self, _info: Any, orderId: str, restock: bool, reason: str, **rest: Any) -> dict[str, Any]:
        self.mutations.append(("orderCancel", {"orderId": orderId, "restock": restock, "reason": reason, **rest}))
        order = self.order(orderId)
        refusal = None
        if order is None:
            refusal = ("NOT_FOUND", "Order does not exist")
        elif order.cancelled_at:
            refusal = ("INVALID", "Order has already been cancelled")
        elif any(f["status"] == "SUCCESS" for f in order.fulfillments):
            refusal = ("INVALID", "Cannot cancel an order with fulfillments that can't be cancelled")
        if refusal is not None or order is None:
            code, message = refusal or ("INVALID", "")
            return {"job": None, "orderCancelUserErrors": [{"code": code, "field": ["orderId"], "message": message}],
                    "userErrors": [{"field": ["orderId"], "message": message}]}
        self._cancel(order, reason, rest.get("staffNote"))
        # Shopify cancels in a job; here it is done by the time the reply leaves, the job still says not done.
        return {"job": {"id": f"gid://shopify/Job/{next(self._ids)}", "done": False},
                "orderCancelUserErrors": [], "userErrors": []}

    def _cancel(self, order: SimOrder, reason: str, note: str | None) -> None:
        order.cancelled_at, order.cancel_reason = "2026-12-02T09:00:00Z", reason
        for fo in order.fulfillment_orders.values():
            if fo["status"] in ("OPEN", "IN_PROGRESS", "ON_HOLD", "SCHEDULED"):
                fo["status"] = "CLOSED" if any(q[1] < q[0] for q in fo["lines"].values()) else "CANCELLED"
        if note:
            order.staff_notes.append(note)

    def _tags(self, id: str, tags: list[str], add: bool) -> dict[str, Any]:
        self.mutations.append(("tagsAdd" if add else "tagsRemove", {"id": id, "tags": tags}))
        order = self.order(id)
        if order is None:
            return {"node": None, "userErrors": self._errors((["id"], "Order does not exist"))}
        if add:
            order.tags += [t.strip() for t in tags if t.strip() not in order.tags]
        else:
            order.tags = [t for t in order.tags if t not in tags]
        return {"node": {"id": order.gid, "__typename": "Order"}, "userErrors": []}

    def _m_tags_add(self, _info: Any, id: str, tags: list[str]) -> dict[str, Any]:
        return self._tags(id, tags, True)

    def _m_tags_remove(self, _info: Any, id: str, tags: list[str]) -> dict[str, Any]:
        return self._tags(id, tags, False)
