"""The Magento 2 / Adobe Commerce connector: order statuses, shipments and tracking through the admin REST API.

Magento has no "set status" call. Each label of the vocabulary is the action Magento itself takes to reach it:

- ``complete``: ship every item left to ship (``POST /V1/order/{id}/ship`` with the tracks); Magento makes an
  invoiced, wholly shipped order Complete by itself;
- ``holded``: ``POST /V1/orders/{id}/hold``; ``canceled``: ``POST /V1/orders/{id}/cancel``;
- ``processing``: taking an order off hold (``POST /V1/orders/{id}/unhold``) where it is on hold;
- and where Magento's own action leaves another status (``processing`` on a new order, ``complete`` on one not
  invoiced), a status-history row with the status (``POST /V1/orders/{id}/comments``), which sets it.

Tracking numbers live on shipments only: with tracking, the order is shipped first (every item left to ship), or,
when nothing is left to ship, the numbers are added to its latest shipment (``POST /V1/shipment/track``).
Everything is read first (the order, its shipments' tracks, its status history), so a repeat creates nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from cartstatus.auth import HeaderAuth
from cartstatus.connector import ConnectionResult, Connector, StatusUpdate, StopSend, Tracking, json_body
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome

#: The statuses of Magento's default install the connector can bring an order to (each is its state's default).
VOCABULARY = ("processing", "complete", "holded", "canceled")

#: Magento's own carrier codes (``Magento_Shipping`` carriers); any other carrier is ``custom`` with its name.
CARRIER_CODES = {"ups": "ups", "usps": "usps", "fedex": "fedex", "dhl": "dhl"}

#: States in which Magento makes no shipment (``Order::canShip``) whatever is left to ship.
NO_SHIPMENT = ("holded", "payment_review", "canceled", "closed")
#: States an order never leaves by the connector's means: canceled; closed by a credit memo; complete (Magento
#: holds or cancels no complete order, and a status comment would only relabel it).
FINAL = ("canceled", "closed", "complete")

SEARCH = "searchCriteria[filterGroups][0][filters][0]"


def carrier_code(carrier: str) -> str:
    return CARRIER_CODES.get(carrier.casefold().replace(" ", ""), "custom")


def to_ship(order: Mapping[str, Any]) -> float:
    """Quantity left to ship, over the order's items (``Order\\Item::getQtyToShip``, parents and children alike)."""
    return sum(max(0.0, float(i.get("qty_ordered") or 0) - float(i.get("qty_shipped") or 0)
                   - float(i.get("qty_canceled") or 0) - float(i.get("qty_refunded") or 0))
               for i in order.get("items", ()) if not i.get("parent_item_id"))


def to_invoice(order: Mapping[str, Any]) -> float:
    return sum(max(0.0, float(i.get("qty_ordered") or 0) - float(i.get("qty_invoiced") or 0)
                   - float(i.get("qty_canceled") or 0))
               for i in order.get("items", ()) if not i.get("parent_item_id"))


def magento_message(body: Any) -> str | None:
    """Magento's error message with its ``%name`` / ``%1`` placeholders filled from ``parameters``."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    text: str = body["message"]
    params = body.get("parameters")
    if isinstance(params, dict):
        for key, value in params.items():
            text = text.replace(f"%{key}", str(value))
    elif isinstance(params, list):
        for n, value in reversed(list(enumerate(params, 1))):  # %10 before %1
            text = text.replace(f"%{n}", str(value))
    return text


class MagentoConnector(Connector):
    """Sends status changes and tracking numbers to a Magento 2 store's admin REST API."""

    name = "magento"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "token"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://",
                    "description": "the store's base URL, before /rest (https://shop.example.com)"},
            "token": {"type": "string", "minLength": 8, "secret": True,
                      "description": "an integration's access token (or an admin token), with the Sales resources"},
            "store_code": {"type": "string", "pattern": "^[a-z0-9_]+$", "default": "default",
                           "description": "the store view code in /rest/<store_code>/V1 (default: default)"},
            "order_ref": {"enum": ["increment_id", "entity_id"], "default": "increment_id",
                          "description": "what the cart's order reference is: the order number customers see "
                                         "(increment_id, 000000123; the default) or Magento's internal entity_id"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 55,
                        "description": "seconds to wait for each request (default 20)"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Payment Received": "processing",
        "Processing": "processing",
        "Shipped": "complete",
        "Drop Shipped": "complete",
        "Delivered": "complete",
        "Completed": "complete",
        "Cancelled": "canceled",
        "On Hold": "holded",
    }
    rate_limit = None  # Magento publishes none for admin endpoints
    timeout = 20.0

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        # increment id -> entity id, learnt once per store: the increment id never changes for an order.
        self.entity_ids: dict[str, int] = {}

    def url(self, path: str) -> str:
        store = self.settings.get("store_code", "default")
        return f"{str(self.settings['url']).rstrip('/')}/rest/{store}/V1{path}"

    def http_auth(self) -> httpx.Auth:
        return HeaderAuth("Authorization", self.secret("token"), scheme="Bearer")

    def classify(self, response: httpx.Response) -> Outcome | None:
        # Magento's refusals are 4xx with {"message", "parameters"}; give them in its words. 408 and 429 (a host's
        # limit: Magento has none) are left to the status-code rules, which retry them.
        code = response.status_code
        if code < 400 or code >= 500 or code in (408, 425, 429):
            return None
        text = " ".join((magento_message(json_body(response)) or response.text).split())  # on one line
        if code == 401:
            return Failed(f"Magento refused the access token (HTTP 401): {text}")
        if code == 404:
            return Failed(f"Magento found no such order or route (HTTP 404): {text}")
        return Failed(f"Magento refused (HTTP {code}): {text}")

    # -- reading -----------------------------------------------------------------------------

    async def order_id(self, ref: str) -> int | Failed:
        """Magento's entity id for the cart's reference, per the ``order_ref`` setting."""
        if self.settings.get("order_ref", "increment_id") == "entity_id":
            return int(ref) if ref.isdigit() else Failed(
                f"order reference {ref!r} is not a Magento entity id (digits); is order_ref right?")
        if ref not in self.entity_ids:
            reply = await self.call("GET", self.url("/orders"), params={
                f"{SEARCH}[field]": "increment_id", f"{SEARCH}[value]": ref, f"{SEARCH}[conditionType]": "eq"})
            items = (json_body(reply) or {}).get("items") or []
            if not items:
                return Failed(f"Magento has no order with increment id {ref!r}")
            self.entity_ids[ref] = int(items[0]["entity_id"])
        return self.entity_ids[ref]

    async def read_order(self, entity_id: int) -> dict[str, Any]:
        return dict((await self.call("GET", self.url(f"/orders/{entity_id}"))).json())

    async def read_shipments(self, entity_id: int) -> list[dict[str, Any]]:
        reply = await self.call("GET", self.url("/shipments"), params={
            f"{SEARCH}[field]": "order_id", f"{SEARCH}[value]": str(entity_id), f"{SEARCH}[conditionType]": "eq"})
        return list((json_body(reply) or {}).get("items") or [])

    # -- sending -----------------------------------------------------------------------------

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        found = await self.order_id(update.cart_order_ref)
        if isinstance(found, Failed):
            return found
        oid, target = found, update.cart_status
        order = await self.read_order(oid)
        if order.get("state") in FINAL and order.get("status") != target:
            return Failed(f"the order is {order.get('status')} in Magento (state {order.get('state')}): "
                          f"it cannot become {target}")
        if order.get("state") == "payment_review":  # Magento ships, holds and cancels none until it is settled
            return Failed(f"the order is {order.get('status')} in Magento (payment review): settle its payment first")
        if target == "canceled" and order.get("state") != "canceled" and to_invoice(order) == 0:
            return Failed("Magento cannot cancel an order that is wholly invoiced: refund it with a credit memo")
        shipments = await self.read_shipments(oid)
        have = {str(t.get("track_number")) for s in shipments for t in s.get("tracks") or ()}
        missing = list({t.number: t for t in update.tracking if t.number not in have}.values())  # each number once
        done: list[str] = []
        left_out: list[str] = []

        # Off hold first when the order must leave it, or to be shipped (Magento ships no order on hold).
        ship_wanted = bool(missing) or target == "complete"
        if order.get("state") == "holded" and (target != "holded" or (ship_wanted and to_ship(order) > 0)):
            await self.expect_true("POST", f"/orders/{oid}/unhold", "take the order off hold")
            order = await self.read_order(oid)
            done.append("taken off hold")

        if ship_wanted:
            if to_ship(order) > 0 and order.get("state") not in NO_SHIPMENT:
                await self.call("POST", self.url(f"/order/{oid}/ship"),
                                json={"notify": False, "tracks": [self.track(t) for t in missing]})
                done.append(f"shipped with {len(missing)} tracking numbers" if missing else "shipped")
            elif missing and shipments:
                latest = max(shipments, key=lambda s: int(s.get("entity_id") or 0))
                for t in missing:  # nothing left to ship: the numbers go on the latest shipment
                    await self.call("POST", self.url("/shipment/track"), json={"entity": {
                        **self.track(t), "order_id": oid, "parent_id": int(latest["entity_id"]),
                        "weight": 0, "qty": 0, "description": ""}})
                done.append(f"{len(missing)} tracking numbers added to shipment {latest.get('increment_id')}")
            elif missing:
                left_out = [t.number for t in missing]

        if target == "holded" and order.get("state") != "holded":
            await self.call("POST", self.url(f"/orders/{oid}/hold"))
            done.append("put on hold")
        if target == "canceled" and order.get("state") != "canceled":
            await self.expect_true("POST", f"/orders/{oid}/cancel", "cancel the order")
            done.append("canceled")

        if done:
            order = await self.read_order(oid)  # what Magento made of it
        # A comment relabels only an order at work (new, processing): Magento's own actions make the other states.
        if order.get("status") != target and (target in ("holded", "canceled")
                                               or order.get("state") not in ("new", "processing")):
            return Failed(f"Magento left the order {order.get('status')} (state {order.get('state')}), "
                          f"not {target}")
        comment = update.note or f"{update.status} (from the order manager)"
        histories = order.get("status_histories") or []
        has_row = any(h.get("status") == target and h.get("comment") == comment for h in histories)
        if order.get("status") != target or (update.note and not has_row):
            await self.call("POST", self.url(f"/orders/{oid}/comments"), json={"statusHistory": {
                "comment": comment, "is_customer_notified": 0, "is_visible_on_front": 0,
                "parent_id": oid, "status": target}})
            done.append(f"status {target}")
        detail = "; ".join(done)
        if left_out:
            detail += (f"{'; ' if detail else ''}tracking numbers {', '.join(left_out)} not recorded: the order has "
                       "no shipment and Magento makes none for it in its state")
        if not done:
            return AlreadyDone(detail or f"the order is {target} with every tracking number")
        return Delivered(detail)

    @staticmethod
    def track(t: Tracking) -> dict[str, str]:
        return {"track_number": t.number, "title": t.carrier, "carrier_code": carrier_code(t.carrier)}

    async def expect_true(self, method: str, path: str, what: str) -> None:
        """A call Magento answers ``true`` or ``false`` (HTTP 200 either way): false is its refusal."""
        reply = await self.call(method, self.url(path))
        if json_body(reply) is not True:
            raise StopSend(Failed(f"Magento would not {what}: it answered {reply.text.strip()[:100]!r}"))

    async def test_connection(self) -> ConnectionResult:
        try:
            reply = await self.call("GET", self.url("/orders"), params={"searchCriteria[pageSize]": "1"})
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        total = (json_body(reply) or {}).get("total_count", "?")
        return ConnectionResult(True, f"Magento store view {self.settings.get('store_code', 'default')} answers "
                                      f"({total} orders)")
