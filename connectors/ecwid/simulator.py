"""A simulated Ecwid store: the REST API v3 subset the connector uses, in memory, with faults and Ecwid's limit.

``GET /api/v3/{storeId}/profile``, ``GET /api/v3/{storeId}/orders`` (search: ``limit``, ``offset``) and
``GET``/``PUT /api/v3/{storeId}/orders/{orderId}``, answering as Ecwid documents: ``Authorization: Bearer <token>``
(a wrong or missing token, or a token of another store, is ``403 INVALID_API_TOKEN``; a token without the scope
a call needs is ``403 INSUFFICIENT_APP_SCOPE``), ``404 ORDER_NOT_FOUND``, ``400 WRONG_PARAMETER`` for a bad value,
``415`` for a body that is not JSON, ``{"updateCount": 1}`` for an update, and errors as
``{"errorMessage": ..., "errorCode": ...}``.

It speaks the conformance kit's simulator protocol (``app``, ``fail_next``, ``add_order``, ``order_state``,
``tracking_numbers``, ``requests``, ``retry_after``, ``permanent_fault``). Ecwid's limit (600 requests a minute
per token, then 429 with ``Retry-After``) is enforced when ``quota`` is set; ``window_seconds`` scales the window
down for a benchmark, and ``throttled`` counts the 429s given.

Stricter than Ecwid on one point, on purpose: Ecwid's update takes nearly every order field (and ignores those it
does not know); this one takes only the fields a status connector has any business sending
(:data:`UPDATABLE`) and refuses any other with Ecwid's 400, so a stray field (``items``, which Ecwid would
*replace*) is caught. Run it alone with ``uvicorn --factory cartstatus.connectors.ecwid.simulator:create_app``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import FULFILLMENT_STATUSES, PAYMENT_STATUSES

FAULTS = ("http_429", "http_503", "http_500", "http_4xx", "suspended", "timeout")
#: The status values Ecwid takes: its own, and a store's three custom ones of each kind.
ACCEPTED = {
    "fulfillmentStatus": (*FULFILLMENT_STATUSES, *(f"CUSTOM_FULFILLMENT_STATUS_{i}" for i in (1, 2, 3))),
    "paymentStatus": (*PAYMENT_STATUSES, *(f"CUSTOM_PAYMENT_STATUS_{i}" for i in (1, 2, 3))),
}
#: Old values Ecwid names in its refusal ("Status QUEUED is deprecated, use AWAITING_PAYMENT instead").
DEPRECATED = {"QUEUED": "AWAITING_PAYMENT"}
#: The order fields this simulator lets a PUT change (see the module's docstring).
UPDATABLE = ("fulfillmentStatus", "paymentStatus", "trackingNumber", "privateAdminNotes")
ALL_SCOPES = frozenset({"read_store_profile", "read_orders", "update_orders"})


def ecwid_error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """An error as Ecwid answers it: the status, and ``{"errorMessage", "errorCode"}`` (the code when Ecwid's
    table of REST API errors gives one)."""
    body = {"errorMessage": message, **({"errorCode": code} if code else {})}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class EcwidSimulator:
    store_id: int = 1003
    token: str = "secret_kitEcwidToken0123456789"
    #: The access scopes the token was given (Ecwid admin > #develop-apps).
    scopes: frozenset[str] = ALL_SCOPES
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_after: int = 3
    requests: int = 0
    faults: deque[str] = field(default_factory=deque)
    #: Requests a token may make in any ``window_seconds`` (Ecwid: 600 a minute); None: no limit (the kit's speed).
    quota: int | None = None
    window_seconds: float = 60.0
    #: 429s given for the quota.
    throttled: int = 0
    #: Every PUT body taken, in order (for tests of what the connector sends).
    updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _calls: dict[str, deque[float]] = field(default_factory=dict)

    #: A token without the ``update_orders`` scope: Ecwid's 403 INSUFFICIENT_APP_SCOPE, never fixed by a retry.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the kit's protocol ---------------------------------------------------

    def add_order(self, ref: str, status: str = "New") -> None:
        """An order as Ecwid creates it (awaiting processing, awaiting payment), or at ``status`` when it is
        one of Ecwid's."""
        order: dict[str, Any] = {"fulfillmentStatus": "AWAITING_PROCESSING", "paymentStatus": "AWAITING_PAYMENT",
                                 "trackingNumber": None, "privateAdminNotes": ""}
        for name, values in ACCEPTED.items():
            if status in values:
                order[name] = status
        order["last_status"] = status if status in (*ACCEPTED["fulfillmentStatus"], *ACCEPTED["paymentStatus"]) \
            else order["fulfillmentStatus"]
        self.orders[ref] = order

    def order_state(self, ref: str) -> dict[str, Any] | None:
        """Both of Ecwid's statuses and the tracking field; ``status`` is the one set last (Ecwid has no single
        status: the kit's ``status`` is the value the last update set, of either kind)."""
        order = self.orders.get(ref)
        if order is None:
            return None
        return {"status": order["last_status"], **{k: order[k] for k in UPDATABLE}}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        """Each entry of the order's one ``trackingNumber`` field: ``Carrier: number`` entries joined by commas
        (a bare number has carrier ``""``)."""
        order = self.orders.get(ref)
        text = (order or {}).get("trackingNumber") or ""
        pairs = []
        for entry in (e.strip() for e in text.split(",")):
            if entry:
                carrier, sep, number = entry.rpartition(": ")
                pairs.append((carrier.strip(), number.strip()) if sep else ("", entry))
        return pairs

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def app(self) -> Starlette:
        base = "/api/v3/{store_id}"
        return Starlette(
            routes=[
                Route(f"{base}/profile", self._profile, methods=["GET"]),
                Route(f"{base}/orders", self._search, methods=["GET"]),
                Route(f"{base}/orders/{{order_id}}", self._get_order, methods=["GET"]),
                Route(f"{base}/orders/{{order_id}}", self._update_order, methods=["PUT"]),
            ],
            exception_handlers={404: self._no_route, 405: self._no_route},
        )

    # -- the gate every request passes ------------------------------------------

    async def _no_route(self, request: Request, exc: Exception) -> Response:
        self.requests += 1
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return ecwid_error(405, "HTTP request type is not supported for the specified endpoint",
                               "METHOD_NOT_ALLOWED")
        return ecwid_error(404, "Resource not found")

    def _over_quota(self, key: str) -> Response | None:
        """Ecwid's limit per token: a sliding window of ``window_seconds``; a refused request is not counted."""
        if self.quota is None:
            return None
        now = time.monotonic()
        calls = self._calls.setdefault(key, deque())
        while calls and calls[0] <= now - self.window_seconds:
            calls.popleft()
        if len(calls) >= self.quota:
            self.throttled += 1
            wait = max(1, math.ceil(calls[0] + self.window_seconds - now))
            return ecwid_error(429, "Too many requests, rate limit exceeded", "RATE_LIMITED",
                               {"Retry-After": str(wait)})
        calls.append(now)
        return None

    async def _fault(self) -> Response | None:
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault == "timeout":
            await asyncio.sleep(3600)
        wait = {"Retry-After": str(self.retry_after)}
        return {
            "http_429": lambda: ecwid_error(429, "Too many requests, rate limit exceeded", "RATE_LIMITED", wait),
            "http_503": lambda: ecwid_error(503, "Service temporarily unavailable", None, wait),
            "http_500": lambda: ecwid_error(500, "Internal server error", "INTERNAL_ERROR"),
            "http_4xx": lambda: ecwid_error(403, "Application doesn't have a required scope for the request",
                                            "INSUFFICIENT_APP_SCOPE"),
            "suspended": lambda: ecwid_error(402, "Store with specified ID is currently suspended",
                                             "STORE_IS_SUSPENDED"),
        }[fault]()

    async def _gate(self, request: Request, scope: str) -> Response | None:
        """Count the request; then the quota, a queued fault, the token, the store and the scope."""
        self.requests += 1
        presented = request.headers.get("authorization", "")
        refused = self._over_quota(presented) or await self._fault()
        if refused:
            return refused
        if presented != f"Bearer {self.token}" or request.path_params["store_id"] != str(self.store_id):
            # A token works for its own store only; Ecwid answers both alike.
            return ecwid_error(403, "Invalid access token in the request", "INVALID_API_TOKEN")
        if scope not in self.scopes:
            return ecwid_error(403, "Application doesn't have a required scope for the request",
                               "INSUFFICIENT_APP_SCOPE")
        return None

    def _order(self, request: Request) -> tuple[str, dict[str, Any] | None]:
        ref = request.path_params["order_id"]
        return ref, self.orders.get(ref)

    def _public(self, ref: str, order: dict[str, Any]) -> dict[str, Any]:
        """The order as Ecwid's GET gives it (the fields the connector reads, and a few around them)."""
        shown = {"id": ref, "email": "shopper@example.com", "total": 10, "paymentStatus": order["paymentStatus"],
                 "fulfillmentStatus": order["fulfillmentStatus"], "privateAdminNotes": order["privateAdminNotes"],
                 "shipments": []}
        if order["trackingNumber"]:  # Ecwid leaves an unset field out
            shown["trackingNumber"] = order["trackingNumber"]
        return shown

    # -- the endpoints ----------------------------------------------------------

    async def _profile(self, request: Request) -> Response:
        refused = await self._gate(request, "read_store_profile")
        return refused or JSONResponse({"generalInfo": {"storeId": self.store_id,
                                                        "storeUrl": f"https://store{self.store_id}.company.site"},
                                        "settings": {"storeName": "Simulated Ecwid store"}})

    async def _search(self, request: Request) -> Response:
        refused = await self._gate(request, "read_orders")
        if refused:
            return refused
        try:
            limit = int(request.query_params.get("limit", "100"))
            offset = int(request.query_params.get("offset", "0"))
        except ValueError:
            return ecwid_error(400, "Wrong request parameter: limit and offset are numbers", "WRONG_PARAMETER")
        limit = max(0, min(limit, 100))  # "Maximum allowed value: 100"
        refs = list(self.orders)[offset:offset + limit]
        return JSONResponse({"total": len(self.orders), "count": len(refs), "offset": offset, "limit": limit,
                             "items": [self._public(ref, self.orders[ref]) for ref in refs]})

    async def _get_order(self, request: Request) -> Response:
        refused = await self._gate(request, "read_orders")
        if refused:
            return refused
        ref, order = self._order(request)
        if order is None:
            return ecwid_error(404, "Order with specified ID was not found", "ORDER_NOT_FOUND")
        return JSONResponse(self._public(ref, order))

    async def _update_order(self, request: Request) -> Response:
        refused = await self._gate(request, "update_orders")
        if refused:
            return refused
        ref, order = self._order(request)
        if order is None:
            return ecwid_error(404, "Order with specified ID was not found", "ORDER_NOT_FOUND")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("application/json", "text/json"):
            return ecwid_error(415, "Unsupported content-type: expected application/json or text/json")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return ecwid_error(400, "Cannot parse the request body as JSON", "WRONG_PARAMETER")
        problem = self._check_update(body)
        if problem:
            return ecwid_error(400, problem, "WRONG_PARAMETER")
        self.updates.append((ref, dict(body)))
        for name in ("fulfillmentStatus", "paymentStatus"):
            if name in body:
                order[name] = order["last_status"] = body[name]
        if "trackingNumber" in body:
            order["trackingNumber"] = body["trackingNumber"] or None
        if "privateAdminNotes" in body:
            order["privateAdminNotes"] = body["privateAdminNotes"]
        return JSONResponse({"updateCount": 1})

    @staticmethod
    def _check_update(body: Any) -> str | None:
        """Why Ecwid would refuse this update body (400 WRONG_PARAMETER), or None."""
        if not isinstance(body, dict):
            return "Request body must be a JSON object"
        unknown = sorted(set(body) - set(UPDATABLE))
        if unknown:
            return f"Unexpected order field(s) for this store: {', '.join(unknown)}"
        for name, value in body.items():
            if not isinstance(value, str):
                return f"Field {name} must be a string, got {json.dumps(value)}"
        for name, values in ACCEPTED.items():
            value = body.get(name)
            if value is None:
                continue
            if value in DEPRECATED:
                return f"Status {value} is deprecated, use {DEPRECATED[value]} instead"
            if value not in values:
                return f"Unknown {name} value: {value}. Supported values: {', '.join(values)}"
        return None


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return EcwidSimulator(**kwargs).app()
