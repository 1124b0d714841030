"""A simulated WooCommerce store: the REST API v3 subset the connector uses, in memory, with faults.

It answers as WooCommerce (on WordPress's REST server) does, in this order: the credential
(``Consumer secret is invalid.``), the route (``rest_no_route``), the parameters (``rest_invalid_param``,
``rest_missing_callback_param``), the permission (``woocommerce_rest_cannot_*`` for a request the key
does not authenticate), then the endpoint itself (``woocommerce_rest_shop_order_invalid_id``...).
Error bodies are ``{"code", "message", "data": {"status"}}``.

- ``GET /wp-json/wc/v3/orders`` (the connection test), ``PUT /wp-json/wc/v3/orders/<id>`` (status, checked
  against the store's statuses), ``GET``/``POST /wp-json/wc/v3/orders/<id>/notes``,
  ``POST /wp-json/wc/v3/orders/batch`` (at most ``batch_limit`` items, else 413; items are *not*
  validated, as in WooCommerce: a status the store lacks is saved as ``pending`` and ``trash`` trashes).
- A status change adds WooCommerce's own private note ("Order status changed from ... to ...").
- Real order ids are integers (the routes take ``[0-9]+``); the kit's references (``K-100``) are taken as
  they are unless ``numeric_ids`` is set, which answers them as WooCommerce does (404 ``rest_no_route``).
- ``quota``/``window_seconds``: a host's limit (WooCommerce core has none): over ``quota`` requests in a
  window, 429 with ``Retry-After``; ``throttled`` counts them.

It speaks the conformance kit's simulator protocol (``app``, ``fail_next``, ``add_order``, ``order_state``,
``tracking_numbers``, ``requests``, ``retry_after``, ``permanent_fault``). Imported only by tests, the demo
and the kit (it needs Starlette).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .connector import API, VOCABULARY

FAULTS = ("http_429", "http_503", "http_500", "http_4xx", "timeout")
#: WooCommerce's names of its statuses (wc_get_order_statuses), for its own status-change notes.
STATUS_NAMES = {"pending": "Pending payment", "processing": "Processing", "on-hold": "On hold",
                "completed": "Completed", "cancelled": "Cancelled", "refunded": "Refunded", "failed": "Failed",
                "checkout-draft": "Draft", "trash": "Trash"}
#: How the connector writes a tracking number into a customer note (see connector.tracking_note).
TRACKING_NOTE = re.compile(r"Shipped with (?P<carrier>.+?)(?: on \S+)?, tracking number (?P<number>\S+)")
#: WordPress's rest_is_boolean: what a boolean parameter takes (1 and 0 are True and False as keys).
BOOLEANS: dict[bool | int | str, bool] = {True: True, False: False, "true": True, "false": False, "1": True, "0": False,
                                          "": False}


def wc_error(status: int, code: str, message: str, **data: Any) -> Response:
    """WooCommerce's (WordPress's) error body."""
    return JSONResponse({"code": code, "message": message, "data": {"status": status, **data}},
                        status_code=status)


def invalid_param(param: str, why: str) -> Response:
    return wc_error(400, "rest_invalid_param", f"Invalid parameter(s): {param}", params={param: why},
                    details={param: {"code": "rest_invalid_type" if "type" in why else "rest_not_in_enum",
                                     "message": why, "data": None}})


@dataclass
class WooCommerceSimulator:
    consumer_key: str = "ck_0123456789abcdef0123456789abcdef01234567"
    consumer_secret: str = "cs_0123456789abcdef0123456789abcdef01234567"
    read_only: bool = False  # the key's permission is Read: every write is refused
    extra_statuses: tuple[str, ...] = ()  # statuses a store plugin registered
    batch_limit: int = 100  # the woocommerce_rest_batch_items_limit filter
    numeric_ids: bool = False
    retry_after: int = 2
    quota: int | None = None
    window_seconds: float = 60.0
    throttled: int = 0
    requests: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: deque[str] = field(default_factory=deque)
    #: Every request that reached the store: (method, path, JSON body or None).
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    _seen: deque[float] = field(default_factory=deque)
    _next_note: int = 1

    #: WooCommerce's refusal that retrying never fixes: a 4xx with its error body.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the kit's protocol ---------------------------------------------------------

    @property
    def statuses(self) -> tuple[str, ...]:
        """What the orders endpoint's ``status`` enum holds for this store."""
        return ("auto-draft", *VOCABULARY, "checkout-draft", *self.extra_statuses)

    def add_order(self, ref: str, status: str = "pending") -> None:
        self.orders[ref] = {"id": int(ref) if ref.isdigit() else ref,
                            "status": status if status in self.statuses else "pending", "notes": []}

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order = self.orders.get(ref)
        if order is None:
            return None
        return {"status": order["status"],
                "notes": [(n["note"], n["customer_note"]) for n in order["notes"]]}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        order = self.orders.get(ref)
        found = []
        for note in order["notes"] if order else ():
            match = TRACKING_NOTE.fullmatch(note["note"])
            if match and note["customer_note"]:
                found.append((match["carrier"], match["number"]))
        return found

    def customer_notes(self, ref: str) -> list[str]:
        return [n["note"] for n in self.orders[ref]["notes"] if n["customer_note"]]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(f"{API}/orders", self._list, methods=["GET"]),
            Route(f"{API}/orders/batch", self._batch, methods=["POST", "PUT", "PATCH"]),
            Route(API + "/orders/{ref:str}/notes", self._notes, methods=["GET", "POST"]),
            Route(API + "/orders/{ref:str}", self._order, methods=["GET", "PUT", "PATCH", "POST"]),
            Route("/{rest:path}", self._no_route, methods=["GET", "PUT", "POST", "PATCH", "DELETE"]),
        ])

    # -- the way in -----------------------------------------------------------------

    async def _fault(self) -> Response | None:
        """Count the request; a queued fault or the host's limit answers instead of the store."""
        self.requests += 1
        if self.quota is not None:
            now = time.monotonic()
            while self._seen and now - self._seen[0] >= self.window_seconds:
                self._seen.popleft()
            if len(self._seen) >= self.quota:
                self.throttled += 1
                wait = max(1, int(self.window_seconds - (now - self._seen[0]) + 0.999))
                # The host's answer, not WooCommerce's: a plain page with Retry-After.
                return Response("Too Many Requests", status_code=429, headers={"Retry-After": str(wait)})
            self._seen.append(now)
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault == "timeout":
            await asyncio.sleep(3600)
        if fault == "http_4xx":
            return wc_error(400, "woocommerce_rest_cannot_update", "The order cannot be changed.")
        status = {"http_429": 429, "http_503": 503, "http_500": 500}[fault]
        headers = {"Retry-After": str(self.retry_after)} if status in (429, 503) else {}
        return JSONResponse({"code": "simulated", "message": f"simulated {fault}", "data": {"status": status}},
                            status_code=status, headers=headers)

    def _who(self, request: Request) -> tuple[Response | None, bool]:
        """(an authentication error, whether the key authenticates the request), as WC_REST_Authentication."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        if user != self.consumer_key:
            return None, False  # an unknown key: the request is simply not authenticated
        if password != self.consumer_secret:
            return wc_error(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."), False
        if self.read_only and request.method != "GET":
            return wc_error(401, "woocommerce_rest_authentication_error",
                            "The API key provided does not have write permissions."), False
        return None, True

    async def _enter(self, request: Request) -> tuple[Response | None, bool, Any]:
        """A fault, an authentication error or malformed JSON; else whether authenticated, and the JSON body."""
        refused = await self._fault()
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = ValueError
        self.calls.append((request.method, request.url.path, None if body is ValueError else body))
        if refused is not None:
            return refused, False, None
        auth_error, authenticated = self._who(request)
        if auth_error is not None:
            return auth_error, False, None
        if body is ValueError:
            return wc_error(400, "rest_invalid_json", "Invalid JSON body passed."), False, None
        if body is not None and not isinstance(body, dict):
            return wc_error(400, "rest_invalid_json", "Invalid JSON body passed."), False, None
        return None, authenticated, body or {}

    def _id_route(self, request: Request) -> Response | None:
        ref = request.path_params["ref"]
        if self.numeric_ids and not ref.isdigit():
            return self._route_missing()
        return None

    @staticmethod
    def _route_missing() -> Response:
        return wc_error(404, "rest_no_route", "No route was found matching the URL and request method.")

    async def _no_route(self, request: Request) -> Response:
        refused, _, _ = await self._enter(request)
        return refused or self._route_missing()

    # -- the endpoints ------------------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        refused, authenticated, _ = await self._enter(request)
        if refused:
            return refused
        per_page = request.query_params.get("per_page", "10")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 100:
            return invalid_param("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)")
        if not authenticated:
            return wc_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        orders = [self._public(o) for o in self.orders.values()][: int(per_page)]
        return JSONResponse(orders, headers={"X-WP-Total": str(len(self.orders)), "X-WP-TotalPages": "1"})

    async def _order(self, request: Request) -> Response:
        refused, authenticated, body = await self._enter(request)
        if refused or (refused := self._id_route(request)):
            return refused
        order = self.orders.get(request.path_params["ref"])
        if request.method == "GET":
            if not authenticated:
                return wc_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
            if order is None:
                return wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
            return JSONResponse(self._public(order))
        if "status" in body:  # the route's args: the item schema's enum is checked before anything else
            status = body["status"]
            if not isinstance(status, str):
                return invalid_param("status", "status is not of type string.")
            if status not in self.statuses:
                return invalid_param("status", f"status is not one of {', '.join(self.statuses)}.")
        if not authenticated:
            return wc_error(401, "woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.")
        if order is None:
            return wc_error(400, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        if "status" in body:
            self._set_status(order, body["status"])
        return JSONResponse(self._public(order))

    async def _notes(self, request: Request) -> Response:
        refused, authenticated, body = await self._enter(request)
        if refused or (refused := self._id_route(request)):
            return refused
        order = self.orders.get(request.path_params["ref"])
        if request.method == "GET":
            kind = request.query_params.get("type", "any")
            if kind not in ("any", "customer", "internal"):
                return invalid_param("type", "type is not one of any, customer, and internal.")
            if not authenticated:
                return wc_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
            if order is None:
                return wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
            wanted = {"any": (True, False), "customer": (True,), "internal": (False,)}[kind]
            return JSONResponse([n for n in reversed(order["notes"]) if n["customer_note"] in wanted])
        if "note" not in body:
            return wc_error(400, "rest_missing_callback_param", "Missing parameter(s): note",
                            params=["note"])
        if not isinstance(body["note"], str):
            return invalid_param("note", "note is not of type string.")
        customer = body.get("customer_note", False)
        if not isinstance(customer, bool | int | str) or customer not in BOOLEANS:
            return invalid_param("customer_note", "customer_note is not of type boolean.")
        if not authenticated:
            return wc_error(401, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources.")
        if body.get("id"):
            return wc_error(400, "woocommerce_rest_shop_order_exists", "Cannot create existing shop_order.")
        if order is None:
            return wc_error(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        note = self._add_note(order, body["note"], BOOLEANS[customer])
        return JSONResponse(note, status_code=201)

    async def _batch(self, request: Request) -> Response:
        refused, authenticated, body = await self._enter(request)
        if refused:
            return refused
        for key in ("create", "update", "delete"):
            if key in body and not isinstance(body[key], list):
                return invalid_param(key, f"{key} is not of type array.")
        items = body.get("update") or []
        if any(not isinstance(item, dict) for item in items):
            return invalid_param("update", "update[0] is not of type object.")
        if not authenticated:
            return wc_error(401, "woocommerce_rest_cannot_batch",
                            "Sorry, you are not allowed to batch manipulate this resource.")
        total = sum(len(body.get(key) or []) for key in ("create", "update", "delete"))
        if total > self.batch_limit:
            return wc_error(413, "woocommerce_rest_request_entity_too_large",
                            f"Unable to accept more than {self.batch_limit} items for this request.")
        answers: dict[str, list[Any]] = {}
        if items:
            answers["update"] = [self._batch_update(item) for item in items]
        return JSONResponse(answers)

    def _batch_update(self, item: dict[str, Any]) -> dict[str, Any]:
        # update_item() straight from the batch: no route, no schema check of the item (WooCommerce's own).
        ref = str(item.get("id", ""))
        order = self.orders.get(ref) if not self.numeric_ids or ref.isdigit() else None
        if order is None:
            return {"id": item.get("id"), "error": {"code": "woocommerce_rest_shop_order_invalid_id",
                                                    "message": "Invalid ID.", "data": {"status": 400}}}
        if "status" in item:
            status = str(item["status"])
            # WC_Order::set_status: a status the store lacks becomes pending; trash is let through.
            self._set_status(order, status if status in (*self.statuses, "trash") else "pending")
        return self._public(order)

    # -- the store ------------------------------------------------------------------------

    def _set_status(self, order: dict[str, Any], status: str) -> None:
        old = order["status"]
        if status == old:
            return  # no transition: no note, no e-mail
        order["status"] = status
        self._add_note(order, f"Order status changed from {self._name(old)} to {self._name(status)}.", False)

    @staticmethod
    def _name(status: str) -> str:
        return STATUS_NAMES.get(status, status.replace("-", " ").title())

    def _add_note(self, order: dict[str, Any], text: str, customer: bool) -> dict[str, Any]:
        note = {"id": self._next_note, "author": "WooCommerce", "date_created": "2026-12-02T09:00:00",
                "date_created_gmt": "2026-12-02T09:00:00", "note": text, "customer_note": customer,
                "added_by_user": False}
        self._next_note += 1
        order["notes"].append(note)
        return note

    @staticmethod
    def _public(order: dict[str, Any]) -> dict[str, Any]:
        return {"id": order["id"], "number": str(order["id"]), "status": order["status"]}


def create_app(**kwargs: Any) -> Starlette:
    """An app for uvicorn's ``--factory``."""
    return WooCommerceSimulator(**kwargs).app()
