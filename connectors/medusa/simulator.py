"""A simulated Medusa 2.x: the Admin API subset the connector uses, in memory, with faults.

It answers as Medusa 2.21 answered on a real install (see tests/realcarts/): the same paths, the same strict
bodies (an unknown field is refused, as Medusa's validators do), the same error bodies
(``{"type", "message"}``), the same refusals (a completed order cannot be canceled; a shipment is created
once per fulfillment; a canceled order takes nothing more), and its login (``POST /auth/user/emailpass``, a
JWT; ``{"message": "Unauthorized"}`` for a token it does not take). It speaks the conformance kit's simulator
protocol (``app``, ``fail_next``, ``add_order``, ``order_state``, ``tracking_numbers``, ``requests``,
``retry_after``, ``permanent_fault``, ``logins``, ``expire_tokens``).

Medusa publishes no request limit of its own; ``quota`` requests per ``window_seconds`` play a host's limit
in front of it (a plain 429 with ``Retry-After``), off by default.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .connector import CARRIERS_KEY, TRACKING_KEY, TRACKING_PAGES

FAULTS = ("http_429", "http_503", "http_4xx", "http_409", "timeout")
#: The hosts of the carriers' tracking pages, for a label whose fulfillment does not name its carrier.
CARRIER_HOSTS = {urlsplit(page).hostname: name for name, page in TRACKING_PAGES.items()}


def error(status: int, kind: str, message: str) -> Response:
    """Medusa's error body."""
    return JSONResponse({"type": kind, "message": message}, status_code=status)


def invalid(message: str) -> Response:
    return error(400, "invalid_data", message)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


#: What Medusa's order reply holds whatever ``fields`` asks for (the order detail workflow adds them).
ALWAYS = ("id", "version", "payment_collections", "payment_status", "fulfillment_status")
ALL = "*"


def field_tree(fields: str) -> dict[str, Any]:
    """Medusa's ``fields`` (``status,items.id,*fulfillments``) as a tree of the paths asked for."""
    tree: dict[str, Any] = {}
    for raw in fields.split(","):
        path = raw.strip().lstrip("+")
        if not path:
            continue
        whole = path.startswith("*") or path.endswith(".*")  # *items and items.*: every field of items
        parts = path.lstrip("*").removesuffix(".*").split(".")
        node: Any = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if node == ALL:
                break
        else:
            if whole:
                node[parts[-1]] = ALL
            elif node.get(parts[-1]) != ALL:
                node.setdefault(parts[-1], {})
    return tree


def _pick(value: Any, tree: Any) -> Any:
    if tree == ALL or not tree:
        return value
    if isinstance(value, list):
        return [_pick(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    picked = {k: _pick(v, tree[k]) for k, v in value.items() if k in tree}
    if "detail" in tree and "quantity" in (tree["detail"] or {}) and "quantity" in value:
        picked["quantity"] = value["quantity"]  # an item's quantity comes with its detail's, not by itself
    return picked


def select_fields(order: dict[str, Any], fields: str) -> dict[str, Any]:
    """The order as Medusa 2.21 answered ``?fields=``: only the paths asked for (an item's ``quantity`` only
    when ``items.detail.quantity`` is asked for), plus what it always adds."""
    tree = field_tree(fields)
    items = tree.get("items")
    if isinstance(items, dict):
        items.pop("quantity", None)  # asked for as items.quantity, Medusa leaves it out
    picked = {k: _pick(v, tree[k]) for k, v in order.items() if k in tree}
    picked.update({k: order[k] for k in ALWAYS if k in order and k not in tree})
    return picked


class Refused(Exception):
    """A request Medusa refuses: its reply."""

    def __init__(self, reply: Response) -> None:
        super().__init__(reply.status_code)
        self.reply = reply


def _object(body: Any, allowed: dict[str, str], required: tuple[str, ...] = (), where: str = "") -> dict[str, Any]:
    """Medusa's strict body check: an object with only ``allowed`` fields (name -> kind), ``required`` present."""
    prefix = f"{where}, " if where else ""
    if not isinstance(body, dict):
        raise Refused(invalid(f"Invalid request: Expected type: 'object' for field '{where or 'body'}', "
                              f"got: '{type(body).__name__}'"))
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise Refused(invalid(f"Invalid request: Unrecognized fields: {', '.join(repr(k) for k in unknown)}"))
    for key in required:
        if key not in body:
            raise Refused(invalid(f"Invalid request: Field '{prefix}{key}' is required"))
    for key, kind in allowed.items():
        value = body.get(key)
        if key not in body or (value is None and kind.endswith("?")):
            continue
        ok = {"string": isinstance(value, str), "number": isinstance(value, int | float) and not isinstance(
            value, bool), "boolean": isinstance(value, bool), "record": isinstance(value, dict),
            "array": isinstance(value, list), "url": isinstance(value, str) and _safe_url(value)}[kind.rstrip("?")]
        if not ok:
            if kind.rstrip("?") == "url" and isinstance(value, str):
                raise Refused(invalid("Invalid request: URL must use http: or https: scheme"))
            if kind.rstrip("?") in ("string", "number"):  # zod's words for a missing or mistyped scalar
                raise Refused(invalid(f"Invalid request: Field '{prefix}{key}' is required"))
            raise Refused(invalid(f"Invalid request: Expected type: '{kind.rstrip('?')}' for field "
                                  f"'{prefix}{key}', got: '{value}'"))
    return body


def _safe_url(value: str) -> bool:
    """Medusa's ``safeHttpUrl``: empty, ``#`` or an http(s) URL."""
    if value in ("", "#"):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _items(body: dict[str, Any], minimum: int = 0) -> list[dict[str, Any]]:
    items = body["items"]
    if len(items) < minimum:
        raise Refused(invalid(f"Invalid request: Value for field 'items' too small, expected at least: '{minimum}'"))
    return [_object(item, {"id": "string", "quantity": "number"}, ("id", "quantity"), f"items, {i}")
            for i, item in enumerate(items)]


@dataclass
class MedusaSimulator:
    email: str = "admin@medusa.test"
    password: str = "medusa-test-pass-1"
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    retry_after: int = 2
    requests: int = 0
    logins: int = 0
    tokens: set[str] = field(default_factory=set)
    token_lifetime: int = 86400  # Medusa's default jwtExpiresIn: one day
    faults: deque[str] = field(default_factory=deque)
    #: A host's limit in front of Medusa (Medusa itself has none): None is no limit.
    quota: int | None = None
    window_seconds: float = 60.0
    throttled: int = 0
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, body) of every request
    _window: deque[float] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    #: Medusa's refusal of a change it will never make: 400 ``not_allowed``.
    permanent_fault: ClassVar[str] = "http_4xx"

    # -- the kit's protocol --------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):026d}"

    def add_order(self, ref: str, status: str = "pending", *, items: int = 2, quantity: int = 1,
                  digital: int = 0) -> None:
        """A placed order: ``items`` lines of ``quantity`` each (the last ``digital`` of them need no shipping),
        its payment authorized, nothing fulfilled; ``status``, one of the connector's labels, puts it there as
        Medusa would have."""
        order: dict[str, Any] = {
            "id": ref, "display_id": len(self.orders) + 1, "status": "pending", "metadata": None,
            "items": [{"id": self.new_id("ordli"), "quantity": quantity, "requires_shipping": n < items - digital,
                       "fulfilled_quantity": 0, "shipped_quantity": 0, "delivered_quantity": 0}
                      for n in range(items)],
            "fulfillments": [],
            "payments": [{"id": self.new_id("pay"), "amount": 20 * items * quantity, "captured_at": None,
                          "canceled_at": None}],
        }
        self.orders[ref] = order
        if status in ("captured", "shipped", "delivered"):
            for payment in order["payments"]:
                payment["captured_at"] = _stamp()
        if status in ("shipped", "delivered"):
            for shipping in (True, False):
                lines = [{"id": i["id"], "quantity": i["quantity"]} for i in order["items"]
                         if i["requires_shipping"] is shipping]
                if lines:
                    fulfillment = self._fulfil(order, lines, None)
                    self._ship(order, fulfillment, [])
                    if status == "delivered":
                        self._deliver(order, fulfillment)
        if status in ("completed", "canceled"):
            order["status"] = status
            if status == "canceled":
                for payment in order["payments"]:
                    payment["canceled_at"] = _stamp()

    def order_state(self, ref: str) -> dict[str, Any] | None:
        """What Medusa holds, without ids and times (the kit compares two simulators' states)."""
        order = self.orders.get(ref)
        if order is None:
            return None
        return {
            "status": self.label_of(order),
            "medusa": {"status": order["status"], "payment_status": self.payment_status(order),
                       "fulfillment_status": self.fulfillment_status(order)},
            "items": [{k: v for k, v in item.items() if k != "id"} for item in order["items"]],
            "fulfillments": [{"requires_shipping": f["requires_shipping"], "shipped": bool(f["shipped_at"]),
                              "delivered": bool(f["delivered_at"]),
                              "canceled": bool(f["canceled_at"]), "items": sorted(i["quantity"] for i in f["items"]),
                              "labels": [dict(label) for label in f["labels"]], "metadata": f["metadata"]}
                             for f in order["fulfillments"]],
            "payments": [{"captured": bool(p["captured_at"]), "canceled": bool(p["canceled_at"])}
                         for p in order["payments"]],
            "metadata": json.loads(json.dumps(order["metadata"])),
        }

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        """Every label of the order's fulfillments (the carrier from the fulfillment's metadata, else the
        tracking page's host), and every number kept in the order's metadata."""
        order = self.orders.get(ref)
        if order is None:
            return []
        found = []
        for fulfillment in order["fulfillments"]:
            carriers = (fulfillment["metadata"] or {}).get(CARRIERS_KEY) or {}
            for label in fulfillment["labels"]:
                number = label["tracking_number"]
                host = urlsplit(label["tracking_url"]).hostname
                found.append((carriers.get(number) or CARRIER_HOSTS.get(host) or "", number))
        for entry in (order["metadata"] or {}).get(TRACKING_KEY) or []:
            found.append((entry.get("carrier", ""), entry.get("number", "")))
        return found

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # -- Medusa's computed fields ----------------------------------------------------------

    @staticmethod
    def payment_status(order: dict[str, Any]) -> str:
        payments = order["payments"]
        if payments and all(p["canceled_at"] for p in payments):
            return "canceled"
        if payments and all(p["captured_at"] for p in payments):
            return "captured"
        return "partially_captured" if any(p["captured_at"] for p in payments) else "authorized"

    @staticmethod
    def fulfillment_status(order: dict[str, Any]) -> str:
        items = order["items"]
        for kind in ("delivered", "shipped", "fulfilled"):
            counted = [item[f"{kind}_quantity"] for item in items]
            if all(n >= item["quantity"] for n, item in zip(counted, items, strict=True)):
                return kind
            if any(counted):
                return f"partially_{kind}"
        return "not_fulfilled"

    def label_of(self, order: dict[str, Any]) -> str:
        """The order as the connector's vocabulary says it (Medusa's ``status`` when none fits)."""
        if order["status"] in ("canceled", "completed"):
            return str(order["status"])
        fulfilment = self.fulfillment_status(order)
        if fulfilment in ("delivered", "shipped"):
            return fulfilment
        if self.payment_status(order) == "captured":
            return "captured"
        return str(order["status"])

    def order_body(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order as ``GET /admin/orders/{id}`` gives the connector's fields."""
        return {
            "id": order["id"], "display_id": order["display_id"], "status": order["status"],
            "metadata": order["metadata"], "version": 1,
            "items": [{"id": i["id"], "quantity": i["quantity"], "requires_shipping": i["requires_shipping"],
                       "detail": {"quantity": i["quantity"], "fulfilled_quantity": i["fulfilled_quantity"]}}
                      for i in order["items"]],
            "fulfillments": [{"id": f["id"], "requires_shipping": f["requires_shipping"],
                              "shipped_at": f["shipped_at"], "delivered_at": f["delivered_at"],
                              "canceled_at": f["canceled_at"], "metadata": f["metadata"],
                              "items": [dict(i) for i in f["items"]],
                              "labels": [{"tracking_number": label["tracking_number"]} for label in f["labels"]]}
                             for f in order["fulfillments"]],
            "payment_collections": [{"id": f"pay_col_{order['id']}", "status": "authorized",
                                     "payments": [dict(p) for p in order["payments"]]}],
            "payment_status": self.payment_status(order),
            "fulfillment_status": self.fulfillment_status(order),
        }

    # -- Medusa's rules --------------------------------------------------------------------------

    @staticmethod
    def _not_canceled(order: dict[str, Any]) -> None:
        if order["status"] == "canceled":
            raise Refused(invalid(f"Order with id {order['id']} has been canceled."))

    def _fulfil(self, order: dict[str, Any], items: list[dict[str, Any]], metadata: Any) -> dict[str, Any]:
        lines = {item["id"]: item for item in order["items"]}
        unknown = [item["id"] for item in items if item["id"] not in lines]
        if unknown:
            raise Refused(invalid(f"Items with ids {', '.join(unknown)} does not exist in order with id "
                                  f"{order['id']}."))
        if len({lines[item["id"]]["requires_shipping"] for item in items}) > 1:
            raise Refused(invalid("Fulfillment can only be created entirely with items with shipping or items "
                                  "without shipping. Split this request into 2 fulfillments."))
        for item in items:
            line = lines[item["id"]]
            if line["fulfilled_quantity"] + item["quantity"] > line["quantity"]:
                raise Refused(invalid(f"Cannot fulfill more items than what was ordered for item {item['id']}."))
        for item in items:
            lines[item["id"]]["fulfilled_quantity"] += item["quantity"]
        fulfillment = {"id": self.new_id("ful"), "requires_shipping": lines[items[0]["id"]]["requires_shipping"],
                       "shipped_at": None, "delivered_at": None, "canceled_at": None,
                       "metadata": metadata, "labels": [],
                       "items": [{"line_item_id": item["id"], "quantity": item["quantity"]} for item in items]}
        order["fulfillments"].append(fulfillment)
        return fulfillment

    @staticmethod
    def _ship(order: dict[str, Any], fulfillment: dict[str, Any], labels: list[dict[str, Any]]) -> None:
        if fulfillment["shipped_at"]:
            raise Refused(error(400, "not_allowed", "Shipment has already been created"))
        lines = {item["id"]: item for item in order["items"]}
        for item in fulfillment["items"]:  # Medusa counts the fulfillment's items, whatever the body listed
            lines[item["line_item_id"]]["shipped_quantity"] += item["quantity"]
        fulfillment["shipped_at"] = _stamp()
        fulfillment["labels"] = [dict(label) for label in labels]

    @staticmethod
    def _deliver(order: dict[str, Any], fulfillment: dict[str, Any]) -> None:
        if fulfillment["delivered_at"]:
            raise Refused(error(400, "not_allowed", "Fulfillment has already been marked delivered"))
        lines = {item["id"]: item for item in order["items"]}
        for item in fulfillment["items"]:
            lines[item["line_item_id"]]["delivered_quantity"] += item["quantity"]
        fulfillment["delivered_at"] = _stamp()

    # -- the app ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/auth/user/emailpass", self._login, methods=["POST"]),
            Route("/admin/users/me", self._handler(self._me), methods=["GET"]),
            Route("/admin/orders/{id}", self._handler(self._get_order), methods=["GET"]),
            Route("/admin/orders/{id}", self._handler(self._update_order), methods=["POST"]),
            Route("/admin/orders/{id}/fulfillments", self._handler(self._create_fulfillment), methods=["POST"]),
            Route("/admin/orders/{id}/fulfillments/{fid}/shipments", self._handler(self._create_shipment),
                  methods=["POST"]),
            Route("/admin/orders/{id}/fulfillments/{fid}/mark-as-delivered", self._handler(self._mark_delivered),
                  methods=["POST"]),
            Route("/admin/orders/{id}/complete", self._handler(self._complete), methods=["POST"]),
            Route("/admin/orders/{id}/cancel", self._handler(self._cancel), methods=["POST"]),
            Route("/admin/payments/{id}/capture", self._handler(self._capture), methods=["POST"]),
        ])

    async def _fault(self, request: Request) -> Response | None:
        """A fault asked for, or the host's limit; counts the request."""
        self.requests += 1
        body: Any = None
        raw = await request.body()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.calls.append((request.method, request.url.path, body))
        if self.quota is not None:
            now = time.monotonic()
            while self._window and now - self._window[0] >= self.window_seconds:
                self._window.popleft()
            if len(self._window) >= self.quota:
                self.throttled += 1
                wait = max(1, math.ceil(self.window_seconds - (now - self._window[0])))
                return PlainTextResponse("Too Many Requests", status_code=429, headers={"Retry-After": str(wait)})
            self._window.append(now)
        if not self.faults:
            return None
        kind = self.faults.popleft()
        if kind == "timeout":
            await asyncio.sleep(3600)
        if kind == "http_4xx":
            return error(400, "not_allowed", "Cannot cancel a completed order. Please use the return process to "
                                             "handle refunds or exchanges.")
        if kind == "http_409":  # another request holds the order's workflow lock
            return JSONResponse({"code": "invalid_state_error", "type": "conflict",
                                 "message": "The request conflicted with another request. You may retry the "
                                            "request with the provided Idempotency-Key."}, status_code=409)
        status = 429 if kind == "http_429" else 503
        return PlainTextResponse("Too Many Requests" if status == 429 else "Service Unavailable", status_code=status,
                                 headers={"Retry-After": str(self.retry_after)})

    def _handler(self, handle: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            refused = await self._fault(request)
            if refused is not None:
                return refused
            token = request.headers.get("authorization", "")
            if not token.startswith("Bearer ") or token.removeprefix("Bearer ") not in self.tokens:
                return JSONResponse({"message": "Unauthorized"}, status_code=401)
            try:
                body = None
                if request.method == "POST":
                    raw = await request.body()
                    try:
                        body = json.loads(raw) if raw else {}
                    except ValueError:
                        return invalid("Invalid request: body is not JSON")
                result: Response = await handle(request, body)
                return result
            except Refused as refusal:
                return refusal.reply
        return endpoint

    def _order(self, request: Request) -> dict[str, Any]:
        ref = request.path_params["id"]
        order = self.orders.get(ref)
        if order is None:
            raise Refused(error(404, "not_found", f"Order id not found: {ref}"))
        return order

    def _reply(self, order: dict[str, Any]) -> Response:
        return JSONResponse({"order": self.order_body(order)})

    async def _login(self, request: Request) -> Response:
        refused = await self._fault(request)
        if refused is not None:
            return refused
        self.logins += 1
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("password"), str):
            return error(401, "unauthorized", "Password should be a string")
        if body.get("email") != self.email or body["password"] != self.password:
            return error(401, "unauthorized", "Invalid email or password")
        claims = {"actor_id": "user_sim", "actor_type": "user", "auth_identity_id": "authid_sim",
                  "app_metadata": {"user_id": "user_sim"}, "iat": int(time.time()),
                  "exp": int(time.time()) + self.token_lifetime, "jti": secrets.token_hex(8)}
        token = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                         for part in ({"alg": "HS256", "typ": "JWT"}, claims)) + "." + secrets.token_urlsafe(32)
        self.tokens.add(token)
        return JSONResponse({"token": token})

    async def _me(self, request: Request, body: Any) -> Response:
        return JSONResponse({"user": {"id": "user_sim", "email": self.email, "first_name": None,
                                      "last_name": None}})

    async def _get_order(self, request: Request, body: Any) -> Response:
        order = self.order_body(self._order(request))
        fields = request.query_params.get("fields")
        return JSONResponse({"order": select_fields(order, fields) if fields else order})

    async def _update_order(self, request: Request, body: Any) -> Response:
        order = self._order(request)
        _object(body, {"email": "string", "shipping_address": "record", "billing_address": "record",
                       "locale": "string?", "metadata": "record?"})
        self._not_canceled(order)
        if body.get("metadata") is not None:  # Medusa merges: a key set to "" is removed
            merged = dict(order["metadata"] or {})
            for key, value in body["metadata"].items():
                if value == "":
                    merged.pop(key, None)
                else:
                    merged[key] = value
            order["metadata"] = json.loads(json.dumps(merged))
        return self._reply(order)

    async def _create_fulfillment(self, request: Request, body: Any) -> Response:
        order = self._order(request)
        _object(body, {"items": "array", "location_id": "string?", "shipping_option_id": "string",
                       "no_notification": "boolean", "delivery_address": "record", "metadata": "record?",
                       "additional_data": "record?"}, ("items",))
        items = _items(body, minimum=1)
        self._not_canceled(order)
        self._fulfil(order, items, json.loads(json.dumps(body.get("metadata"))))
        return self._reply(order)

    def _fulfillment(self, order: dict[str, Any], request: Request, unknown: Response) -> dict[str, Any]:
        fid = request.path_params["fid"]
        for fulfillment in order["fulfillments"]:
            if fulfillment["id"] == fid:
                return fulfillment
        raise Refused(unknown)

    async def _create_shipment(self, request: Request, body: Any) -> Response:
        order = self._order(request)
        _object(body, {"items": "array", "labels": "array", "no_notification": "boolean", "metadata": "record?",
                       "additional_data": "record?"}, ("items",))
        items = _items(body)
        labels = [_object(label, {"tracking_number": "string", "tracking_url": "url", "label_url": "url"},
                          ("tracking_number", "tracking_url", "label_url"), f"labels, {i}")
                  for i, label in enumerate(body.get("labels") or [])]
        self._not_canceled(order)
        lines = {item["id"] for item in order["items"]}
        unknown = [item["id"] for item in items if item["id"] not in lines]
        if unknown:
            raise Refused(invalid(f"Items with ids {', '.join(unknown)} does not exist in order with id "
                                  f"{order['id']}."))
        # Medusa 2.21 answers an unknown fulfillment here with a bare 500 (a plain Error in its workflow).
        fulfillment = self._fulfillment(order, request, JSONResponse(
            {"code": "unknown_error", "type": "unknown_error", "message": "An unknown error occurred."},
            status_code=500))
        self._ship(order, fulfillment, labels)
        return self._reply(order)

    async def _mark_delivered(self, request: Request, body: Any) -> Response:
        order = self._order(request)
        _object(body, {"no_notification": "boolean"})
        fulfillment = self._fulfillment(order, request, error(
            404, "not_found", f"Fulfillment id not found: {request.path_params['fid']}"))
        self._deliver(order, fulfillment)
        return self._reply(order)

    async def _complete(self, request: Request, body: Any) -> Response:
        ref = request.path_params["id"]
        order = self.orders.get(ref)
        if order is None:
            raise Refused(error(404, "not_found", f'Order with id "{ref}" not found'))
        _object(body, {"additional_data": "record?"})
        if order["status"] == "canceled":
            raise Refused(invalid(f"Orders {ref} are canceled and cannot be completed"))
        order["status"] = "completed"
        return self._reply(order)

    async def _cancel(self, request: Request, body: Any) -> Response:
        order = self._order(request)
        _object(body, {"no_notification": "boolean"})
        self._not_canceled(order)
        if order["status"] == "completed":
            raise Refused(error(400, "not_allowed", "Cannot cancel a completed order. Please use the return "
                                                    "process to handle refunds or exchanges."))
        if any(not f["canceled_at"] for f in order["fulfillments"]):
            raise Refused(error(400, "not_allowed", "All fulfillments must be canceled before canceling an order"))
        order["status"] = "canceled"
        for payment in order["payments"]:
            if not payment["captured_at"]:
                payment["canceled_at"] = _stamp()
        return self._reply(order)

    async def _capture(self, request: Request, body: Any) -> Response:
        _object(body, {"amount": "number"})
        pid = request.path_params["id"]
        for order in self.orders.values():
            for payment in order["payments"]:
                if payment["id"] == pid:
                    if not payment["captured_at"]:  # a second capture of a captured payment changes nothing
                        payment["captured_at"] = _stamp()
                    return JSONResponse({"payment": {**payment, "captures": [{"amount": payment["amount"]}]}})
        raise Refused(error(404, "not_found", f"Payment with id: {pid} was not found"))
