"""A simulated Magento 2 / Adobe Commerce store: the admin REST subset the connector uses, in memory, with faults.

It answers as Magento 2.4 does (``Magento\\Sales`` services behind ``/rest/<store_code>/V1``):

- an order has a *state* (new, processing, complete, closed, canceled, holded...) and a *status*, a label
  assigned to a state (pending, processing, complete, canceled, holded...); the connector's vocabulary is statuses;
- ``POST /V1/order/{orderId}/ship`` makes one shipment of every item left to ship (or the ``items`` given) with its
  ``tracks``: a new order becomes processing; an order invoiced and wholly shipped becomes complete. An order on hold,
  in payment review or canceled is refused with HTTP 400 "Shipment Document Validation Error(s):\\nA shipment cannot
  be created when an order has a status of <status>", one with nothing left to ship with "...\\nThe order does not
  allow a shipment to be created.", a track without its number with "...\\nPlease enter a tracking number."
  A second call makes a second shipment (no idempotency): the connector reads the shipments first;
- ``POST /V1/orders/{id}/comments`` appends a status-history row and sets the order's status to the row's
  ``status`` (``Order::addStatusHistory``; the state does not move), keeping it when none is given;
- ``POST /V1/orders/{id}/hold`` / ``unhold`` answer ``true`` or HTTP 400 "A hold action is not available." /
  "You cannot remove the hold."; ``POST /V1/orders/{id}/cancel`` answers ``false`` (HTTP 200) for an order Magento
  cannot cancel (wholly invoiced, on hold, complete, closed, canceled) and ``true`` once canceled;
- ``GET /V1/orders`` and ``GET /V1/shipments`` take ``searchCriteria`` filters (``eq``), as Magento's repositories do;
- errors are Magento's body ``{"message": ..., "parameters": ...}``: 401 "The consumer isn't authorized to access
  %resources." for a missing or wrong bearer token, 404 "The entity that was requested doesn't exist. Verify the entity
  and try again." for an unknown id, 400 "\\"%fieldName\\" is required. Enter and try again." for a body without the
  call's argument (``statusHistory``, ``entity``).

Magento publishes no request limit for admin endpoints; ``quota`` per ``window_seconds`` plays a host's (a WAF's,
a CDN's) limit: a plain 429 with ``Retry-After``, counted in ``throttled``. None (the default) has no limit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

FAULTS = ("http_429", "http_503", "http_4xx", "timeout")

#: Magento's default statuses and the state each is assigned to (``sales_order_status_state``).
STATUS_STATE = {
    "pending": "new", "pending_payment": "pending_payment", "processing": "processing", "complete": "complete",
    "closed": "closed", "canceled": "canceled", "holded": "holded", "payment_review": "payment_review",
    "fraud": "payment_review",
}
#: The default status of each state, which Magento gives an order its own actions move.
STATE_DEFAULT = {"new": "pending", "processing": "processing", "complete": "complete", "closed": "closed",
                 "canceled": "canceled", "holded": "holded", "pending_payment": "pending_payment",
                 "payment_review": "payment_review"}

NOT_FOUND = "The entity that was requested doesn't exist. Verify the entity and try again."
UNAUTHORIZED = "The consumer isn't authorized to access %resources."
REQUIRED = '"%fieldName" is required. Enter and try again.'
#: ShipOrder's refusals (Order\Validation\CanShip, Shipment\Validation\TrackValidator), under its heading.
SHIP_REFUSED = "Shipment Document Validation Error(s):\n"
CANNOT_SHIP = "The order does not allow a shipment to be created."
SHIP_STATE = "A shipment cannot be created when an order has a status of %1"
NO_TRACK_NUMBER = "Please enter a tracking number."
CANNOT_HOLD = "A hold action is not available."
CANNOT_UNHOLD = "You cannot remove the hold."
BAD_TYPE = 'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and try again.'
#: Webapi's PathProcessor takes an unknown store code for part of the path, which then matches no route.
NO_ROUTE = "Request does not match any route."

FILTER = re.compile(r"^searchCriteria\[filterGroups\]\[(\d+)\]\[filters\]\[(\d+)\]\[(field|value|conditionType)\]$")


def error(status: int, message: str, parameters: Any = None) -> JSONResponse:
    """Magento's error body: the message with its %placeholders, and their values in ``parameters``."""
    body: dict[str, Any] = {"message": message}
    if parameters is not None:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class MagentoSimulator:
    token: str = "magento-integration-token-0001"
    store_codes: tuple[str, ...] = ("default", "all")
    retry_after: int = 3
    requests: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by increment id
    shipments: dict[int, dict[str, Any]] = field(default_factory=dict)  # by shipment entity id
    faults: deque[str] = field(default_factory=deque)
    #: A host's limit in front of the store (Magento has none of its own): None, no limit.
    quota: int | None = None
    window_seconds: float = 60.0
    throttled: int = 0
    seen: deque[float] = field(default_factory=deque)
    next_id: int = 1

    #: Magento's refusal of an action it will never take: HTTP 400 with its message.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the kit's protocol ----------------------------------------------------------

    def add_order(self, ref: str, status: str = "pending") -> None:
        """An order with increment id ``ref`` (entity id ``int(ref)`` when ``ref`` is digits) of two items.

        ``status`` a Magento status (anything else: pending, a new order not invoiced). Processing and later
        states are invoiced; complete and closed are shipped too; holded was processing before its hold.
        """
        status = status if status in STATUS_STATE else "pending"
        state = STATUS_STATE[status]
        entity_id = int(ref) if ref.isdigit() else self._new_id()
        invoiced = state in ("processing", "complete", "closed", "holded")
        shipped = state in ("complete", "closed")
        items = [{"item_id": entity_id * 10 + n, "order_id": entity_id, "sku": f"SKU-{n}", "name": f"Item {n}",
                  "product_type": "simple", "qty_ordered": qty, "qty_invoiced": qty if invoiced else 0,
                  "qty_shipped": qty if shipped else 0, "qty_canceled": qty if state == "canceled" else 0,
                  "qty_refunded": qty if state == "closed" else 0}
                 for n, qty in ((1, 1), (2, 2))]
        self.orders[ref] = {
            "entity_id": entity_id, "increment_id": ref, "state": state, "status": status, "store_id": 1,
            "hold_before_state": "processing" if state == "holded" else None,
            "hold_before_status": "processing" if state == "holded" else None,
            "created_at": now(), "items": items, "status_histories": [],
        }

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        if order is None:
            return None
        shipments = [s for s in self.shipments.values() if s["order_id"] == order["entity_id"]]
        return {
            "status": order["status"],
            "state": order["state"],
            "shipments": [{"items": sorted((i["order_item_id"], i["qty"]) for i in s["items"]),
                           "tracks": [(t["title"], t["track_number"], t["carrier_code"]) for t in s["tracks"]]}
                          for s in shipments],
            "comments": [(h["status"], h["comment"]) for h in order["status_histories"]],
        }

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self.orders.get(ref)
        if order is None:
            return []
        return [(t["title"], t["track_number"]) for s in self.shipments.values()
                if s["order_id"] == order["entity_id"] for t in s["tracks"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def app(self) -> Starlette:
        base = "/rest/{store}/V1"
        return Starlette(routes=[
            Route(f"{base}/orders", self._orders, methods=["GET"]),
            Route(f"{base}/orders/{{id}}", self._order, methods=["GET"]),
            Route(f"{base}/orders/{{id}}/comments", self._comment, methods=["POST"]),
            Route(f"{base}/orders/{{id}}/comments", self._comments, methods=["GET"]),
            Route(f"{base}/orders/{{id}}/cancel", self._cancel, methods=["POST"]),
            Route(f"{base}/orders/{{id}}/hold", self._hold, methods=["POST"]),
            Route(f"{base}/orders/{{id}}/unhold", self._unhold, methods=["POST"]),
            Route(f"{base}/order/{{id}}/ship", self._ship, methods=["POST"]),
            Route(f"{base}/shipments", self._shipments, methods=["GET"]),
            Route(f"{base}/shipment/track", self._track, methods=["POST"]),
        ])

    # -- helpers -------------------------------------------------------------------------

    def _new_id(self) -> int:
        while any(o["entity_id"] == self.next_id for o in self.orders.values()):
            self.next_id += 1
        self.next_id += 1
        return self.next_id - 1

    def by_id(self, entity_id: int) -> dict[str, Any] | None:
        return next((o for o in self.orders.values() if o["entity_id"] == entity_id), None)

    async def _gate(self, request: Request, resource: str) -> Response | None:
        """Count the request; then a queued fault, the host's limit, the store code, the bearer token."""
        self.requests += 1
        if self.faults:
            fault = self.faults.popleft()
            if fault == "timeout":
                await asyncio.sleep(3600)
            if fault == "http_4xx":
                return error(400, SHIP_REFUSED + CANNOT_SHIP)
            status = 429 if fault == "http_429" else 503
            return PlainTextResponse("Too Many Requests" if status == 429 else "Service Temporarily Unavailable",
                                     status_code=status, headers={"Retry-After": str(self.retry_after)})
        if self.quota is not None:
            clock = time.monotonic()
            while self.seen and clock - self.seen[0] >= self.window_seconds:
                self.seen.popleft()
            if len(self.seen) >= self.quota:
                self.throttled += 1
                wait = math.ceil(self.window_seconds - (clock - self.seen[0]))
                return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": str(wait)})
            self.seen.append(clock)
        if request.path_params["store"] not in self.store_codes:
            return error(404, NO_ROUTE)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, UNAUTHORIZED, {"resources": resource})
        return None

    async def _target(self, request: Request, resource: str) -> tuple[Response | None, dict[str, Any] | None]:
        """The gate, then the order the path's integer id names."""
        refused = await self._gate(request, resource)
        if refused:
            return refused, None
        raw = request.path_params["id"]
        if not re.fullmatch(r"\d+", raw):
            return error(400, BAD_TYPE, {"value": raw, "type": "int"}), None
        order = self.by_id(int(raw))
        return (error(404, NOT_FOUND), None) if order is None else (None, order)

    async def _body(self, request: Request) -> tuple[Response | None, dict[str, Any]]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return error(400, "Decoding error: \nSyntax error"), {}
        if not isinstance(body, dict):
            return error(400, "Decoding error: \nSyntax error"), {}
        return None, body

    @staticmethod
    def _missing(obj: Any, fields: tuple[str, ...]) -> Response | None:
        if not isinstance(obj, dict):
            return error(400, REQUIRED, {"fieldName": fields[0]})
        for name in fields:
            if obj.get(name) is None:
                return error(400, REQUIRED, {"fieldName": name})
        return None

    def _view(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order as ``GET /V1/orders/{id}`` gives it (the fields the connector reads, and a few more)."""
        view = {k: v for k, v in order.items() if not k.startswith("hold_before") or v is not None}
        view["items"] = [dict(i) for i in order["items"]]
        view["status_histories"] = [dict(h) for h in reversed(order["status_histories"])]  # newest first
        view["extension_attributes"] = {}
        return view

    @staticmethod
    def _filters(request: Request) -> tuple[list[tuple[str, str, str]], int | None]:
        groups: dict[tuple[str, str], dict[str, str]] = {}
        for key, value in request.query_params.items():
            found = FILTER.match(key)
            if found:
                groups.setdefault((found[1], found[2]), {})[found[3]] = value
        filters = [(f.get("field", ""), f.get("value", ""), f.get("conditionType", "eq")) for f in groups.values()]
        size = request.query_params.get("searchCriteria[pageSize]")
        return filters, int(size) if size and size.isdigit() else None

    @staticmethod
    def _matches(row: dict[str, Any], filters: list[tuple[str, str, str]]) -> bool:
        return all(cond == "eq" and str(row.get(name)) == value for name, value, cond in filters)

    @staticmethod
    def qty_to_ship(order: dict[str, Any]) -> float:
        return sum(max(0, i["qty_ordered"] - i["qty_shipped"] - i["qty_canceled"] - i["qty_refunded"])
                   for i in order["items"])

    @staticmethod
    def qty_to_invoice(order: dict[str, Any]) -> float:
        return sum(max(0, i["qty_ordered"] - i["qty_invoiced"] - i["qty_canceled"]) for i in order["items"])

    # -- reads ---------------------------------------------------------------------------

    async def _orders(self, request: Request) -> Response:
        refused = await self._gate(request, "Magento_Sales::actions_view")
        if refused:
            return refused
        filters, size = self._filters(request)
        found = [self._view(o) for o in self.orders.values() if self._matches(o, filters)]
        criteria: dict[str, Any] = {"filter_groups": [{"filters": [
            {"field": f, "value": v, "condition_type": c} for f, v, c in filters]}] if filters else []}
        if size is not None:
            criteria["page_size"] = size
        return JSONResponse({"items": found[:size] if size else found, "search_criteria": criteria,
                             "total_count": len(found)})

    async def _order(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::actions_view")
        return refused or JSONResponse(self._view(order or {}))

    async def _comments(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::actions_view")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        return JSONResponse({"items": list(order["status_histories"]), "total_count": len(order["status_histories"])})

    async def _shipments(self, request: Request) -> Response:
        refused = await self._gate(request, "Magento_Sales::shipment")
        if refused:
            return refused
        filters, size = self._filters(request)
        found = [json.loads(json.dumps(s)) for s in self.shipments.values() if self._matches(s, filters)]
        return JSONResponse({"items": found[:size] if size else found, "total_count": len(found)})

    # -- writes --------------------------------------------------------------------------

    async def _comment(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::comment")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        bad, body = await self._body(request)
        history = body.get("statusHistory")
        # The argument is required (Webapi's ServiceInputProcessor); the row's own fields are not checked by Magento.
        bad = bad or self._missing(body, ("statusHistory",))
        if bad:
            return bad
        assert isinstance(history, dict)
        status = history.get("status") or order["status"]  # Order::addStatusHistory: the row's status, else kept
        order["status_histories"].append({
            "entity_id": sum(len(o["status_histories"]) for o in self.orders.values()) + 1,
            "parent_id": order["entity_id"], "entity_name": "order", "created_at": now(),
            "comment": history.get("comment"), "status": status,
            "is_customer_notified": history.get("is_customer_notified"),
            "is_visible_on_front": history.get("is_visible_on_front", 0)})
        order["status"] = status
        return JSONResponse(True)

    async def _hold(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::hold")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        if order["state"] in ("canceled", "payment_review", "complete", "closed", "holded"):
            return error(400, CANNOT_HOLD)
        order.update(hold_before_state=order["state"], hold_before_status=order["status"],
                     state="holded", status="holded")
        return JSONResponse(True)

    async def _unhold(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::unhold")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        if order["state"] != "holded":
            return error(400, CANNOT_UNHOLD)
        order.update(state=order["hold_before_state"], status=order["hold_before_status"],
                     hold_before_state=None, hold_before_status=None)
        return JSONResponse(True)

    async def _cancel(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::cancel")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        # Order::canCancel: nothing left to invoice (a credit memo's work), on hold, or already finished: false.
        if (order["state"] in ("holded", "payment_review", "canceled", "complete", "closed")
                or self.qty_to_invoice(order) == 0):
            return JSONResponse(False)
        for item in order["items"]:
            item["qty_canceled"] += max(0, item["qty_ordered"] - max(item["qty_shipped"], item["qty_invoiced"])
                                        - item["qty_canceled"] - item["qty_refunded"])
        order.update(state="canceled", status="canceled")
        return JSONResponse(True)

    async def _ship(self, request: Request) -> Response:
        refused, order = await self._target(request, "Magento_Sales::ship")
        if refused or order is None:
            return refused or error(404, NOT_FOUND)
        bad, body = await self._body(request)
        if bad:
            return bad
        tracks = body.get("tracks") or []
        if not isinstance(tracks, list) or not all(isinstance(t, dict) for t in tracks):
            return error(400, "Decoding error: \nSyntax error")
        if order["state"] in ("holded", "payment_review", "canceled"):
            return error(400, SHIP_REFUSED + SHIP_STATE.replace("%1", order["status"]))
        if self.qty_to_ship(order) == 0:
            return error(400, SHIP_REFUSED + CANNOT_SHIP)
        if any(not t.get("track_number") for t in tracks):
            return error(400, SHIP_REFUSED + NO_TRACK_NUMBER)
        left = {i["item_id"]: i["qty_ordered"] - i["qty_shipped"] - i["qty_canceled"] - i["qty_refunded"]
                for i in order["items"]}
        wanted = body.get("items") or [{"order_item_id": k, "qty": v} for k, v in left.items() if v > 0]
        for line in wanted:
            bad = self._missing(line, ("order_item_id", "qty"))
            if bad:
                return bad
            if line["order_item_id"] not in left or not 0 < line["qty"] <= left[line["order_item_id"]]:
                return error(400, SHIP_REFUSED + CANNOT_SHIP)
        shipment_id = max(self.shipments, default=0) + 1
        for line in wanted:
            next(i for i in order["items"] if i["item_id"] == line["order_item_id"])["qty_shipped"] += line["qty"]
        self.shipments[shipment_id] = {
            "entity_id": shipment_id, "order_id": order["entity_id"], "increment_id": f"{shipment_id:09d}",
            "created_at": now(), "items": [{"order_item_id": line["order_item_id"], "qty": line["qty"]}
                                           for line in wanted],
            "tracks": [self._track_row(shipment_id, order["entity_id"], t) for t in tracks], "comments": []}
        # ResourceModel\Order\Handler\State::check: a new order shipped is in process; invoiced and shipped, complete.
        if order["state"] == "new":
            order.update(state="processing", status=STATE_DEFAULT["processing"])
        if self.qty_to_ship(order) == 0 and self.qty_to_invoice(order) == 0:
            order.update(state="complete", status=STATE_DEFAULT["complete"])
        return JSONResponse(shipment_id)

    def _track_row(self, shipment_id: int, order_id: int, track: dict[str, Any]) -> dict[str, Any]:
        number = sum(len(s["tracks"]) for s in self.shipments.values()) + 1
        return {"entity_id": number, "parent_id": shipment_id, "order_id": order_id, "created_at": now(),
                "track_number": track["track_number"], "title": track["title"],
                "carrier_code": track["carrier_code"], "weight": track.get("weight"), "qty": track.get("qty"),
                "description": track.get("description")}

    async def _track(self, request: Request) -> Response:
        refused = await self._gate(request, "Magento_Sales::ship")
        if refused:
            return refused
        bad, body = await self._body(request)
        entity = body.get("entity")
        bad = bad or self._missing(body, ("entity",)) or self._missing(
            entity, ("order_id", "parent_id", "track_number", "title", "carrier_code"))
        if bad:
            return bad
        assert isinstance(entity, dict)
        shipment = self.shipments.get(entity["parent_id"])
        if shipment is None or shipment["order_id"] != entity["order_id"]:
            return error(404, NOT_FOUND)
        row = self._track_row(shipment["entity_id"], shipment["order_id"], entity)
        shipment["tracks"].append(row)
        return JSONResponse(row)


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return MagentoSimulator(**kwargs).app()
