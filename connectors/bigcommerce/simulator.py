"""A simulated BigCommerce store: the V2 Orders API subset the connector uses, in memory, with faults.

Paths under ``/stores/{store_hash}/v2``: ``GET /order_statuses``, ``GET|PUT /orders/{id}``,
``GET /orders/{id}/shipping_addresses``, ``GET /orders/{id}/products``, ``GET|POST /orders/{id}/shipments``.
It answers as BigCommerce documents: ``X-Auth-Token`` checked (401), V2 error bodies
(``[{"status": 404, "message": "The requested resource was not found."}]``), 204 for an order with no
shipments, a shipment refused (400) without an address of the order or with more items than are left to
ship, the order moved to Shipped or Partially Shipped by a shipment, and the rate-limit headers on every
reply. With ``quota`` set it enforces a window of ``window_seconds`` as BigCommerce does: a 429 once the
quota is used, with ``X-Rate-Limit-Time-Reset-Ms`` saying when the window resets.

It speaks the conformance kit's simulator protocol (``cartstatus.testing.simulator``). Orders are kept by
their BigCommerce id; the kit's references (``K-100``) name the number at their end, as the connector reads
them (:func:`~cartstatus.connectors.bigcommerce.connector.order_id`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import STATUS_IDS, order_id

FAULTS = ("http_429", "http_503", "http_500", "http_401", "http_4xx", "timeout")
STATUS_NAMES = {number: name for name, number in STATUS_IDS.items()}
#: ``shipping_provider`` values BigCommerce takes (the description's enum), with the names it shows.
PROVIDER_NAMES = {"auspost": "Australia Post", "canadapost": "Canada Post", "endicia": "Endicia", "usps": "USPS",
                  "fedex": "FedEx", "ups": "UPS", "upsready": "UPS", "upsonline": "UPS", "shipperhq": "ShipperHQ",
                  "royalmail": "Royal Mail", "": ""}
#: A few AfterShip courier slugs, by the names carriers go by.
COURIER_NAMES = {"dhl": "DHL", "ontrac": "OnTrac", "lasership": "LaserShip", "purolator": "Purolator"}
#: Quota reported while the limit is off (``quota=None``): a window that never runs out.
UNLIMITED = 1_000_000
NOT_FOUND = "The requested resource was not found."
#: The simulator's wording for a refused token (BigCommerce's own 401 text was not found to check against).
UNAUTHORIZED = "You are not authorized to access this resource. Check the X-Auth-Token."

Handler = Callable[[Request, dict[str, Any] | None], Awaitable[Response]]


def v2_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """BigCommerce V2's error body: a list of ``{"status", "message"}``."""
    return JSONResponse([{"status": status, "message": message}], status_code=status, headers=headers)


@dataclass
class BigCommerceSimulator:
    store_hash: str = "kitstore1"
    access_token: str = "bc-kit-access-token-1"
    retry_after: int = 2
    #: Requests allowed per window; None switches the limit off (the default, for the kit's speed).
    quota: int | None = None
    window_seconds: float = 30.0
    requests: int = 0
    #: How many 429s the quota gave (faults aside).
    throttled: int = 0
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    faults: deque[str] = field(default_factory=deque)
    used: int = 0
    window_start: float | None = None
    next_id: int = 1

    #: BigCommerce's refusal of a request it will never take: a 400 with its V2 error body.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the store's orders ------------------------------------------------------------------------------

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add_order(self, ref: str, status: str = "Awaiting Fulfillment",
                  quantities: tuple[int, ...] = (2, 1)) -> int:
        """An order of physical products (``quantities`` units each) to one shipping address; its id."""
        oid = order_id(ref)
        if oid is None:
            raise ValueError(f"{ref!r} names no BigCommerce order id (a number)")
        address = {"id": self._id(), "order_id": oid, "first_name": "Jane", "last_name": "Doe",
                   "street_1": "1 Main Street", "city": "Austin", "state": "Texas", "zip": "78751",
                   "country": "United States", "country_iso2": "US", "items_total": sum(quantities),
                   "items_shipped": 0, "shipping_method": "Flat Rate"}
        products = [{"id": self._id(), "order_id": oid, "product_id": 77 + n, "name": f"Product {n + 1}",
                     "sku": f"SKU-{n + 1}", "type": "physical", "quantity": q, "quantity_shipped": 0,
                     "order_address_id": address["id"]} for n, q in enumerate(quantities)]
        self.orders[oid] = {"id": oid, "status_id": STATUS_IDS.get(status, 11), "addresses": [address],
                            "products": products, "shipments": []}
        return oid

    def _order(self, ref: str) -> dict[str, Any] | None:
        oid = order_id(ref)
        return None if oid is None else self.orders.get(oid)

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self._order(ref)
        if order is None:
            return None
        keep = ("order_address_id", "tracking_number", "shipping_provider", "tracking_carrier", "items")
        return {"status": STATUS_NAMES[order["status_id"]], "status_id": order["status_id"],
                "shipped": {p["id"]: p["quantity_shipped"] for p in order["products"]},
                "shipments": [{k: s[k] for k in keep} for s in order["shipments"]]}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self._order(ref)
        return [] if order is None else [(carrier_name(s), s["tracking_number"]) for s in order["shipments"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    # -- the API -------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        base = "/stores/{store_hash}/v2"
        return Starlette(routes=[
            Route(f"{base}/order_statuses", self._gated(self._statuses), methods=["GET"]),
            Route(f"{base}/orders/{{order_id}}", self._gated(self._get_order), methods=["GET"]),
            Route(f"{base}/orders/{{order_id}}", self._gated(self._put_order), methods=["PUT"]),
            Route(f"{base}/orders/{{order_id}}/shipping_addresses", self._gated(self._addresses), methods=["GET"]),
            Route(f"{base}/orders/{{order_id}}/products", self._gated(self._products), methods=["GET"]),
            Route(f"{base}/orders/{{order_id}}/shipments", self._gated(self._shipments), methods=["GET"]),
            Route(f"{base}/orders/{{order_id}}/shipments", self._gated(self._ship), methods=["POST"]),
        ])

    def _gated(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            refused = await self._fault()
            if refused is not None:
                return refused
            if request.headers.get("x-auth-token") != self.access_token:
                # BigCommerce answers a missing or wrong token before it counts the request against the quota.
                return self._limited(v2_error(401, UNAUTHORIZED))
            if request.path_params["store_hash"] != self.store_hash:
                return self._limited(v2_error(404, NOT_FOUND))
            throttled = self._spend()
            if throttled is not None:
                return throttled
            order = None
            if "order_id" in request.path_params:
                raw = request.path_params["order_id"]
                order = self.orders.get(int(raw)) if raw.isdigit() else None
                if order is None:
                    return self._limited(v2_error(404, NOT_FOUND))
            return self._limited(await handler(request, order))
        return endpoint

    async def _fault(self) -> Response | None:
        """Count the request and play a queued fault."""
        self.requests += 1
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault == "timeout":
            await asyncio.sleep(3600)
        if fault == "http_4xx":
            return self._limited(v2_error(400, "The field 'status_id' is invalid."))
        if fault == "http_401":
            return self._limited(v2_error(401, UNAUTHORIZED))
        if fault == "http_429":
            return v2_error(429, "Too many requests: the rate limit has been exceeded.", self._limit_headers(
                left=0, reset_ms=self.retry_after * 1000) | {"Retry-After": str(self.retry_after)})
        status = {"http_503": 503, "http_500": 500}[fault]
        headers = {"Retry-After": str(self.retry_after)} if status == 503 else {}
        return JSONResponse({"status": status, "title": "Service Unavailable"}, status_code=status, headers=headers)

    def _window(self) -> tuple[int, int]:
        """(requests left, milliseconds until the window resets), a new window begun when the last has passed."""
        now = time.monotonic()
        if self.window_start is None or now - self.window_start >= self.window_seconds:
            self.window_start, self.used = now, 0
        reset_ms = max(0, int((self.window_start + self.window_seconds - now) * 1000))
        quota = UNLIMITED if self.quota is None else self.quota
        return max(0, quota - self.used), reset_ms

    def _spend(self) -> Response | None:
        """Count one request against the window; a 429 when the quota is used up."""
        left, reset_ms = self._window()
        if self.quota is not None and left <= 0:
            self.throttled += 1
            return v2_error(429, "Too many requests: the rate limit has been exceeded.",
                            self._limit_headers(left=0, reset_ms=reset_ms))
        self.used += 1
        return None

    def _limit_headers(self, *, left: int, reset_ms: int) -> dict[str, str]:
        return {"X-Rate-Limit-Requests-Quota": str(UNLIMITED if self.quota is None else self.quota),
                "X-Rate-Limit-Requests-Left": str(left),
                "X-Rate-Limit-Time-Window-Ms": str(int(self.window_seconds * 1000)),
                "X-Rate-Limit-Time-Reset-Ms": str(reset_ms)}

    def _limited(self, response: Response) -> Response:
        left, reset_ms = self._window()
        response.headers.update(self._limit_headers(left=left, reset_ms=reset_ms))
        return response

    async def _statuses(self, request: Request, order: dict[str, Any] | None) -> Response:
        return JSONResponse([{"id": n, "name": name, "system_label": name, "custom_label": name, "order": n}
                             for n, name in STATUS_NAMES.items()])

    async def _get_order(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        return JSONResponse(order_resource(order))

    async def _put_order(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        body = await json_of(request)
        if not isinstance(body, dict):
            return v2_error(400, "The request body is not a JSON object.")
        if "status_id" in body:
            status_id = body["status_id"]
            if type(status_id) is not int or status_id not in STATUS_NAMES:
                return v2_error(400, "The field 'status_id' is invalid.")
            order["status_id"] = status_id
        return JSONResponse(order_resource(order))

    async def _addresses(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        return JSONResponse(order["addresses"])

    async def _products(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        return JSONResponse(order["products"])

    async def _shipments(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        if not order["shipments"]:
            return Response(status_code=204)  # as documented: no shipments, no body
        return JSONResponse(order["shipments"])

    async def _ship(self, request: Request, order: dict[str, Any] | None) -> Response:
        assert order is not None
        body = await json_of(request)
        problem = shipment_problem(order, body)
        if problem:
            return v2_error(400, problem)
        products = {p["id"]: p for p in order["products"]}
        for item in body["items"]:
            products[item["order_product_id"]]["quantity_shipped"] += item["quantity"]
        provider = str(body.get("shipping_provider", ""))
        shipment = {
            "id": self._id(), "order_id": order["id"], "customer_id": 0,
            "order_address_id": body["order_address_id"], "date_created": "Wed, 02 Dec 2026 08:00:00 +0000",
            "tracking_number": str(body.get("tracking_number", "")), "merchant_shipping_cost": "0.0000",
            "shipping_method": str(body.get("shipping_method", "")), "shipping_provider": provider,
            "tracking_carrier": str(body.get("tracking_carrier", "")), "tracking_link": "",
            "comments": str(body.get("comments", "")),
            "items": [{"order_product_id": i["order_product_id"], "quantity": i["quantity"],
                       "product_id": products[i["order_product_id"]]["product_id"]} for i in body["items"]],
            "shipping_provider_display_name": PROVIDER_NAMES.get(provider, provider),
            "generated_tracking_link": "",
        }
        order["shipments"].append(shipment)  # a second POST is a second shipment: the connector reads first
        # A shipment moves the order along by itself, as BigCommerce's Ship Items action does.
        whole = all(p["quantity_shipped"] >= p["quantity"] for p in order["products"])
        order["status_id"] = STATUS_IDS["Shipped"] if whole else STATUS_IDS["Partially Shipped"]
        return JSONResponse(shipment, status_code=201)


def carrier_name(shipment: dict[str, Any]) -> str:
    """The carrier a shipment names: its native provider's name, else its AfterShip courier."""
    if shipment["shipping_provider"]:
        return PROVIDER_NAMES.get(shipment["shipping_provider"], shipment["shipping_provider"])
    slug = shipment["tracking_carrier"]
    return COURIER_NAMES.get(slug, slug)


def order_resource(order: dict[str, Any]) -> dict[str, Any]:
    """The order as ``GET /v2/orders/{id}`` gives it (the fields the simulator keeps)."""
    total = sum(p["quantity"] for p in order["products"])
    shipped = sum(p["quantity_shipped"] for p in order["products"])
    return {"id": order["id"], "customer_id": 0, "date_created": "Tue, 01 Dec 2026 21:40:11 +0000",
            "status_id": order["status_id"], "status": STATUS_NAMES[order["status_id"]],
            "items_total": total, "items_shipped": shipped, "payment_method": "Credit Card",
            "shipping_address_count": len(order["addresses"]),
            "products": {"url": f"https://api.bigcommerce.com/v2/orders/{order['id']}/products",
                         "resource": f"/orders/{order['id']}/products"}}


async def json_of(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


def shipment_problem(order: dict[str, Any], body: Any) -> str | None:
    """Why BigCommerce would refuse this shipment, or None. ``order_address_id`` and ``items`` are required."""
    if not isinstance(body, dict):
        return "The request body is not a JSON object."
    for name in ("order_address_id", "items"):
        if name not in body:
            return f"The required field '{name}' was not supplied."
    address_id = body["order_address_id"]
    if type(address_id) is not int or address_id not in {a["id"] for a in order["addresses"]}:
        return "The field 'order_address_id' is invalid."
    items = body["items"]
    if not isinstance(items, list) or not items:
        return "The field 'items' is invalid: a shipment must contain at least one item."
    products = {p["id"]: p for p in order["products"]}
    for item in items:
        pid = item.get("order_product_id") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        product = products.get(pid) if type(pid) is int else None
        if product is None or product["order_address_id"] != address_id:
            return f"The field 'items' is invalid: order product {pid!r} is not on this order's address {address_id}."
        if type(quantity) is not int or quantity < 1:
            return "The field 'items' is invalid: each item needs a quantity of at least 1."
        if quantity > product["quantity"] - product["quantity_shipped"]:
            return (f"The quantity specified for order product {pid} is greater than the quantity remaining "
                    "to be shipped.")
    number = body.get("tracking_number", "")
    if not isinstance(number, str) or len(number) > 50:
        return "The field 'tracking_number' is invalid: at most 50 characters."
    provider = body.get("shipping_provider", "")
    if not isinstance(provider, str) or (provider not in PROVIDER_NAMES and not provider.startswith("carrier_")):
        return "The field 'shipping_provider' is invalid."
    if not isinstance(body.get("tracking_carrier", ""), str):
        return "The field 'tracking_carrier' is invalid."
    return None


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return BigCommerceSimulator(**kwargs).app()
