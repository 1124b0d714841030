"""The Vendure connector: order states through the Admin GraphQL API, tracking numbers as fulfillments.

Vendure (``@vendure/core`` 3.x) has no status field to write. An order moves
through its order process, and most moves are Vendure's own consequences of
other records:

- ``PaymentSettled``: ``settlePayment`` on each payment still ``Authorized``;
  Vendure moves the order once settled payments cover its total.
- ``Shipped`` / ``Delivered``: every item goes into a fulfillment
  (``addFulfillmentToOrder`` with the ``manual-fulfillment`` handler, whose
  ``method`` and ``trackingCode`` arguments carry the carrier and the number),
  then each fulfillment is moved (``transitionFulfillmentToState``); Vendure
  moves the order when every item is shipped (delivered).
- ``Cancelled``: ``cancelOrder`` cancels every line, then the order.

Whatever is left, and a move Vendure's order process does not allow from the
order's state (its ``nextStates``), goes to ``transitionOrderToState``: Vendure
either makes it or refuses with an ``OrderStateTransitionError`` in an HTTP 200,
which ends the send as ``Failed`` in Vendure's words.

Tracking numbers: Vendure keeps one ``trackingCode`` per fulfillment, and each
item can be in only one fulfillment. Every number the order does not yet hold
becomes its own fulfillment; the order's unfulfilled items are shared among
the new numbers, in line order, as evenly as whole items allow. A number that
finds no unfulfilled item left (more numbers than items, or an order already
wholly fulfilled) cannot be recorded: the outcome's detail names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cartstatus.auth import Token, TokenLogin
from cartstatus.connector import ConnectionResult, Connector, StatusUpdate, StopSend, Tracking, json_body
from cartstatus.graphql import graphql_errors, outcome_for_graphql
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

#: The Vendure order states this connector can bring an order to (the default order process's names).
VOCABULARY = ("PaymentSettled", "Shipped", "Delivered", "Cancelled")
#: The response header that carries the session token after ``login`` (Vendure's ``authOptions.authTokenHeaderKey``).
TOKEN_HEADER = "vendure-auth-token"
#: The fulfillment handler every Vendure has, with ``method`` and ``trackingCode`` arguments.
HANDLER = "manual-fulfillment"
#: The code of Vendure's "not authorized" error: the token is unknown or has expired (an HTTP 200).
FORBIDDEN = "FORBIDDEN"

LOGIN = """mutation CartstatusLogin($username: String!, $password: String!) {
  login(username: $username, password: $password) {
    __typename
    ... on CurrentUser { id identifier }
    ... on ErrorResult { errorCode message }
  }
}"""

#: The connection test reads what the connector needs: orders (activeAdministrator answers null, not an error,
#: for a token Vendure does not know).
WHO_AM_I = "query CartstatusWhoAmI { orders(options: { take: 1 }) { totalItems } }"

ORDER_FIELDS = """id code state nextStates
    lines { id quantity }
    payments { id state }
    fulfillments { id state method trackingCode lines { orderLineId quantity } }"""

ORDER_BY_CODE = """query CartstatusOrder($code: String!) {
  orders(options: { filter: { code: { eq: $code } }, take: 1 }) {
    items { """ + ORDER_FIELDS + """ }
  }
}"""

ORDER_STATE = "query CartstatusOrderState($id: ID!) { order(id: $id) { id state } }"

ADD_FULFILLMENT = """mutation CartstatusFulfil($input: FulfillOrderInput!) {
  addFulfillmentToOrder(input: $input) {
    __typename
    ... on Fulfillment { id state method trackingCode }
    ... on ErrorResult { errorCode message }
    ... on FulfillmentStateTransitionError { transitionError }
  }
}"""

MOVE_FULFILLMENT = """mutation CartstatusMoveFulfillment($id: ID!, $state: String!) {
  transitionFulfillmentToState(id: $id, state: $state) {
    __typename
    ... on Fulfillment { id state }
    ... on ErrorResult { errorCode message }
    ... on FulfillmentStateTransitionError { transitionError }
  }
}"""

SETTLE_PAYMENT = """mutation CartstatusSettle($id: ID!) {
  settlePayment(id: $id) {
    __typename
    ... on Payment { id state }
    ... on ErrorResult { errorCode message }
    ... on SettlePaymentError { paymentErrorMessage }
    ... on PaymentStateTransitionError { transitionError }
    ... on OrderStateTransitionError { transitionError }
  }
}"""

MOVE_ORDER = """mutation CartstatusMoveOrder($id: ID!, $state: String!) {
  transitionOrderToState(id: $id, state: $state) {
    __typename
    ... on Order { id state }
    ... on ErrorResult { errorCode message }
    ... on OrderStateTransitionError { transitionError }
  }
}"""

CANCEL_ORDER = """mutation CartstatusCancel($input: CancelOrderInput!) {
  cancelOrder(input: $input) {
    __typename
    ... on Order { id state }
    ... on ErrorResult { errorCode message }
    ... on OrderStateTransitionError { transitionError }
  }
}"""

#: The fulfillment state each label brings every fulfillment of the order to, and the states it moves them from.
FULFILLMENT_TARGET: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "Shipped": ("Shipped", ("Pending",)),
    "Delivered": ("Delivered", ("Pending", "Shipped")),
}


@dataclass(frozen=True)
class Fulfillment:
    id: str
    state: str
    tracking_code: str
    lines: tuple[tuple[str, int], ...]  # (orderLineId, quantity)


@dataclass(frozen=True)
class Order:
    """What the connector reads of a Vendure order before writing anything."""

    id: str
    code: str
    state: str
    next_states: tuple[str, ...]
    lines: tuple[tuple[str, int], ...]  # (id, quantity)
    payments: tuple[tuple[str, str], ...]  # (id, state)
    fulfillments: tuple[Fulfillment, ...]

    @classmethod
    def parse(cls, node: Mapping[str, Any]) -> Order:
        return cls(
            id=str(node["id"]), code=str(node["code"]), state=str(node["state"]),
            next_states=tuple(node.get("nextStates") or ()),
            lines=tuple((str(line["id"]), int(line["quantity"])) for line in node.get("lines") or ()),
            payments=tuple((str(p["id"]), str(p["state"])) for p in node.get("payments") or ()),
            fulfillments=tuple(
                Fulfillment(str(f["id"]), str(f["state"]), str(f.get("trackingCode") or ""),
                            tuple((str(fl["orderLineId"]), int(fl["quantity"])) for fl in f.get("lines") or ()))
                for f in node.get("fulfillments") or ()),
        )

    def unfulfilled(self) -> list[tuple[str, int]]:
        """Each line's items that no live (not cancelled) fulfillment holds yet, in line order."""
        held: dict[str, int] = {}
        for fulfillment in self.fulfillments:
            if fulfillment.state != "Cancelled":
                for line_id, quantity in fulfillment.lines:
                    held[line_id] = held.get(line_id, 0) + quantity
        return [(line_id, quantity - held.get(line_id, 0)) for line_id, quantity in self.lines
                if quantity > held.get(line_id, 0)]

    def tracking_codes(self) -> set[str]:
        """Every tracking code the order's fulfillments hold, a cancelled one's included: a person cancelled
        it, and a record delivered again must not bring it back."""
        return {f.tracking_code for f in self.fulfillments if f.tracking_code}


def share_items(items: Sequence[tuple[str, int]], parts: int) -> list[list[tuple[str, int]]]:
    """Split the items (``(line id, quantity)``) into at most ``parts`` non-empty shares, in line order,
    as evenly as whole items allow (the first shares take one more). Fewer items than parts: one each."""
    units = [line_id for line_id, quantity in items for _ in range(quantity)]
    count = min(parts, len(units))
    if count == 0:
        return []
    base, extra = divmod(len(units), count)
    shares: list[list[tuple[str, int]]] = []
    start = 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        share: dict[str, int] = {}
        for line_id in units[start:start + size]:
            share[line_id] = share.get(line_id, 0) + 1
        shares.append(list(share.items()))
        start += size
    return shares


def error_result_words(body: Any) -> list[str]:
    """The ``transitionError`` / ``paymentErrorMessage`` of each ErrorResult in a reply: Vendure's reason,
    where ``message`` only says which move was refused."""
    words: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if "errorCode" in node:
                for key in ("transitionError", "paymentErrorMessage"):
                    value = node.get(key)
                    if isinstance(value, str) and value.strip() and value != node.get("message"):
                        words.append(value.strip())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body.get("data") if isinstance(body, Mapping) else None)
    return words


def refused_token(response: httpx.Response) -> bool:
    """Vendure answers a request with an unknown or expired token with HTTP 200 and a ``FORBIDDEN`` error."""
    if response.status_code != 200:
        return False
    return any(error.code == FORBIDDEN for error in graphql_errors(json_body(response)))


class VendureLogin(TokenLogin):
    """``TokenLogin`` for Vendure: its refusal of a token is an HTTP 200 with a ``FORBIDDEN`` error, not a 401.

    Such a reply is handed to ``TokenLogin`` as the 401 it means, so that it logs in again once and sends the
    request once more (a second refusal ends the send with Vendure's words).

    Only the bearer token goes out, never a cookie: Vendure also sets a session cookie (with ``tokenMethod``
    ``['bearer', 'cookie']``) and reads a cookie before the bearer token, so a cookie of an anonymous session
    it handed out would hide the administrator's token.
    """

    def attach(self, request: httpx.Request, token: str) -> None:
        request.headers.pop("cookie", None)
        super().attach(request, token)

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        flow = super().async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                if outgoing is request:
                    await response.aread()  # TokenLogin reads only the replies it refuses
                if outgoing is request and refused_token(response):
                    # The body as read (decoded): without the headers that described it on the wire.
                    headers = [(k, v) for k, v in response.headers.items()
                               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
                    response = httpx.Response(401, headers=headers, content=response.content, request=request)
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return


class VendureConnector(Connector):
    """Sends order states and tracking numbers to Vendure's Admin API (GraphQL)."""

    name = "vendure"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "username", "password"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://",
                    "description": "the Admin API's address, e.g. https://shop.example.com/admin-api"},
            "username": {"type": "string", "minLength": 1,
                         "description": "a Vendure administrator's identifier (with the order permissions)"},
            "password": {"type": "string", "minLength": 1, "secret": True,
                         "description": "that administrator's password"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request to Vendure is given up (default 20)"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Payment Received": "PaymentSettled",
        "Shipped": "Shipped",
        "Drop Shipped": "Shipped",
        "Delivered": "Delivered",
        "Cancelled": "Cancelled",
    }
    timeout = 20.0

    # -- talking to Vendure ------------------------------------------------------

    def http_auth(self) -> httpx.Auth:
        # Vendure's session token comes back in a response header after the login mutation and goes out
        # as a bearer token; it lasts until refused (sessions last a year by default).
        return VendureLogin(self._login, lambda reply: Token(reply.headers[TOKEN_HEADER]),
                            check=self.outcome_for_response)

    def _login(self) -> httpx.Request:
        return self.client.build_request("POST", str(self.settings["url"]), json={
            "query": LOGIN, "operationName": "CartstatusLogin",
            "variables": {"username": self.settings["username"], "password": self.secret("password")}})

    def classify(self, response: httpx.Response) -> Outcome | None:
        # GraphQL answers errors with HTTP 200: the spec's errors, and Vendure's ErrorResults (errorCode,
        # message) where a mutation is refused. Neither is ever a success; an ErrorResult's transitionError
        # says why, so it goes into the reason too.
        outcome = outcome_for_graphql(response)
        if isinstance(outcome, Failed):
            why = error_result_words(json_body(response))
            return Failed("; ".join([outcome.reason.replace("the cart refused", "Vendure refused", 1), *why]))
        return outcome

    async def graphql(self, query: str, operation: str, **variables: Any) -> dict[str, Any]:
        """One GraphQL request; its ``data`` (errors end the send through :meth:`classify`)."""
        reply = await self.call("POST", str(self.settings["url"]),
                                json={"query": query, "operationName": operation, "variables": variables})
        body = json_body(reply)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):  # a proxy's page, a cut reply: not Vendure's answer, so tried again
            raise StopSend(RetryLater(f"the reply was not a GraphQL answer with data (HTTP {reply.status_code})"))
        return data

    async def read_order(self, code: str) -> Order | None:
        data = await self.graphql(ORDER_BY_CODE, "CartstatusOrder", code=code)
        items = (data.get("orders") or {}).get("items") or []
        return Order.parse(items[0]) if items else None

    async def move_order(self, order: Order, state: str) -> str:
        """``transitionOrderToState``: Vendure moves the order, or refuses in its own words (a Failed)."""
        data = await self.graphql(MOVE_ORDER, "CartstatusMoveOrder", id=order.id, state=state)
        moved = data.get("transitionOrderToState") or {}
        return str(moved.get("state") or state)

    # -- sending -------------------------------------------------------------------

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        # Read before writing: a record delivered again, or after a send cut off part-way, finds what the
        # earlier one made (fulfillments by tracking code, fulfillment and payment states) and adds only the rest.
        order = await self.read_order(update.cart_order_ref)
        if order is None:
            return Failed(f"Vendure has no order with code {update.cart_order_ref!r}")
        target = update.cart_status
        if order.state != target and target not in order.next_states:
            # Vendure's order process does not allow this move from here: let Vendure say so, before any write.
            await self.move_order(order, target)
            return Delivered(f"order {order.code} is now {target}")
        if target == "Cancelled":
            return await self._cancel(order, update)
        done: list[str] = []
        fulfillments, unrecorded = await self._add_fulfillments(order, update.tracking, target, done)
        if target == "PaymentSettled":
            for payment_id, state in order.payments:
                if state == "Authorized":
                    await self.graphql(SETTLE_PAYMENT, "CartstatusSettle", id=payment_id)
                    done.append(f"payment {payment_id} settled")
        elif target in FULFILLMENT_TARGET:
            await self._move_fulfillments(fulfillments, FULFILLMENT_TARGET[target], done)
        note = f"; tracking numbers not recorded, every item is already in a fulfillment: {', '.join(unrecorded)}" \
            if unrecorded else ""
        if not done and order.state == target:
            return AlreadyDone(f"order {order.code} is already {target}{note}")
        if order.state != target:
            # Vendure moves the order itself once payments or fulfillments allow; else ask it to (and hear why not).
            state = (await self._state(order)) if done else order.state
            if state != target:
                state = await self.move_order(order, target)
            done.append(f"order {state}")
        return Delivered(", ".join(done) + note)

    async def _state(self, order: Order) -> str:
        data = await self.graphql(ORDER_STATE, "CartstatusOrderState", id=order.id)
        return str((data.get("order") or {}).get("state") or order.state)

    async def _add_fulfillments(self, order: Order, tracking: Sequence[Tracking], target: str,
                                done: list[str]) -> tuple[list[Fulfillment], list[str]]:
        """One fulfillment per tracking number the order lacks, sharing its unfulfilled items; for Shipped or
        Delivered with no new number, one fulfillment without a number for the items left.

        Gives the order's fulfillments, the new ones included, and the numbers that found no item left."""
        have = order.tracking_codes()
        missing = list({t.number: t for t in tracking if t.number.strip() and t.number not in have}.values())
        items = order.unfulfilled()
        shares: list[tuple[Tracking | None, list[tuple[str, int]]]]
        if missing:
            shares = list(zip(missing, share_items(items, len(missing)), strict=False))
        else:
            shares = [(None, items)] if items and target in FULFILLMENT_TARGET else []
        fulfillments = list(order.fulfillments)
        for track, lines in shares:
            arguments = [{"name": "method", "value": track.carrier if track else ""}]
            if track is not None:
                arguments.append({"name": "trackingCode", "value": track.number})
            data = await self.graphql(ADD_FULFILLMENT, "CartstatusFulfil", input={
                "lines": [{"orderLineId": line_id, "quantity": quantity} for line_id, quantity in lines],
                "handler": {"code": HANDLER, "arguments": arguments}})
            made = data.get("addFulfillmentToOrder") or {}
            fulfillments.append(Fulfillment(str(made.get("id")), str(made.get("state") or "Pending"),
                                            track.number if track else "", tuple(lines)))
            done.append(f"fulfillment {track.carrier} {track.number}" if track else "fulfillment without tracking")
        return fulfillments, [t.number for t in missing[len(shares):]]

    async def _move_fulfillments(self, fulfillments: Sequence[Fulfillment], target: tuple[str, tuple[str, ...]],
                                 done: list[str]) -> None:
        state, sources = target
        for fulfillment in fulfillments:
            if fulfillment.state in sources:
                await self.graphql(MOVE_FULFILLMENT, "CartstatusMoveFulfillment", id=fulfillment.id, state=state)
                done.append(f"fulfillment {fulfillment.id} {state}")

    async def _cancel(self, order: Order, update: StatusUpdate) -> Outcome:
        # Tracking numbers are not recorded on a cancelled order: Vendure would need a fulfillment of its
        # cancelled items.
        skipped = f" (tracking numbers not recorded on a cancelled order: " \
                  f"{', '.join(t.number for t in update.tracking)})" if update.tracking else ""
        if order.state == "Cancelled":
            return AlreadyDone(f"order {order.code} is already Cancelled{skipped}")
        cancel: dict[str, Any] = {"orderId": order.id}
        if update.note:
            cancel["reason"] = update.note
        data = await self.graphql(CANCEL_ORDER, "CartstatusCancel", input=cancel)
        state = str((data.get("cancelOrder") or {}).get("state") or "")
        if state != "Cancelled":
            state = await self.move_order(order, "Cancelled")
        return Delivered(f"order {order.code} {state}{skipped}")

    async def test_connection(self) -> ConnectionResult:
        try:
            data = await self.graphql(WHO_AM_I, "CartstatusWhoAmI")
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        orders = (data.get("orders") or {}).get("totalItems")
        return ConnectionResult(True, f"Vendure's Admin API answers ({orders} orders)")
