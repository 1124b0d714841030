"""A simulated PrestaShop webservice: the resources the connector uses, in memory, with faults.

It answers as PrestaShop 8's webservice does (classes/webservice/WebserviceRequest.php): HTTP Basic with the
32-character key as the user; JSON replies with ``output_format=JSON`` (or the ``Output-Format`` /
``Io-Format`` header), XML otherwise; XML request bodies only; its error bodies and codes (401 with code 16,
17, 18 or 20 and 21 for a key it does not take, an empty 404 for an id it does not have, 400 with code 41 for
a required field left out, 500 with code 127 for a body that is not XML...). A PUT sets every field it leaves
out to null, as the real one does. It speaks the cartstatus conformance kit's simulator protocol.

PrestaShop publishes no request limit; ``quota`` / ``window_seconds`` play a host's (a plain 429 with
``Retry-After``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .webservice import (
    DEFAULT_STATE_NAMES,
    TRACKING_CHARACTERS,
    TRACKING_MAX,
    errors_json,
    errors_xml,
    split_tracking,
)

FAULTS = ("http_429", "http_503", "timeout", "http_4xx", "http_500")
#: French names for a second language (a shop with two languages lists names as [{id, value}]).
FRENCH = ("En attente du paiement par chèque", "Paiement accepté", "En cours de préparation", "Expédié", "Livré",
          "Annulé", "Remboursé", "Erreur de paiement", "En attente de réapprovisionnement (payé)",
          "En attente de virement bancaire", "Paiement à distance accepté",
          "En attente de réapprovisionnement (non payé)", "En attente de validation du paiement à la livraison")
#: The fields of each resource the simulator serves (as the webservice lists them), for display and filters.
FIELDS = {
    "orders": ("id", "id_address_delivery", "id_address_invoice", "id_cart", "id_currency", "id_lang",
               "id_customer", "id_carrier", "current_state", "module", "payment", "reference", "total_paid"),
    "order_states": ("id", "unremovable", "delivery", "hidden", "send_email", "module_name", "invoice", "color",
                     "logable", "shipped", "paid", "pdf_delivery", "pdf_invoice", "deleted", "name", "template"),
    "order_carriers": ("id", "id_order", "id_carrier", "id_order_invoice", "weight", "shipping_cost_tax_excl",
                       "shipping_cost_tax_incl", "tracking_number", "date_add"),
    "carriers": ("id", "deleted", "is_module", "id_tax_rules_group", "id_reference", "name", "active", "url"),
    "order_histories": ("id", "id_employee", "id_order_state", "id_order", "date_add"),
}
NODE = {"orders": "order", "order_states": "order_state", "order_carriers": "order_carrier",
        "carriers": "carrier", "order_histories": "order_history"}
#: What a key with every permission the connector needs may do.
PERMISSIONS = {"orders": {"GET", "HEAD"}, "order_states": {"GET", "HEAD"}, "carriers": {"GET", "HEAD"},
               "order_carriers": {"GET", "HEAD", "POST", "PUT"}, "order_histories": {"GET", "HEAD", "POST"}}


class Refusal(Exception):
    """One of the webservice's errors: its HTTP status and its (code, message) pairs."""

    def __init__(self, status: int, *errors: tuple[int, str], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


@dataclass
class PrestaShopSimulator:
    api_key: str = "CARTSTATUSKIT0123456789ABCDEFGHI"
    version: str = "8.1.7"
    languages: tuple[int, ...] = (1,)
    retry_after: int = 2
    quota: int | None = None  # requests a host lets through per window (None: no limit)
    window_seconds: float = 60.0
    throttled: int = 0
    empty_list_as_array: bool = True
    requests: int = 0
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    order_states: dict[int, dict[str, Any]] = field(default_factory=dict)
    carriers: dict[int, dict[str, Any]] = field(default_factory=dict)
    order_carriers: dict[int, dict[str, Any]] = field(default_factory=dict)
    order_histories: dict[int, dict[str, Any]] = field(default_factory=dict)
    permissions: dict[str, set[str]] = field(default_factory=lambda: {k: set(v) for k, v in PERMISSIONS.items()})
    emails: list[tuple[int, str]] = field(default_factory=list)  # (order id, template) mailed by sendemail=1
    faults: deque[str] = field(default_factory=deque)
    seen: list[dict[str, Any]] = field(default_factory=list)  # every request: method, path, query, body
    _hits: deque[float] = field(default_factory=deque)

    #: The webservice refusing for good: a key without the permission (HTTP 405, code 25).
    permanent_fault: ClassVar[str] = "http_4xx"

    def __post_init__(self) -> None:
        if not self.order_states:
            for i, name in enumerate(DEFAULT_STATE_NAMES, start=1):
                self.order_states[i] = {"name": {1: name, 2: FRENCH[i - 1]}, "deleted": "0",
                                        "template": "shipped" if name == "Shipped" else ""}
        if not self.carriers:
            urls = {"UPS": "https://www.ups.com/track?tracknum=@", "FedEx": "https://www.fedex.com/fedextrack/?trknbr=@",
                    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels=@"}
            for i, name in enumerate(("0", "My carrier", "UPS", "FedEx", "USPS"), start=1):
                self.carriers[i] = {"name": name, "deleted": "0", "id_reference": str(i), "active": "1",
                                    "url": urls.get(name, ""), "is_module": "0", "id_tax_rules_group": "1"}

    # -- the kit's protocol ----------------------------------------------------------

    def add_order(self, ref: str, status: str = "Payment accepted", carrier: str = "UPS") -> None:
        """An order placed with ``carrier`` (one order carrier, no tracking), in ``status`` (a status name,
        else "Payment accepted"). ``ref`` is its id when digits, else its reference."""
        order_id = int(ref) if ref.isdigit() else max([*self.orders, 0]) + 1
        state = self.state_id(status) or self.state_id("Payment accepted") or 2
        carrier_id = next(i for i, c in self.carriers.items() if c["name"] == carrier)
        self.orders[order_id] = {"reference": ref if not ref.isdigit() else f"ORD{order_id:06d}",
                                 "current_state": state, "id_carrier": carrier_id, "id_lang": 1}
        self.order_carriers[self.next_id(self.order_carriers)] = {
            "id_order": order_id, "id_carrier": carrier_id, "id_order_invoice": "0", "weight": "1.200000",
            "shipping_cost_tax_excl": "7.000000", "shipping_cost_tax_incl": "8.400000", "tracking_number": "",
            "date_add": "2024-05-01 12:00:00"}

    def order_id(self, ref: str) -> int | None:
        if ref.isdigit():
            return int(ref) if int(ref) in self.orders else None
        return next((i for i, o in self.orders.items() if o["reference"] == ref), None)

    def state_id(self, name: str) -> int | None:
        return next((i for i, s in self.order_states.items() if name in s["name"].values()), None)

    def order_state(self, ref: str) -> dict[str, Any] | None:
        order_id = self.order_id(ref)
        if order_id is None:
            return None
        order = self.orders[order_id]
        return {"status": self.order_states[order["current_state"]]["name"][1],
                "history": [self.order_states[h["id_order_state"]]["name"][1]
                            for h in self.order_histories.values() if h["id_order"] == order_id],
                "emails": [t for i, t in self.emails if i == order_id],
                "order_carriers": [{k: v for k, v in line.items() if k != "date_add"}
                                   for line in self.order_carriers.values() if line["id_order"] == order_id]}

    def tracking_numbers(self, ref: str) -> list[tuple[str, str]]:
        """Each number an order carrier holds (several share one, joined by commas), with the carrier's name."""
        order_id = self.order_id(ref)
        return [(self.carriers[int(line["id_carrier"])]["name"], number)
                for line in self.order_carriers.values() if order_id is not None and line["id_order"] == order_id
                for number in split_tracking(line.get("tracking_number"))]

    def fail_next(self, kind: str, count: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        self.faults.extend([kind] * count)

    @staticmethod
    def next_id(table: dict[int, Any]) -> int:
        return max([*table, 0]) + 1

    # -- the app ---------------------------------------------------------------------

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/api/", self.handle, methods=methods),
                                 Route("/api/{resource}", self.handle, methods=methods),
                                 Route("/api/{resource}/{id}", self.handle, methods=methods)])

    async def handle(self, request: Request) -> Response:
        self.requests += 1
        json_out = (request.headers.get("io-format") or request.headers.get("output-format")
                    or request.query_params.get("output_format") or request.query_params.get("io_format")) == "JSON"
        body = (await request.body()).decode("utf-8", "replace")
        self.seen.append({"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                          "body": body})
        try:
            await self.fault()
            self.throttle()
            self.authenticate(request)
            status, content = self.serve(request, body)
        except Refusal as refusal:
            if refusal.status == 404 and not refusal.errors:  # an id it lacks: an empty 404
                return Response(b"", status_code=404, headers=self.headers(refusal.headers))
            if refusal.status == 401 and not refusal.errors:
                return Response("401 Unauthorized", status_code=401, headers=refusal.headers, media_type="text/html")
            text = errors_json(refusal.errors) if json_out else errors_xml(refusal.errors)
            return Response(text, status_code=refusal.status, headers=self.headers(refusal.headers),
                            media_type="application/json" if json_out else "text/xml")
        text = json.dumps(content) if json_out else self.as_xml(content)
        return Response(text, status_code=status, headers=self.headers({"PSWS-Version": self.version}),
                        media_type="application/json" if json_out else "text/xml")

    @staticmethod
    def headers(extra: dict[str, str]) -> dict[str, str]:
        return {"X-Powered-By": "PrestaShop Webservice", "Access-Time": str(int(time.time())),
                "Execution-Time": "0.004", **extra}

    async def fault(self) -> None:
        if not self.faults:
            return
        kind = self.faults.popleft()
        if kind == "timeout":
            await asyncio.sleep(3600)
        if kind == "http_4xx":
            raise Refusal(405, (25, "Method POST is not allowed for the resource order_histories with this "
                                    "authentication key"))
        if kind == "http_500":
            raise Refusal(500, (46, "Unable to save resource"))
        status = 429 if kind == "http_429" else 503
        raise Refusal(status, (0, "Too Many Requests" if status == 429 else "Service Unavailable"),
                      headers={"Retry-After": str(self.retry_after)})

    def throttle(self) -> None:
        """A host's limit: at most ``quota`` requests in any ``window_seconds``."""
        if self.quota is None:
            return
        now = time.monotonic()
        while self._hits and now - self._hits[0] >= self.window_seconds:
            self._hits.popleft()
        if len(self._hits) >= self.quota:
            self.throttled += 1
            wait = max(1, math.ceil(self.window_seconds - (now - self._hits[0])))
            raise Refusal(429, (0, "Too Many Requests"), headers={"Retry-After": str(wait)})
        self._hits.append(now)

    def authenticate(self, request: Request) -> None:
        """WebserviceRequest::authenticate(): the key as the Basic user (or ws_key), its format, its account."""
        key: str | None = request.query_params.get("ws_key")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                key = base64.b64decode(auth[6:]).decode().partition(":")[0]
            except ValueError:
                key = None
        realm = {"WWW-Authenticate": 'Basic realm="Welcome to PrestaShop Webservice, please enter the '
                                     'authentication key as the login. No password required."'}
        if key is None:  # webservice/dispatcher.php stops before the webservice: a bare 401, no error body
            raise Refusal(401, headers=realm)
        key = key.strip()
        if not key:
            raise Refusal(401, (17, "Authentication key is empty"), headers=realm)
        if len(key) != 32:
            raise Refusal(401, (18, "Invalid authentication key format"), headers=realm)
        if key != self.api_key:
            raise Refusal(401, (20, "Authentification key is not active"),
                          (21, "No permission for this authentication key"), headers=realm)

    def serve(self, request: Request, body: str) -> tuple[int, Any]:
        resource = request.path_params.get("resource", "")
        if not resource:
            return 200, {"api": list(self.permissions)}
        if resource not in FIELDS:
            raise Refusal(400, (27, f'Resource of type "{resource}" does not exists. Did you mean: '
                                    f'"{min(FIELDS, key=lambda r: len(set(r) ^ set(resource)))}"?'))
        if resource not in self.permissions:
            raise Refusal(401, (26, f'Resource of type "{resource}" is not allowed with this authentication key'))
        if request.method not in self.permissions[resource]:
            raise Refusal(405, (25, f"Method {request.method} is not allowed for the resource {resource} "
                                    "with this authentication key"))
        ident = request.path_params.get("id")
        if request.method == "GET":
            return 200, self.read(resource, ident, dict(request.query_params))
        if request.method == "POST" and ident is None:
            return 201, self.create(resource, body, request.query_params.get("sendemail") == "1")
        if request.method == "PUT":
            return 200, self.replace(resource, ident, body, request.query_params.get("sendemail") == "1")
        raise Refusal(405, (23, f"Method {request.method} is not valid"))

    # -- reads -------------------------------------------------------------------------

    def table(self, resource: str) -> dict[int, dict[str, Any]]:
        return {"orders": self.orders, "order_states": self.order_states, "carriers": self.carriers,
                "order_carriers": self.order_carriers, "order_histories": self.order_histories}[resource]

    def render(self, resource: str, ident: int, fields: Iterable[str] | None = None) -> dict[str, Any]:
        """One row as the JSON output gives it: the id a number, every other field a string."""
        row = self.table(resource)[ident]
        out: dict[str, Any] = {"id": ident}
        for name in fields or FIELDS[resource]:
            if name == "id":
                continue
            value = row.get(name, "")
            if isinstance(value, dict):  # a language field
                values = [{"id": str(lang), "value": value[lang]} for lang in self.languages]
                out[name] = values[0]["value"] if len(values) == 1 else values
            else:
                out[name] = "" if value is None else str(value)
        return out

    def read(self, resource: str, ident: str | None, query: dict[str, str]) -> Any:
        display = query.get("display")
        fields: list[str] | None = None
        if display not in (None, "full", "minimum"):
            assert display is not None
            if not (display.startswith("[") and display.endswith("]")):
                raise Refusal(400, (36, "The 'display' syntax is wrong. You can set 'full' or "
                                        f"'[field_1,field_2,field_3,...]'. These are available: "
                                        f"{', '.join(FIELDS[resource])}"))
            fields = [f.strip() for f in display[1:-1].split(",")]
            unknown = [f for f in fields if f not in FIELDS[resource]]
            if unknown:
                raise Refusal(400, (35, f'Unable to display this field "{unknown[0]}". However, these are '
                                        f"available: {', '.join(FIELDS[resource])}"))
        if ident is not None:
            if not ident.isdigit() or int(ident) not in self.table(resource):
                raise Refusal(404)  # the webservice's empty 404
            return {NODE[resource]: self.render(resource, int(ident), fields)}
        rows = list(self.table(resource))
        for name, value in query.items():
            if not name.startswith("filter["):
                continue
            column = name[len("filter["):-1]
            if column not in FIELDS[resource]:
                raise Refusal(400, (32, f'This filter does not exist. Did you mean: "{FIELDS[resource][0]}"?'))
            if not value:
                raise Refusal(400, (33, f'The filter "{column}" is malformed.'))
            wanted = value[1:-1].split("|") if value.startswith("[") and value.endswith("]") else [value]
            rows = [i for i in rows if str(i if column == "id" else self.table(resource)[i].get(column)) in wanted]
        if not rows and self.empty_list_as_array:
            return []  # 1.7's JSON for an empty list (PrestaShop issues 10172, 22760); later: {"orders": []}
        if display is None or display == "minimum":
            return {resource: [{"id": i} for i in rows]}
        return {resource: [self.render(resource, i, fields) for i in rows]}

    # -- writes --------------------------------------------------------------------------

    def entity(self, resource: str, body: str, method: str) -> dict[str, str]:
        """The one entity of an XML body, as WebserviceRequest::saveEntityFromXml() reads it."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise Refusal(500, (127, f"XML error : {exc}\nXML length : {len(body)}\nOriginal XML : {body}")) from None
        entities = list(root)
        if root.tag != "prestashop" or len(entities) != 1 or entities[0].tag != NODE[resource]:
            raise Refusal(400, (0, f"the simulator takes one <{NODE[resource]}> in <prestashop>; "
                                   f"got <{root.tag}> with {[e.tag for e in entities]}"))
        values = {child.tag: (child.text or "").strip() for child in entities[0]}
        if method == "POST" and values.get("id"):
            raise Refusal(400, (91, "id is forbidden when adding a new resource"))
        if method == "PUT" and not values.get("id"):
            raise Refusal(400, (90, "id is required when modifying a resource"))
        return values

    def require(self, resource: str, values: dict[str, str], required: Iterable[str]) -> None:
        for name in required:
            if not values.get(name):
                raise Refusal(400, (41, f'parameter "{name}" required'))
            if not values[name].isdigit() or int(values[name]) == 0:
                raise Refusal(400, (85, f'Validation error: "Property {resource}->{name} is not valid"'))

    def exists(self, table: dict[int, Any], name: str, value: str) -> int:
        # The webservice's own check is isUnsignedId; a row that is not there fails later in PrestaShop
        # (an order history for no order cannot be saved): refused here at once, in its words.
        if int(value) not in table:
            raise Refusal(500 if name == "id_order" else 400, (46, "Unable to save resource")
                          if name == "id_order" else (85, f'Validation error: "{name} {value} does not exist"'))
        return int(value)

    def check_tracking(self, text: str) -> None:
        if len(text) > TRACKING_MAX:
            raise Refusal(400, (85, f'Validation error: "Property OrderCarrier->tracking_number is too long. '
                                    f'Maximum length: {TRACKING_MAX}"'))
        if text and not TRACKING_CHARACTERS.match(text):
            raise Refusal(400, (85, 'Validation error: "Property OrderCarrier->tracking_number is not valid"'))

    def create(self, resource: str, body: str, sendemail: bool) -> Any:
        values = self.entity(resource, body, "POST")
        now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        if resource == "order_histories":
            self.require("OrderHistory", values, ("id_order", "id_order_state"))
            order_id = self.exists(self.orders, "id_order", values["id_order"])
            state = self.exists(self.order_states, "id_order_state", values["id_order_state"])
            ident = self.next_id(self.order_histories)
            self.order_histories[ident] = {"id_order": order_id, "id_order_state": state, "id_employee": "0",
                                           "date_add": now}
            self.orders[order_id]["current_state"] = state  # OrderHistory::addWs(): changeIdOrderState
            if sendemail and self.order_states[state].get("template"):
                self.emails.append((order_id, self.order_states[state]["template"]))
        elif resource == "order_carriers":
            self.require("OrderCarrier", values, ("id_order", "id_carrier"))
            self.exists(self.orders, "id_order", values["id_order"])
            self.exists(self.carriers, "id_carrier", values["id_carrier"])
            self.check_tracking(values.get("tracking_number", ""))
            ident = self.next_id(self.order_carriers)
            self.order_carriers[ident] = {name: values.get(name) for name in FIELDS[resource] if name != "id"}
            self.order_carriers[ident].update(id_order=int(values["id_order"]), id_carrier=int(values["id_carrier"]),
                                              date_add=values.get("date_add") or now)
        else:
            raise Refusal(405, (25, f"Method POST is not allowed for the resource {resource} with this "
                                    "authentication key"))
        return {NODE[resource]: self.render(resource, ident)}

    def replace(self, resource: str, ident: str | None, body: str, sendemail: bool = False) -> Any:
        values = self.entity(resource, body, "PUT")
        if resource != "order_carriers":
            raise Refusal(405, (25, f"Method PUT is not allowed for the resource {resource} with this "
                                    "authentication key"))
        if not values["id"].isdigit() or int(values["id"]) not in self.order_carriers:
            raise Refusal(404, (92, "Invalid ID"))
        if ident is not None and ident != values["id"]:
            raise Refusal(400, (0, f"the id in the URL ({ident}) is not the id in the body ({values['id']})"))
        self.require("OrderCarrier", values, ("id_order", "id_carrier"))
        self.exists(self.orders, "id_order", values["id_order"])
        self.exists(self.carriers, "id_carrier", values["id_carrier"])
        self.check_tracking(values.get("tracking_number", ""))
        # A PUT is the whole resource: a field it leaves out becomes null, as in PrestaShop.
        line: dict[str, Any] = {name: values.get(name) for name in FIELDS[resource] if name != "id"}
        line.update(id_order=int(values["id_order"]), id_carrier=int(values["id_carrier"]))
        self.order_carriers[int(values["id"])] = line
        # OrderCarrier::updateWs(): with sendemail=1, "Package in transit" with the carrier of the ORDER
        # (its id_carrier, not the line's) and its URL, '@' replaced by the line's tracking_number.
        order = self.orders[line["id_order"]]
        url = self.carriers[order["id_carrier"]]["url"]
        if sendemail and url:
            self.emails.append((line["id_order"], f"in_transit {url.replace('@', line['tracking_number'] or '')}"))
        return {NODE[resource]: self.render(resource, int(values["id"]))}

    # -- XML output (the webservice's default) ---------------------------------------------

    @staticmethod
    def as_xml(content: Any) -> str:
        root = ET.Element("prestashop", {"xmlns:xlink": "http://www.w3.org/1999/xlink"})

        def add(parent: ET.Element, name: str, value: Any) -> None:
            if isinstance(value, list):
                holder = ET.SubElement(parent, name)
                for item in value:
                    add(holder, name[:-1] if name.endswith("s") else name, item)
            elif isinstance(value, dict):
                node = ET.SubElement(parent, name)
                for key, item in value.items():
                    add(node, key, item)
            else:
                ET.SubElement(parent, name).text = str(value)

        if isinstance(content, dict):
            for key, value in content.items():
                add(root, key, value)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
