"""The shopify connector: an order's status change as Shopify's own Admin GraphQL mutations.

Shopify has no order-status field. Its fulfilment and financial states are derived from what was done to
the order, so each value of this connector's vocabulary is an *action*:

- ``fulfilled``: ship what the order still has to ship (``fulfillmentCreate`` on its open fulfilment
  orders), with the tracking numbers;
- ``paid``: ``orderMarkAsPaid`` (an order paid by a manual method: bank transfer, cash on delivery);
- ``closed``: ``orderClose`` (archived: nothing more to do);
- ``cancelled``: ``orderCancel`` (asynchronous: Shopify answers with a job);
- ``processing``, ``on-hold``, ``backordered``: labels Shopify has no state for, kept as one order tag
  ``cartstatus:<value>`` (the previous one removed), which merchants can filter orders on.

Every send reads the order first (one query) and writes only what it lacks: a repeat, or a send cut off
half-way and sent again, ships nothing twice. Tracking numbers reach Shopify with every value but
``cancelled``: a fulfilment holds one carrier (``FulfillmentTrackingInput.company`` applies to all its
numbers), so numbers of several carriers become one fulfilment per carrier, each taking whole lines.

Shopify limits an app by query *cost* (a leaky bucket of points, 100 restored a second on a Standard
plan), not by requests, and says where the bucket stands in every reply (``extensions.cost``): the
connector turns that into :meth:`~cartstatus.Connector.limit_hint`, in requests of its costliest query.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cartstatus.auth import HeaderAuth
from cartstatus.connector import ConnectionResult, Connector, StatusUpdate, StopSend, Tracking, json_body
from cartstatus.graphql import graphql_errors, outcome_for_graphql
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

from . import documents

FULFILLED, PAID, CLOSED, CANCELLED = "fulfilled", "paid", "closed", "cancelled"
#: Values Shopify has no state for: kept as the order's one status tag.
TAGGED = ("processing", "on-hold", "backordered")
VOCABULARY = (FULFILLED, PAID, CLOSED, CANCELLED, *TAGGED)
#: The status tags this connector owns (and so may remove): ``cartstatus:on-hold``...
TAG_PREFIX = "cartstatus:"

API_VERSION = "2026-07"
#: Fulfilment orders that can be fulfilled now (not on hold, scheduled, closed or cancelled).
FULFILLABLE = ("OPEN", "IN_PROGRESS")
#: Financial states in which there is nothing left to mark as paid.
SETTLED = ("PAID", "PARTIALLY_REFUNDED", "REFUNDED")
#: The requested cost of the order read (documents.ORDER) as Shopify computes it before running it; the
#: costliest document sent, so "requests left" is counted in it. Replies correct it (requestedQueryCost).
ORDER_READ_COST = 179
#: A THROTTLED request is sent again inside the same send when the bucket refills within this many seconds
#: (Shopify refused it before running it, so nothing was done twice); longer, the send gives it back.
THROTTLE_WAIT_LIMIT = 5.0
THROTTLE_ATTEMPTS = 3
#: Shopify's limit on ``orderCancel``'s staff note.
STAFF_NOTE_LIMIT = 255


def order_gid(ref: str) -> str:
    """Shopify's global id of an order from its reference: the numeric id (as in the admin's URL), or the gid."""
    ref = ref.strip()
    return ref if ref.startswith("gid://") else f"gid://shopify/Order/{ref.lstrip('#')}"


def status_tag(value: str) -> str:
    return f"{TAG_PREFIX}{value}"


@dataclass(frozen=True)
class Shipment:
    """One fulfilment to create: one carrier's numbers (none: a fulfilment without tracking) and its lines,
    ``{fulfillment order id: [(line id, quantity)]}``; no lines given: every open line of those orders."""

    company: str | None
    numbers: tuple[str, ...]
    lines: Mapping[str, Sequence[tuple[str, int]]] | None
    orders: tuple[str, ...] = ()

    def variables(self) -> dict[str, Any]:
        if self.lines is None:
            by_order: list[dict[str, Any]] = [{"fulfillmentOrderId": fo} for fo in self.orders]
        else:
            by_order = [{"fulfillmentOrderId": fo,
                         "fulfillmentOrderLineItems": [{"id": line, "quantity": qty} for line, qty in lines]}
                        for fo, lines in self.lines.items()]
        fulfillment: dict[str, Any] = {"lineItemsByFulfillmentOrder": by_order, "notifyCustomer": False}
        if self.numbers:
            fulfillment["trackingInfo"] = {"company": self.company, "numbers": list(self.numbers)}
        return {"fulfillment": fulfillment}


def missing_tracking(order: Mapping[str, Any], tracking: Sequence[Tracking]) -> list[tuple[str, list[str]]]:
    """The update's numbers Shopify does not hold yet, grouped by carrier in the order first sent."""
    held = {str(info.get("number")) for f in order.get("fulfillments") or () if f.get("status") == "SUCCESS"
            for info in f.get("trackingInfo") or ()}
    groups: dict[str, list[str]] = {}
    for track in tracking:
        if track.number not in held and track.number not in groups.get(track.carrier, []):
            groups.setdefault(track.carrier, []).append(track.number)
    return list(groups.items())


#: The fulfilment orders one read shows (documents.ORDER): an order has one per location it ships from,
#: so more is rare; the rest are left to the merchant rather than read page by page.
TOO_MANY = "the order has more fulfilment orders than the connector reads (5): ship the others in Shopify"


def more_orders(order: Mapping[str, Any]) -> bool:
    return bool(((order.get("fulfillmentOrders") or {}).get("pageInfo") or {}).get("hasNextPage"))


def open_lines(order: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """Every line still to ship, ``(fulfillment order id, line id, quantity)``, of the fulfillable orders."""
    nodes = (order.get("fulfillmentOrders") or {}).get("nodes") or ()
    return [(fo["id"], line["id"], int(line["remainingQuantity"]))
            for fo in nodes if fo.get("status") in FULFILLABLE
            for line in (fo.get("lineItems") or {}).get("nodes") or () if int(line.get("remainingQuantity", 0)) > 0]


def plan_shipments(lines: Sequence[tuple[str, str, int]],
                   groups: Sequence[tuple[str, list[str]]]) -> tuple[list[Shipment], list[tuple[str, list[str]]]]:
    """The fulfilments that put every open line and every carrier's numbers in Shopify, and the carriers left
    over (more carriers than lines: Shopify keeps one carrier per fulfilment and a fulfilment needs a line).

    One carrier (or none): one fulfilment of everything open. Several: one per carrier, each taking one
    whole line in order, the last carrier the rest: the order manager says which numbers, not which parcel
    holds which item.
    """
    if not lines:
        return [], list(groups)
    if len(groups) <= 1:
        company, numbers = groups[0] if groups else (None, [])
        return [Shipment(company, tuple(numbers), None, tuple(dict.fromkeys(fo for fo, _, _ in lines)))], []
    placed = groups[:len(lines)]
    shipments = []
    for i, (company, numbers) in enumerate(placed):
        share = lines[i:i + 1] if i < len(placed) - 1 else lines[i:]
        by_order: dict[str, list[tuple[str, int]]] = {}
        for fo, line, qty in share:
            by_order.setdefault(fo, []).append((line, qty))
        shipments.append(Shipment(company, tuple(numbers), by_order))
    return shipments, list(groups[len(lines):])


class ShopifyConnector(Connector):
    """Sends status changes and tracking numbers to a Shopify store through the Admin GraphQL API."""

    name = "shopify"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["shop", "access_token"],
        "properties": {
            "shop": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
                     "description": "the store's permanent myshopify.com name, such as example.myshopify.com"},
            "access_token": {"type": "string", "minLength": 8, "secret": True,
                             "description": "the Admin API access token of the store's custom app (shpat_...), "
                                            "with the orders and merchant-managed fulfillment orders scopes"},
            "api_version": {"type": "string", "pattern": r"^(\d{4}-(01|04|07|10)|unstable)$",
                            "description": f"the Admin API version, YYYY-MM (default {API_VERSION})"},
            "api_base": {"type": "string", "pattern": "^https?://",
                         "description": "where the Admin API is (default https://<shop>); for a proxy or a test"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request to Shopify is given up (default 20)"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Shipped": FULFILLED,
        "Drop Shipped": FULFILLED,
        "Delivered": FULFILLED,  # Shopify follows delivery itself from the carrier's tracking
        "Payment Received": PAID,
        "Completed": CLOSED,
        "Cancelled": CANCELLED,
        "Processing": "processing",
        "On Hold": "on-hold",
        "Backordered": "backordered",
    }
    # No fixed rate_limit: Shopify's is in points a second and depends on the store's plan (100 Standard,
    # 200 Advanced, 1000 Plus, 2000 Enterprise), which only its replies tell: they drive limit_hint.
    rate_limit = None
    # A few sends at once: each reply's bucket reading steers the next, and sends started before a reply
    # arrives are not in its reading.
    max_in_flight = 4
    timeout = 20.0

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        # The costliest requested cost seen (points): "requests left" are counted in it.
        self.costliest = float(ORDER_READ_COST)
        self.throttled = 0  # THROTTLED replies met by this connector (for the benchmark and support)
        self._wait: float | None = None  # seconds the THROTTLED reply being read asks to wait
        # The outcome classify gave the last THROTTLED reply: a send sends its request again only when the
        # StopSend it met carries this very outcome (not a timeout's, after which the request may have run).
        self._throttle: RetryLater | None = None

    # -- where and how -------------------------------------------------------

    @property
    def endpoint(self) -> str:
        base = str(self.settings.get("api_base") or f"https://{self.settings['shop']}").rstrip("/")
        return f"{base}/admin/api/{self.settings.get('api_version', API_VERSION)}/graphql.json"

    def http_auth(self) -> httpx.Auth:
        return HeaderAuth("X-Shopify-Access-Token", self.secret("access_token"))

    # -- reading replies -----------------------------------------------------

    def classify(self, response: httpx.Response) -> Outcome | None:
        body = json_body(response)
        if isinstance(body, dict):
            self._read_cost(body)
        if response.status_code == 401:
            words = "; ".join(map(str, graphql_errors(body))) or response.text[:200]
            return Failed(f"Shopify refused the access token (HTTP 401): {words}")
        if response.status_code != 200:
            return None  # 402 (shop frozen), 403, 404, 423, 429, 5xx: the status-code rules
        if not isinstance(body, dict) or not ("data" in body or "errors" in body):
            return RetryLater("Shopify's reply is not a GraphQL answer (a proxy's page?)")
        outcome = outcome_for_graphql(response)
        if isinstance(outcome, RetryLater) and self._wait is not None:
            self._throttle = RetryLater(outcome.reason, self._wait)
            return self._throttle
        if isinstance(outcome, RetryLater) and "THROTTLED" in outcome.reason:
            self.limit_hint(remaining=0)  # throttled, and no cost said for how long: the default hold
        return outcome

    def _read_cost(self, body: Mapping[str, Any]) -> None:
        """Shopify's bucket, as this reply left it, told to the controller in requests of the costliest query."""
        self._wait = None
        cost = (body.get("extensions") or {}).get("cost") if isinstance(body.get("extensions"), dict) else None
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(status, dict):
            return
        try:
            available = float(status["currentlyAvailable"])
            restore = float(status["restoreRate"])
            requested = float(cost.get("requestedQueryCost") or 0)  # type: ignore[union-attr]
        except (KeyError, TypeError, ValueError):
            return
        if not (math.isfinite(available) and math.isfinite(restore) and restore > 0):
            return
        throttled = any(e.code == "THROTTLED" for e in graphql_errors(body))
        if throttled:
            self.throttled += 1
            self._wait = max(0.0, requested - available) / restore
        self.costliest = max(self.costliest, requested)
        per_request = self.costliest
        left = int(available // per_request)
        if throttled or left <= 0:
            # Nothing until the bucket holds one costliest request again, then one (the pacer has no
            # restore rate: after a hold it would let every waiting send go at once, and only one fits).
            hold = max(0.0, max(requested if throttled else 0.0, per_request) - available) / restore
            self.limit_hint(remaining=0, reset_in=hold)
            self.limit_hint(remaining=1, reset_in=hold + per_request / restore)
        else:
            # That many now; one more each time the bucket restores one request's worth.
            self.limit_hint(remaining=left, reset_in=((left + 1) * per_request - available) / restore)

    # -- sending ---------------------------------------------------------------

    async def graphql(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``data`` of one GraphQL request; a THROTTLED refusal is sent again once the bucket has room."""
        payload = {"query": document, "variables": dict(variables or {})}
        for attempt in range(THROTTLE_ATTEMPTS):
            try:
                reply = await self.call("POST", self.endpoint, json=payload)
            except StopSend as stop:
                wait = self._throttle.delay if self._throttle is not None and stop.outcome is self._throttle else None
                if wait is None or wait > THROTTLE_WAIT_LIMIT or attempt == THROTTLE_ATTEMPTS - 1:
                    raise
                # Refused before it ran: nothing was done. The controller's pacer holds this store's other
                # requests for the same time (limit_hint); this one waits here.
                await asyncio.sleep(wait)
                continue
            data = reply.json().get("data")
            return data if isinstance(data, dict) else {}
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        gid = order_gid(update.cart_order_ref)
        order = (await self.graphql(documents.ORDER, {"id": gid})).get("order")
        if not isinstance(order, dict):
            return Failed(f"Shopify has no order {gid} (cart order reference {update.cart_order_ref!r})")
        value = update.cart_status
        if order.get("cancelledAt") and value in (FULFILLED, PAID):
            return Failed(f"Shopify's order {order.get('name', gid)} is cancelled: it cannot be {value}")
        done: list[str] = []
        notes: list[str] = []
        if value == CANCELLED:
            if update.tracking:
                notes.append(f"{len(update.tracking)} tracking numbers not sent: a cancelled order ships nothing")
        else:
            done += await self._ship(order, update, notes)
        done += await self._act(order, value, update)
        done += await self._retag(order, value)
        detail = "; ".join(done + notes)
        if not done:
            return AlreadyDone(f"Shopify's order {order.get('name', gid)} already had it"
                               + (f" ({'; '.join(notes)})" if notes else ""))
        return Delivered(detail)

    async def _ship(self, order: Mapping[str, Any], update: StatusUpdate, notes: list[str]) -> list[str]:
        """The fulfilments the update's numbers (and, for ``fulfilled``, the open lines) still need."""
        groups = missing_tracking(order, update.tracking)
        lines = open_lines(order)
        if not groups and not (update.cart_status == FULFILLED and lines):
            if update.cart_status == FULFILLED and more_orders(order):
                raise StopSend(Failed(f"Shopify's order {order.get('name')}: {TOO_MANY}"))
            if update.cart_status == FULFILLED and order.get("displayFulfillmentStatus") != "FULFILLED":
                raise StopSend(Failed(
                    f"Shopify's order {order.get('name')} has nothing that can be fulfilled now "
                    f"(fulfillment status {order.get('displayFulfillmentStatus')}: on hold or scheduled?)"))
            return []
        if more_orders(order):
            notes.append(TOO_MANY)
        shipments, left_over = plan_shipments(lines, groups)
        done = []
        for shipment in shipments:
            await self.graphql(documents.FULFIL, shipment.variables())
            done.append(f"fulfilled with {shipment.company} {', '.join(shipment.numbers)}" if shipment.numbers
                        else "fulfilled without tracking")
        for company, numbers in left_over:
            done += await self._add_tracking(order, company, numbers, notes)
        return done

    async def _add_tracking(self, order: Mapping[str, Any], company: str, numbers: list[str],
                            notes: list[str]) -> list[str]:
        """Numbers for an order with nothing left to ship: added to its fulfilment of the same carrier (or one
        shipped without tracking), whose numbers Shopify replaces with the ones given, so they go too."""
        fulfilment = next((f for f in order.get("fulfillments") or () if f.get("status") == "SUCCESS" and (
            {str(i.get("company") or "").casefold() for i in f.get("trackingInfo") or ()} == {company.casefold()}
            or not f.get("trackingInfo"))), None)
        if fulfilment is None:
            notes.append(f"{company} numbers {', '.join(numbers)} not recorded: Shopify keeps one carrier per "
                         "fulfilment and the order has no unshipped line, nor a fulfilment of that carrier, left")
            return []
        held = [str(i.get("number")) for i in fulfilment.get("trackingInfo") or ()]
        await self.graphql(documents.TRACKING_UPDATE, {
            "fulfillmentId": fulfilment["id"], "notifyCustomer": False,
            "trackingInfoInput": {"company": company, "numbers": [*held, *numbers]}})
        # The read this send made now says less than Shopify holds: a second group of the same carrier
        # would otherwise replace these numbers.
        fulfilment["trackingInfo"] = [{"company": company, "number": n} for n in (*held, *numbers)]
        return [f"{company} {', '.join(numbers)} added to fulfilment {fulfilment['id']}"]

    async def _act(self, order: Mapping[str, Any], value: str, update: StatusUpdate) -> list[str]:
        """The value's own mutation, when Shopify's order is not there yet."""
        gid = order["id"]
        if value == PAID and order.get("displayFinancialStatus") not in SETTLED:
            await self.graphql(documents.MARK_PAID, {"input": {"id": gid}})
            return ["marked as paid"]
        if value == CLOSED and not order.get("closed"):
            await self.graphql(documents.CLOSE, {"input": {"id": gid}})
            return ["closed"]
        if value == CANCELLED and not order.get("cancelledAt"):
            note = f"Cancelled in the order manager (order {update.order_number})"
            if update.note:
                note += f": {update.note}"
            data = await self.graphql(documents.CANCEL, {
                "orderId": gid, "reason": "OTHER", "restock": False, "notifyCustomer": False,
                "staffNote": note[:STAFF_NOTE_LIMIT]})
            job = (data.get("orderCancel") or {}).get("job") or {}
            return [f"cancelling (Shopify job {job.get('id', '?')})"]
        return []

    async def _retag(self, order: Mapping[str, Any], value: str) -> list[str]:
        """The order's one status tag: the value's own for a tagged value, none otherwise."""
        have = [t for t in order.get("tags") or () if str(t).startswith(TAG_PREFIX)]
        want = status_tag(value) if value in TAGGED else None
        stale = [t for t in have if t != want]
        done = []
        if stale:
            await self.graphql(documents.TAGS_REMOVE, {"id": order["id"], "tags": stale})
            done.append(f"tags {', '.join(stale)} removed")
        if want is not None and want not in have:
            await self.graphql(documents.TAGS_ADD, {"id": order["id"], "tags": [want]})
            done.append(f"tagged {want}")
        return done

    async def test_connection(self) -> ConnectionResult:
        try:
            shop = (await self.graphql(documents.SHOP)).get("shop") or {}
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        return ConnectionResult(True, f"Shopify store {shop.get('name')} ({shop.get('myshopifyDomain')}) answers "
                                      f"on Admin API {self.settings.get('api_version', API_VERSION)}")
