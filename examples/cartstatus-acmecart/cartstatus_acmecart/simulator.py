"""A simulated AcmeCart: the API subset the connector uses, in memory, with faults.

It speaks the cartstatus conformance kit's simulator protocol (``app``,
``fail_next``, ``add_order``, ``order_state``, ``requests``, ``retry_after``,
``permanent_fault``). Run it alone with
``uvicorn --factory cartstatus_acmecart.simulator:create_app``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import BATCH_LIMIT, VOCABULARY

FAULTS = ("http_429", "http_503", "http_500", "http_4xx", "http_401", "timeout")


@dataclass
class AcmeCartSimulator:
    api_key: str = "acme-test-key-123"
    store: str = "acme-demo"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_after: int = 3
    requests: int = 0
    faults: deque[str] = field(default_factory=deque)

    #: The 4xx that will never succeed: AcmeCart refuses the status change (422).
    permanent_fault: ClassVar[str] = "http_4xx"

    def add_order(self, ref: str, status: str = "pending") -> None:
        self.orders[ref] = {"status": status if status in VOCABULARY else "pending", "note": None, "shipments": []}

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        return None if order is None else {"status": order["status"], "shipments": list(order["shipments"])}

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/v1/ping", self._ping, methods=["GET"]),
            Route("/api/v1/orders/batch", self._batch, methods=["POST"]),
            Route("/api/v1/orders/{ref}/status", self._status, methods=["PUT"]),
            Route("/api/v1/orders/{ref}/shipments", self._shipments, methods=["GET", "POST"]),
        ])

    async def _gate(self, request: Request) -> Response | None:
        """Count the request, play a queued fault, check the key."""
        self.requests += 1
        if self.faults:
            fault = self.faults.popleft()
            if fault == "timeout":
                await asyncio.sleep(3600)
            status = {"http_429": 429, "http_503": 503, "http_500": 500, "http_4xx": 422, "http_401": 401}[fault]
            headers = {"Retry-After": str(self.retry_after)} if status in (429, 503) else {}
            return JSONResponse({"error": f"simulated {fault}"}, status_code=status, headers=headers)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "invalid API key"}, status_code=401)
        return None

    def _set(self, ref: str, status: Any, note: Any) -> tuple[int, str]:
        if ref not in self.orders:
            return 404, f"order {ref} not found"
        if status not in VOCABULARY:
            return 422, f"unknown status {status!r}"
        self.orders[ref].update(status=status, note=note)
        return 200, ""

    async def _ping(self, request: Request) -> Response:
        return await self._gate(request) or JSONResponse({"ok": True, "store": self.store})

    async def _status(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        ref = request.path_params["ref"]
        body = await request.json()
        code, error = self._set(ref, body.get("status"), body.get("note"))
        if code != 200:
            return JSONResponse({"error": error}, status_code=code)
        return JSONResponse({"order": ref, **self.orders[ref]})

    async def _shipments(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        order = self.orders.get(request.path_params["ref"])
        if order is None:
            return JSONResponse({"error": "order not found"}, status_code=404)
        if request.method == "GET":
            return JSONResponse(order["shipments"])
        body = await request.json()
        # Like most carts, a second POST makes a second shipment: the connector must read first.
        order["shipments"].append({k: body.get(k) for k in ("carrier", "tracking_number", "ship_date")})
        return JSONResponse(order["shipments"][-1], status_code=201)

    async def _batch(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused:
            return refused
        items = (await request.json()).get("updates", [])
        if len(items) > BATCH_LIMIT:
            return JSONResponse({"error": f"at most {BATCH_LIMIT} updates"}, status_code=413)
        results = []
        for item in items:
            code, error = self._set(str(item.get("order")), item.get("status"), item.get("note"))
            results.append({"order": item.get("order"), "ok": True} if code == 200 else
                           {"order": item.get("order"), "ok": False, "code": code, "error": error})
        return JSONResponse({"results": results})


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return AcmeCartSimulator(**kwargs).app()
