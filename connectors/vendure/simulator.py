"""A simulated Vendure Admin API: the GraphQL operations the connector uses, in memory, with faults.

It answers as Vendure 3 does (checked against a real one, see tests/realcarts/test_vendure.py): one endpoint,
``POST /admin-api`` with ``{"query", "variables", "operationName"}``; the ``login`` mutation gives its session
token in the ``vendure-auth-token`` header (and a session cookie, which Vendure reads before a bearer token); a
request with an unknown token is answered HTTP 200 with a ``FORBIDDEN`` error; refusals of a mutation are
ErrorResults (``__typename``, ``errorCode``, ``message``) in an HTTP 200; a query naming a field Vendure does
not have is answered HTTP 400, one leaving out a required variable HTTP 200, with Apollo Server's errors; an
unknown id is an ``ENTITY_NOT_FOUND`` error. Orders follow Vendure's default order and fulfillment processes:
Shipped and Delivered only through fulfillments of every item (which Vendure follows by moving the order),
PaymentSettled once settled payments cover the order, Cancelled after every line is cancelled.

It does not parse GraphQL: it finds the operation's root field and answers with everything the connector
selects. It speaks the conformance kit's simulator protocol (``app``, ``fail_next``, ``add_order``,
``order_state``, ``tracking_numbers``, ``requests``, ``retry_after``, ``permanent_fault``, ``logins``,
``expire_tokens``), and can play a host's request limit (``quota`` per ``window_seconds``, a plain 429 with
``Retry-After``: Vendure itself publishes none).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

FAULTS = ("http_429", "http_503", "http_4xx", "timeout", "forbidden")

#: Vendure's default order process: the states each state may move to (config/order/default-order-process).
ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "Created": ("AddingItems", "Draft"),
    "Draft": ("Cancelled", "ArrangingPayment"),
    "AddingItems": ("ArrangingPayment", "Cancelled"),
    "ArrangingPayment": ("PaymentAuthorized", "PaymentSettled", "AddingItems", "Cancelled"),
    "PaymentAuthorized": ("PaymentSettled", "Cancelled", "Modifying", "ArrangingAdditionalPayment"),
    "PaymentSettled": ("PartiallyDelivered", "Delivered", "PartiallyShipped", "Shipped", "Cancelled", "Modifying",
                       "ArrangingAdditionalPayment"),
    "PartiallyShipped": ("Shipped", "PartiallyDelivered", "Cancelled", "Modifying"),
    "Shipped": ("PartiallyDelivered", "Delivered", "Cancelled", "Modifying"),
    "PartiallyDelivered": ("Delivered", "Cancelled", "Modifying"),
    "Delivered": ("Cancelled",),
    "Modifying": ("PaymentAuthorized", "ArrangingAdditionalPayment", "PaymentSettled", "PartiallyShipped",
                  "Shipped", "PartiallyDelivered", "Delivered", "Cancelled"),
    "ArrangingAdditionalPayment": ("PaymentAuthorized", "PaymentSettled", "PartiallyShipped", "Shipped",
                                   "PartiallyDelivered", "Cancelled"),
    "Cancelled": (),
}
#: Vendure's default fulfillment process.
FULFILLMENT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "Created": ("Pending",),
    "Pending": ("Shipped", "Delivered", "Cancelled"),
    "Shipped": ("Delivered", "Cancelled"),
    "Delivered": ("Cancelled",),
    "Cancelled": (),
}
#: States in which an order's payments are settled.
PAID = ("PaymentSettled", "PartiallyShipped", "Shipped", "PartiallyDelivered", "Delivered")
#: The lines (quantities) of every simulated order: three items on two lines.
LINES = (2, 1)
FORBIDDEN_MESSAGE = "You are not currently authorized to perform this action"
#: Each root field the simulator knows, and the variables Vendure's schema requires of it (name, GraphQL type).
OPERATIONS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "login": ("Mutation", (("username", "String!"), ("password", "String!"))),
    "orders": ("Query", ()),
    "order": ("Query", (("id", "ID!"),)),
    "addFulfillmentToOrder": ("Mutation", (("input", "FulfillOrderInput!"),)),
    "transitionFulfillmentToState": ("Mutation", (("id", "ID!"), ("state", "String!"))),
    "transitionOrderToState": ("Mutation", (("id", "ID!"), ("state", "String!"))),
    "settlePayment": ("Mutation", (("id", "ID!"),)),
    "cancelOrder": ("Mutation", (("input", "CancelOrderInput!"),)),
}
ROOT_FIELD = re.compile(r"^\s*(query|mutation)\b[^{]*\{\s*([A-Za-z_]\w*)", re.S)
DECLARED = re.compile(r"\$(\w+)\s*:\s*([\w\[\]!]+)")


def apollo_error(message: str, code: str, status: int = 400) -> Response:
    """How Vendure's GraphQL server (Apollo) answers a request it cannot run at all."""
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)


def error_result(typename: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A Vendure ErrorResult, as a mutation's payload."""
    return {"__typename": typename, "errorCode": code, "message": message, **extra}


def order_transition_error(from_state: str, to_state: str, why: str | None = None) -> dict[str, Any]:
    message = f'Cannot transition Order from "{from_state}" to "{to_state}"'
    return error_result("OrderStateTransitionError", "ORDER_STATE_TRANSITION_ERROR", message,
                        transitionError=why or message, fromState=from_state, toState=to_state)


@dataclass
class VendureSimulator:
    username: str = "superadmin"
    password: str = "vendure-test-pass"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fulfillments: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_after: int = 3
    requests: int = 0
    faults: deque[str] = field(default_factory=deque)
    tokens: set[str] = field(default_factory=set)
    logins: int = 0
    #: A host's request limit in front of Vendure (None: none, the default); ``window_seconds`` its window.
    quota: int | None = None
    window_seconds: float = 60.0
    throttled: int = 0
    #: Every request's operation name and variables, in order (for tests of what the connector sends).
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _stamps: deque[float] = field(default_factory=deque)
    _ids: int = 0

    #: A request Vendure's GraphQL server refuses outright: HTTP 400 from Apollo.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the kit's protocol -------------------------------------------------------

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def add_order(self, ref: str, status: str = "PaymentSettled") -> None:
        """An order placed and paid, as most orders reach shipping (``status`` another Vendure state)."""
        state = status if status in ORDER_TRANSITIONS else "PaymentSettled"
        order_id = self._next_id()
        self.orders[ref] = {
            "id": order_id, "code": ref, "state": state,
            "lines": [{"id": f"{order_id}-{i + 1}", "quantity": q} for i, q in enumerate(LINES)],
            "payments": [{"id": f"{order_id}-p", "state": "Settled" if state in PAID else "Authorized"}],
            "fulfillments": [], "cancel_reason": None,
        }

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        if order is None:
            return None
        return {"status": order["state"], "payments": [p["state"] for p in order["payments"]],
                "lines": [dict(line) for line in order["lines"]], "cancel_reason": order["cancel_reason"],
                "fulfillments": [{k: v for k, v in self.fulfillments[f].items() if k != "id"}
                                 for f in order["fulfillments"]]}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self.orders.get(ref)
        if order is None:
            return []
        return [(self.fulfillments[f]["method"], self.fulfillments[f]["trackingCode"])
                for f in order["fulfillments"] if self.fulfillments[f]["trackingCode"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def expire_tokens(self) -> None:
        """Every session token given so far stops working (sessions deleted, or expired)."""
        self.tokens.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/admin-api", self._graphql, methods=["POST"])])

    # -- the endpoint -------------------------------------------------------------

    def _limited(self) -> Response | None:
        if self.quota is None:
            return None
        now = time.monotonic()
        while self._stamps and now - self._stamps[0] >= self.window_seconds:
            self._stamps.popleft()
        if len(self._stamps) >= self.quota:
            self.throttled += 1
            wait = max(1, math.ceil(self.window_seconds - (now - self._stamps[0])))
            return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": str(wait)})
        self._stamps.append(now)
        return None

    async def _fault(self) -> Response | None:
        fault = self.faults.popleft() if self.faults else None
        if fault == "timeout":
            await asyncio.sleep(3600)
        if fault in ("http_429", "http_503"):
            status = 429 if fault == "http_429" else 503
            return PlainTextResponse("Too Many Requests" if status == 429 else "Service Unavailable",
                                     status_code=status, headers={"Retry-After": str(self.retry_after)})
        if fault == "http_4xx":
            return apollo_error('Cannot query field "cartstatusFault" on type "Query".', "GRAPHQL_VALIDATION_FAILED")
        if fault == "forbidden":
            return JSONResponse({"errors": [{"message": FORBIDDEN_MESSAGE, "extensions": {"code": "FORBIDDEN"}}],
                                 "data": None})
        return None

    async def _graphql(self, request: Request) -> Response:
        self.requests += 1
        refused = self._limited() or await self._fault()
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return apollo_error("POST body is not valid JSON", "BAD_REQUEST")
        query = body.get("query") if isinstance(body, dict) else None
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        if not isinstance(query, str) or not query.strip():
            return apollo_error("GraphQL operations must contain a non-empty `query` or a `persistedQuery` "
                                "extension.", "BAD_REQUEST")
        if not isinstance(variables, dict):
            return apollo_error("`variables` in a POST body must be an object if provided.", "BAD_REQUEST")
        found = ROOT_FIELD.match(query)
        if found is None:
            return apollo_error(f'Syntax Error: Unexpected "{query.strip()[:1]}".', "GRAPHQL_PARSE_FAILED")
        kind, root = found.group(1), found.group(2)
        known = OPERATIONS.get(root)
        if known is None or known[0].lower() != kind:
            return apollo_error(f'Cannot query field "{root}" on type "{kind.capitalize()}".',
                                "GRAPHQL_VALIDATION_FAILED")
        declared = dict(DECLARED.findall(query))
        for name, gql_type in known[1]:
            if declared.get(name) != gql_type:
                return apollo_error(f'Variable "${name}" of type "{declared.get(name)}" used in position expecting '
                                    f'type "{gql_type}".', "GRAPHQL_VALIDATION_FAILED")
            if variables.get(name) is None:  # Vendure answers this one with HTTP 200
                return apollo_error(f'Variable "${name}" of required type "{gql_type}" was not provided.',
                                    "BAD_USER_INPUT", 200)
        self.sent.append((root, variables))
        if root == "login":
            return self._login(variables)
        if self._session(request) not in self.tokens:
            # An unknown token: Vendure answers as to a new anonymous session, which may not read orders.
            return JSONResponse({"errors": [{"message": FORBIDDEN_MESSAGE, "path": [root],
                                             "extensions": {"code": "FORBIDDEN"}}], "data": None},
                                headers={"vendure-auth-token": ""})
        problem = self._check_input(root, variables)
        if problem:
            return apollo_error(problem, "BAD_USER_INPUT")
        try:
            answer = getattr(self, f"_{root}")(variables)
        except LookupError as missing:  # Vendure's EntityNotFoundError: an error beside null data, HTTP 200
            return JSONResponse({"errors": [{"message": str(missing), "path": [root],
                                             "extensions": {"code": "ENTITY_NOT_FOUND"}}], "data": None})
        return JSONResponse({"data": {root: answer}})

    @staticmethod
    def _check_input(root: str, variables: dict[str, Any]) -> str | None:
        """Vendure's input types, as GraphQL coerces them: a missing field or a wrong type is refused."""
        value = variables.get("input")
        if root == "addFulfillmentToOrder":
            lines, handler = (value or {}).get("lines"), (value or {}).get("handler")
            if not isinstance(lines, list) or not all(
                    isinstance(line, dict) and isinstance(line.get("orderLineId"), str | int)
                    and isinstance(line.get("quantity"), int) for line in lines):
                return 'Variable "$input" got invalid value; Field "lines" of required type "[OrderLineInput!]!"'
            if not isinstance(handler, dict) or not isinstance(handler.get("code"), str) or not all(
                    isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("value"), str)
                    for a in handler.get("arguments") or [None]):
                return ('Variable "$input" got invalid value; Field "handler" of required type '
                        '"ConfigurableOperationInput!"')
        if root == "cancelOrder" and not isinstance((value or {}).get("orderId"), str | int):
            return 'Variable "$input" got invalid value; Field "orderId" of required type "ID!" was not provided.'
        return None

    @staticmethod
    def _session(request: Request) -> str:
        """The session token as Vendure reads it with tokenMethod ['bearer', 'cookie']: a cookie's first."""
        cookie = request.cookies.get("session")
        if cookie:
            try:
                token = json.loads(base64.b64decode(cookie)).get("token")
            except ValueError:
                token = None
            if token:
                return str(token)
        return request.headers.get("authorization", "").removeprefix("Bearer ")

    # -- the operations -----------------------------------------------------------

    def _login(self, variables: dict[str, Any]) -> Response:
        self.logins += 1
        if (variables.get("username"), variables.get("password")) != (self.username, self.password):
            return JSONResponse({"data": {"login": error_result(
                "InvalidCredentialsError", "INVALID_CREDENTIALS_ERROR", "The provided credentials are invalid",
                authenticationError="")}})
        token = secrets.token_hex(20)
        self.tokens.add(token)
        reply = JSONResponse({"data": {"login": {"__typename": "CurrentUser", "id": "1",
                                                 "identifier": self.username}}},
                             headers={"vendure-auth-token": token})
        reply.set_cookie("session", base64.b64encode(json.dumps({"token": token}).encode()).decode(),
                         httponly=True, samesite="lax")  # and a cookie of the same session, as Vendure sets
        return reply

    def _by_id(self, order_id: Any) -> dict[str, Any] | None:
        return next((o for o in self.orders.values() if o["id"] == str(order_id)), None)

    def _order_node(self, order: dict[str, Any]) -> dict[str, Any]:
        return {"id": order["id"], "code": order["code"], "state": order["state"],
                "nextStates": list(ORDER_TRANSITIONS[order["state"]]),
                "lines": [dict(line) for line in order["lines"]],
                "payments": [dict(p) for p in order["payments"]],
                "fulfillments": [dict(self.fulfillments[f]) for f in order["fulfillments"]]}

    def _orders(self, variables: dict[str, Any]) -> dict[str, Any]:
        # The connector filters by code in the query text: options: {filter: {code: {eq: $code}}}.
        code = variables.get("code")
        items = [self._order_node(o) for o in self.orders.values() if code is None or o["code"] == code]
        return {"items": items, "totalItems": len(items)}

    def _order(self, variables: dict[str, Any]) -> dict[str, Any] | None:
        order = self._by_id(variables["id"])
        return None if order is None else self._order_node(order)

    def _fulfilled(self, order: dict[str, Any], states: tuple[str, ...] | None = None) -> dict[str, int]:
        held: dict[str, int] = {}
        for fid in order["fulfillments"]:
            fulfillment = self.fulfillments[fid]
            if fulfillment["state"] != "Cancelled" and (states is None or fulfillment["state"] in states):
                for line in fulfillment["lines"]:
                    held[line["orderLineId"]] = held.get(line["orderLineId"], 0) + line["quantity"]
        return held

    def _all_in(self, order: dict[str, Any], states: tuple[str, ...]) -> bool:
        held = self._fulfilled(order, states)
        return all(held.get(line["id"], 0) >= line["quantity"] for line in order["lines"] if line["quantity"])

    def _guard(self, order: dict[str, Any], to_state: str) -> str | None:
        """The default order process's checks before a move (its onTransitionStart)."""
        if to_state == "PaymentSettled" and (not order["payments"]  # one payment pays each simulated order
                                             or any(p["state"] != "Settled" for p in order["payments"])):
            return 'Cannot transition Order to the "PaymentSettled" state when the total is not covered by settled ' \
                   'Payments'
        if to_state == "Shipped" and not self._all_in(order, ("Shipped", "Delivered")):
            return 'Cannot transition Order to the "Shipped" state unless all OrderItems are shipped'
        if to_state == "Delivered" and not self._all_in(order, ("Delivered",)):
            return 'Cannot transition Order to the "Delivered" state unless all OrderItems are delivered'
        if to_state == "Cancelled" and order["state"] not in ("AddingItems", "ArrangingPayment") and any(
                line["quantity"] for line in order["lines"]):
            return 'Cannot transition Order to the "Cancelled" state unless all OrderItems are cancelled'
        return None

    def _move(self, order: dict[str, Any], to_state: str) -> dict[str, Any] | None:
        """Move an order as Vendure's order state machine does; an OrderStateTransitionError when it will not."""
        if to_state not in ORDER_TRANSITIONS[order["state"]]:
            return order_transition_error(order["state"], to_state)
        why = self._guard(order, to_state)
        if why:
            return order_transition_error(order["state"], to_state, why)
        order["state"] = to_state
        return None

    def _transitionOrderToState(self, variables: dict[str, Any]) -> dict[str, Any]:
        order = self._by_id(variables["id"])
        if order is None:
            return self._not_found("Order", variables["id"])
        refused = self._move(order, str(variables["state"]))
        return refused or {"__typename": "Order", "id": order["id"], "state": order["state"]}

    def _settlePayment(self, variables: dict[str, Any]) -> dict[str, Any]:
        order = next((o for o in self.orders.values() for p in o["payments"] if p["id"] == str(variables["id"])),
                     None)
        if order is None:
            return self._not_found("Payment", variables["id"])
        payment = next(p for p in order["payments"] if p["id"] == str(variables["id"]))
        if payment["state"] != "Authorized":
            message = f'Cannot transition Payment from "{payment["state"]}" to "Settled"'
            return error_result("PaymentStateTransitionError", "PAYMENT_STATE_TRANSITION_ERROR", message,
                                transitionError=message, fromState=payment["state"], toState="Settled")
        payment["state"] = "Settled"
        if "PaymentSettled" in ORDER_TRANSITIONS[order["state"]] and self._guard(order, "PaymentSettled") is None:
            order["state"] = "PaymentSettled"  # Vendure moves the order once settled payments cover it
        return {"__typename": "Payment", "id": payment["id"], "state": "Settled"}

    def _addFulfillmentToOrder(self, variables: dict[str, Any]) -> dict[str, Any]:
        lines = variables["input"]["lines"]
        handler = variables["input"]["handler"]
        if not lines or sum(line["quantity"] for line in lines) == 0:
            return error_result("EmptyOrderLineSelectionError", "EMPTY_ORDER_LINE_SELECTION_ERROR",
                                "At least one OrderLine must be specified")
        if handler["code"] != "manual-fulfillment":
            return error_result("InvalidFulfillmentHandlerError", "INVALID_FULFILLMENT_HANDLER_ERROR",
                                "The FulfillmentHandler code is not valid")
        wanted = {str(line["orderLineId"]) for line in lines}
        order = next((o for o in self.orders.values() if wanted & {line["id"] for line in o["lines"]}), None)
        if order is None:
            return self._not_found("OrderLine", lines[0]["orderLineId"])
        held = self._fulfilled(order)
        quantities = {line["id"]: line["quantity"] for line in order["lines"]}
        for line in lines:
            line_id = str(line["orderLineId"])
            if line_id not in quantities or quantities[line_id] - held.get(line_id, 0) < line["quantity"]:
                return error_result("ItemsAlreadyFulfilledError", "ITEMS_ALREADY_FULFILLED_ERROR",
                                    "One or more OrderItems are already part of a Fulfillment")
        arguments = {a["name"]: a["value"] for a in handler.get("arguments") or []}
        fulfillment_id = self._next_id()
        fulfillment: dict[str, Any] = {
            "id": fulfillment_id, "state": "Pending", "method": arguments.get("method") or "",
            "trackingCode": arguments.get("trackingCode") or "",
            "lines": [{"orderLineId": str(line["orderLineId"]), "quantity": line["quantity"]} for line in lines]}
        self.fulfillments[fulfillment_id] = fulfillment
        order["fulfillments"].append(fulfillment_id)
        return {"__typename": "Fulfillment", **{k: v for k, v in fulfillment.items() if k != "lines"}}

    def _transitionFulfillmentToState(self, variables: dict[str, Any]) -> dict[str, Any]:
        fulfillment = self.fulfillments.get(str(variables["id"]))
        if fulfillment is None:
            return self._not_found("Fulfillment", variables["id"])
        to_state = str(variables["state"])
        if to_state not in FULFILLMENT_TRANSITIONS[fulfillment["state"]]:
            # Vendure 3.7 leaves this one's message untranslated: the words are in transitionError.
            why = f'Cannot transition Fulfillment from "{fulfillment["state"]}" to "{to_state}"'
            return error_result("FulfillmentStateTransitionError", "FULFILLMENT_STATE_TRANSITION_ERROR",
                                "errorResult.FULFILLMENT_STATE_TRANSITION_ERROR", transitionError=why,
                                fromState=fulfillment["state"], toState=to_state)
        fulfillment["state"] = to_state
        order = next(o for o in self.orders.values() if fulfillment["id"] in o["fulfillments"])
        # As Vendure's fulfillment process: the order follows when every item (or only some) is shipped/delivered.
        if to_state in ("Shipped", "Delivered"):
            whole = self._all_in(order, ("Shipped", "Delivered") if to_state == "Shipped" else ("Delivered",))
            follow = to_state if whole else f"Partially{to_state}"
            if follow in ORDER_TRANSITIONS[order["state"]] and self._guard(order, follow) is None:
                order["state"] = follow
        return {"__typename": "Fulfillment", "id": fulfillment["id"], "state": to_state}

    def _cancelOrder(self, variables: dict[str, Any]) -> dict[str, Any]:
        order = self._by_id(variables["input"]["orderId"])
        if order is None:
            return self._not_found("Order", variables["input"]["orderId"])
        if not any(line["quantity"] for line in order["lines"]):  # as Vendure answers a cancelled order
            return error_result("EmptyOrderLineSelectionError", "EMPTY_ORDER_LINE_SELECTION_ERROR",
                                "At least one OrderLine must be specified")
        for line in order["lines"]:
            line["quantity"] = 0
        order["cancel_reason"] = variables["input"].get("reason")
        refused = self._move(order, "Cancelled")
        return refused or {"__typename": "Order", "id": order["id"], "state": order["state"]}

    @staticmethod
    def _not_found(entity: str, entity_id: Any) -> dict[str, Any]:
        raise LookupError(f'No {entity} with the id "{entity_id}" could be found')


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return VendureSimulator(**kwargs).app()
