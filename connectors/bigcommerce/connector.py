"""The BigCommerce connector: an order's status through the V2 Orders API, its tracking numbers as shipments.

BigCommerce takes a status as its number (``PUT /v2/orders/{id}`` with ``{"status_id": n}``) and a tracking
number only on a shipment (``POST /v2/orders/{id}/shipments``), which names the order's shipping address and
the items it carries. A shipment is not idempotent, so the order's shipments are read first and only the
tracking numbers BigCommerce lacks are added, one shipment each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cartstatus.auth import HeaderAuth
from cartstatus.connector import (
    REASON_BOUND,
    ConnectionResult,
    Connector,
    RateLimit,
    StatusUpdate,
    StopSend,
    Tracking,
    json_body,
    retry_after_seconds,
)
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

#: BigCommerce's order statuses by their fixed ids (GET /v2/order_statuses; a store may rename them with a
#: custom label, never renumber them).
STATUS_IDS: Mapping[str, int] = {
    "Incomplete": 0, "Pending": 1, "Shipped": 2, "Partially Shipped": 3, "Refunded": 4, "Cancelled": 5,
    "Declined": 6, "Awaiting Payment": 7, "Awaiting Pickup": 8, "Awaiting Shipment": 9, "Completed": 10,
    "Awaiting Fulfillment": 11, "Manual Verification Required": 12, "Disputed": 13, "Partially Refunded": 14,
}
VOCABULARY = tuple(STATUS_IDS)

#: The standard labels BigCommerce has a true equivalent for (docs/carts/bigcommerce.md says why each).
#: Received, Ship Date Set, Backordered and Drop Shipped have none: a store maps them itself if it sends them.
DEFAULT_STATUS_MAP: Mapping[str, str] = {
    "Payment Received": "Awaiting Fulfillment",
    "Processing": "Awaiting Shipment",
    "Shipped": "Shipped",
    "Partially Shipped": "Partially Shipped",
    "Cancelled": "Cancelled",
    "Refunded": "Refunded",
    "Delivered": "Completed",
    "Completed": "Completed",
    "On Hold": "Manual Verification Required",
}

#: Carriers BigCommerce integrates natively: sent as ``shipping_provider``. Any other carrier goes as
#: ``tracking_carrier``, an AfterShip courier slug (lowercase, words joined by "-").
SHIPPING_PROVIDERS: Mapping[str, str] = {
    "ups": "ups", "usps": "usps", "fedex": "fedex", "federal express": "fedex", "endicia": "endicia",
    "royal mail": "royalmail", "royalmail": "royalmail", "australia post": "auspost", "auspost": "auspost",
    "canada post": "canadapost", "canadapost": "canadapost",
}

#: BigCommerce order ids are numbers. An order manager that imports with a store prefix ("BC-1234", "#1234")
#: keeps its reference: the number at its end is the order id.
ORDER_REF = re.compile(r"^\D*?0*(\d{1,12})$")

#: Replies that name a rate-limit window (every reply of the Admin API does).
LEFT_HEADER = "X-Rate-Limit-Requests-Left"
RESET_HEADER = "X-Rate-Limit-Time-Reset-Ms"


def order_id(ref: str) -> int | None:
    """The BigCommerce order id a cart order reference names, or None when it names none."""
    match = ORDER_REF.match(ref.strip())
    return int(match.group(1)) if match else None


def carrier_fields(carrier: str) -> dict[str, str]:
    """How a carrier name goes on a shipment: a native ``shipping_provider``, else an AfterShip ``tracking_carrier``."""
    key = " ".join(carrier.split()).casefold()
    if key in SHIPPING_PROVIDERS:
        return {"shipping_provider": SHIPPING_PROVIDERS[key]}
    return {"shipping_provider": "", "tracking_carrier": re.sub(r"[^a-z0-9]+", "-", key).strip("-")}


def error_messages(body: Any) -> str:
    """The words of a BigCommerce error body: V2's ``[{"status", "message"}]``, or V3's ``{"title"}``."""
    items = body if isinstance(body, list) else [body]
    words = [str(item.get("message") or item.get("title") or "") for item in items if isinstance(item, dict)]
    return "; ".join(w for w in words if w)


@dataclass(frozen=True)
class Line:
    """What is left to ship of one order product."""

    order_product_id: int
    order_address_id: int
    quantity: int


def shippable(products: Sequence[Mapping[str, Any]], addresses: Sequence[Mapping[str, Any]]) -> list[Line]:
    """The order's physical products not yet shipped, each at the shipping address it goes to."""
    known = [a["id"] for a in addresses if isinstance(a, Mapping) and type(a.get("id")) is int]
    lines = []
    for product in products:
        if not isinstance(product, Mapping) or type(product.get("id")) is not int:
            continue
        left = _count(product.get("quantity")) - _count(product.get("quantity_shipped"))
        if product.get("type", "physical") != "physical" or left <= 0 or not known:
            continue
        address = product.get("order_address_id")
        lines.append(Line(product["id"], address if isinstance(address, int) and address in known else known[0], left))
    return lines


def allocate(lines: list[Line], count: int, *, partial: bool = False) -> list[tuple[int, list[dict[str, int]]]]:
    """Items for up to ``count`` shipments, one per tracking number, each of the items of one address.

    Each shipment takes at least one unit and the first takes every unit the others do not: the numbers of
    a Shipped update ship the whole order. For a Partially Shipped update (``partial``) each takes one unit
    only, so the numbers of a later update still have items to carry. Deterministic on what BigCommerce still
    has to ship, so a send repeated after part of it was done adds the shipments one whole send would have.
    """
    units = [line for line in lines for _ in range(line.quantity)]
    if not units or count <= 0:
        return []
    first_address = units[0].order_address_id
    same = [unit for unit in units if unit.order_address_id == first_address]
    count = min(count, len(same))
    if partial:
        parts = [[unit] for unit in same[:count]]
    else:  # shipments 2..count take one unit each from the end; the first takes the rest
        cut = len(same) - (count - 1)
        parts = [same[:cut], *([unit] for unit in same[cut:])]
    shipments = []
    for part in parts:
        quantities: dict[int, int] = {}
        for line in part:
            quantities[line.order_product_id] = quantities.get(line.order_product_id, 0) + 1
        shipments.append((first_address, [{"order_product_id": pid, "quantity": q} for pid, q in quantities.items()]))
    return shipments


class BigCommerceConnector(Connector):
    """Sets a BigCommerce order's status and adds a shipment for each tracking number it lacks."""

    name = "bigcommerce"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["store_hash", "access_token"],
        "properties": {
            "store_hash": {"type": "string", "pattern": "^[a-z0-9]{1,40}$",
                           "description": "the store's hash, as in https://api.bigcommerce.com/stores/{store_hash}/"},
            "access_token": {"type": "string", "minLength": 8, "secret": True,
                             "description": "a store API account's access token with the Orders modify scope"},
            "api_base": {"type": "string", "pattern": "^https?://",
                         "description": "the API gateway (default https://api.bigcommerce.com)"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request to BigCommerce is given up"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = DEFAULT_STATUS_MAP
    rate_limit = RateLimit(150, 30.0, "Standard and Plus plans: 150 requests per 30 s window")
    timeout = 20.0

    def url(self, path: str) -> str:
        base = str(self.settings.get("api_base") or "https://api.bigcommerce.com").rstrip("/")
        return f"{base}/stores/{self.settings['store_hash']}/v2{path}"

    def http_auth(self) -> httpx.Auth:
        return HeaderAuth("X-Auth-Token", self.secret("access_token"))

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One V2 call: JSON both ways (the description requires both headers, on reads too)."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        return await self.call(method, self.url(path), headers=headers, **kwargs)

    async def read(self, path: str, kind: type[list[Any]] | type[dict[str, Any]], **kwargs: Any) -> Any:
        """A GET's JSON, of ``kind``; a reply that is not (a proxy's page in a 200) ends the send, to be retried.
        A 204 is an empty list (BigCommerce's answer for an order with no shipments)."""
        reply = await self.request("GET", path, **kwargs)
        body = [] if reply.status_code == 204 else json_body(reply)
        if not isinstance(body, kind):
            raise StopSend(RetryLater(f"BigCommerce answered GET {path} (HTTP {reply.status_code}) with no "
                                      f"readable JSON {kind.__name__}"))
        return body

    def classify(self, response: httpx.Response) -> Outcome | None:
        self._note_limit(response)
        code = response.status_code
        if code == 429:
            reset = _reset_seconds(response)
            delay = reset if reset is not None else retry_after_seconds(response)
            self.limit_hint(remaining=0, reset_in=delay)
            return RetryLater("BigCommerce's rate limit is used up (HTTP 429)", delay)
        if 400 <= code < 500 and code != 408:
            said = error_messages(json_body(response)) or response.text[:REASON_BOUND].strip()
            if code == 401:
                return Failed(f"BigCommerce refused the access token (HTTP 401): {said}")
            if code == 403:
                return Failed(f"BigCommerce refused (HTTP 403: the API account lacks the Orders modify scope?): {said}")
            return Failed(f"BigCommerce refused (HTTP {code}): {said}")
        return None

    def _note_limit(self, response: httpx.Response) -> None:
        """Every reply says how much of the window is left: the controller paces this store by it."""
        left = response.headers.get(LEFT_HEADER, "").strip()
        if left.isdigit():
            self.limit_hint(remaining=int(left), reset_in=_reset_seconds(response))

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or self.check_order(update) or await self.outcome_of(self._deliver(update))

    def check_order(self, update: StatusUpdate) -> Failed | None:
        if order_id(update.cart_order_ref) is None:
            return Failed(f"order {update.cart_order_ref!r} is not a BigCommerce order id (a number)")
        return None

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        oid = order_id(update.cart_order_ref)
        path = f"/orders/{oid}"
        order = await self.read(path, dict)  # a 404 here: the cart has no such order
        missing = await self._missing_tracking(path, update.tracking)
        partial = update.cart_status == "Partially Shipped"
        added, left_out = await self._add_shipments(path, missing, partial) if missing else (0, [])
        wanted = STATUS_IDS[update.cart_status]
        # A shipment moves the order to Shipped or Partially Shipped by itself: set the status after them.
        if added == 0 and order.get("status_id") == wanted:
            if left_out:
                return Delivered(_left_out(left_out))
            return AlreadyDone(f"order {oid} is {update.cart_status} with every tracking number")
        await self.request("PUT", path, json={"status_id": wanted})
        detail = f"order {oid} set to {update.cart_status}, {added} shipment(s) added"
        return Delivered(f"{detail}; {_left_out(left_out)}" if left_out else detail)

    async def _missing_tracking(self, path: str, tracking: Sequence[Tracking]) -> list[Tracking]:
        if not tracking:
            return []
        shipments = await self.read(f"{path}/shipments", list, params={"limit": 250})
        have = {str(s.get("tracking_number")) for s in shipments if isinstance(s, dict)}
        seen: set[str] = set()
        missing = []
        for track in tracking:
            if track.number not in have and track.number not in seen:
                seen.add(track.number)
                missing.append(track)
        return missing

    async def _add_shipments(self, path: str, missing: list[Tracking], partial: bool) -> tuple[int, list[str]]:
        """One shipment per missing tracking number; the numbers no item is left for are returned."""
        addresses = await self.read(f"{path}/shipping_addresses", list)
        products = await self.read(f"{path}/products", list, params={"limit": 250})
        plan = allocate(shippable(products, addresses), len(missing), partial=partial)
        for track, (address_id, items) in zip(missing, plan, strict=False):
            await self.request("POST", f"{path}/shipments", json={
                "order_address_id": address_id, "items": items, "tracking_number": track.number,
                **carrier_fields(track.carrier)})
        return len(plan), [t.number for t in missing[len(plan):]]

    async def test_connection(self) -> ConnectionResult:
        try:
            reply = await self.request("GET", "/order_statuses")
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        statuses = json_body(reply)
        count = len(statuses) if isinstance(statuses, list) else 0
        store = self.settings["store_hash"]
        return ConnectionResult(True, f"BigCommerce store {store} answers ({count} order statuses)")


def _count(value: Any) -> int:
    return value if type(value) is int else int(value) if isinstance(value, str) and value.isdigit() else 0


def _reset_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get(RESET_HEADER, "").strip()
    return int(value) / 1000 if value.isdigit() else None


def _left_out(numbers: list[str]) -> str:
    return (f"tracking number(s) {', '.join(numbers)} not added: BigCommerce has no item left to ship "
            "for them (a shipment must carry at least one item)")
