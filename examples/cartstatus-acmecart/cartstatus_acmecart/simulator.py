"""A simulated AcmeCart: the API subset the connector uses, in memory, with faults.

It speaks the cartstatus conformance kit's simulator protocol (``app``,
``fail_next``, ``add_order``, ``order_state``, ``requests``, ``retry_after``,
``permanent_fault``, and for its login ``logins`` and ``expire_tokens``). Run it
alone with ``uvicorn --factory cartstatus_acmecart.simulator:create_app``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import VOCABULARY

FAULTS = ("http_429", "http_503", "http_500", "http_401", "refusal", "timeout")
#: The statuses an order can no longer leave for "cancelled", as AcmeCart's own rules say.
NOT_CANCELABLE = ("shipped", "delivered")
CARRIERS = ("UPS", "USPS", "FedEx", "DHL")


def refusal(code: str, message: str) -> Response:
    """How AcmeCart refuses a change for good: HTTP 500, with an error code."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=500)


@dataclass
class AcmeCartSimulator:
    username: str = "om-admin"
    password: str = "acme-test-pass-123"
    store: str = "acme-demo"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_after: int = 3
    requests: int = 0
    faults: deque[str] = field(default_factory=deque)
    token_lifetime: int = 3600
    tokens: set[str] = field(default_factory=set)
    logins: int = 0

    #: AcmeCart's refusal of a change it will never make (HTTP 500 with an error code).
    permanent_fault: ClassVar[str] = "refusal"

    def add_order(self, ref: str, status: str = "pending") -> None:
        self.orders[ref] = {"status": status if status in VOCABULARY else "pending", "note": None, "shipments": []}

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        return None if order is None else {"status": order["status"], "shipments": list(order["shipments"])}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self.orders.get(ref)
        return [] if order is None else [(s["carrier"], s["tracking_number"]) for s in order["shipments"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def expire_tokens(self) -> None:
        """Every token given so far stops working, as when AcmeCart restarts."""
        self.tokens.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/v1/auth/token", self._login, methods=["POST"]),
            Route("/api/v1/ping", self._ping, methods=["GET"]),
            Route("/api/v1/orders/{ref}", self._order, methods=["GET"]),
            Route("/api/v1/orders/{ref}/status", self._status, methods=["PUT"]),
            Route("/api/v1/orders/{ref}/shipments", self._ship, methods=["POST"]),
        ])

    async def _fault(self) -> Response | None:
        """Count the request and play a queued fault."""
        self.requests += 1
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault == "timeout":
            await asyncio.sleep(3600)
        if fault == "refusal":
            return refusal("NOT_ALLOWED", "the order cannot take this change")
        status = {"http_429": 429, "http_503": 503, "http_500": 500, "http_401": 401}[fault]
        headers = {"Retry-After": str(self.retry_after)} if status in (429, 503) else {}
        return JSONResponse({"error": f"simulated {fault}"}, status_code=status, headers=headers)

    async def _gate(self, request: Request) -> tuple[Response | None, dict[str, Any] | None]:
        """A fault, a refused token or an unknown order; else the order the path names (if any)."""
        refused = await self._fault()
        if refused is None and request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            refused = JSONResponse({"error": "invalid or expired token"}, status_code=401)
        ref = request.path_params.get("ref")
        order = self.orders.get(ref) if ref is not None else None
        if refused is None and ref is not None and order is None:
            refused = JSONResponse({"error": f"order {ref} not found"}, status_code=404)
        return refused, order

    async def _login(self, request: Request) -> Response:
        refused = await self._fault()
        if refused:
            return refused
        self.logins += 1
        if await request.json() != {"username": self.username, "password": self.password}:
            return JSONResponse({"error": "invalid user name or password"}, status_code=401)
        # A JWT as AcmeCart gives it (unsigned here: the connector reads its exp claim, never checks it).
        claims = {"sub": self.username, "exp": int(time.time()) + self.token_lifetime, "jti": secrets.token_hex(8)}
        token = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                         for part in ({"alg": "none"}, claims)) + ".sig"
        self.tokens.add(token)
        return JSONResponse({"token": token})

    async def _ping(self, request: Request) -> Response:
        refused, _ = await self._gate(request)
        return refused or JSONResponse({"ok": True, "store": self.store})

    async def _order(self, request: Request) -> Response:
        refused, order = await self._gate(request)
        return refused or JSONResponse({"order": request.path_params["ref"], **(order or {})})

    async def _status(self, request: Request) -> Response:
        refused, order = await self._gate(request)
        if refused or order is None:
            return refused or refusal("NOT_FOUND", "no order")
        body = await request.json()
        status = body.get("status")
        if status not in VOCABULARY:
            return refusal("UNKNOWN_STATUS", f"unknown status {status!r}")
        if order["status"] == "cancelled" or (status == "cancelled" and order["status"] in NOT_CANCELABLE):
            return refusal("NOT_ALLOWED", "order is not cancelable at this status" if status == "cancelled"
                           else "a cancelled order cannot change")
        order.update(status=status, note=body.get("note"))
        return JSONResponse({"order": request.path_params["ref"], **order})

    async def _ship(self, request: Request) -> Response:
        refused, order = await self._gate(request)
        if refused or order is None:
            return refused or refusal("NOT_FOUND", "no order")
        body = await request.json()
        if body.get("carrier") not in CARRIERS:
            return refusal("UNKNOWN_CARRIER", f"unknown carrier {body.get('carrier')!r}")
        # Like most carts, a second POST makes a second shipment: the connector must read first.
        order["shipments"].append({k: body.get(k) for k in ("carrier", "tracking_number", "ship_date")})
        return JSONResponse(order["shipments"][-1], status_code=201)


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return AcmeCartSimulator(**kwargs).app()
