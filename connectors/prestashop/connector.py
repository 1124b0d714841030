"""The PrestaShop connector: order statuses as order_histories rows, tracking numbers on order carriers.

PrestaShop's webservice (``{url}/api/``, HTTP Basic with the webservice key as the user and no password)
keeps an order's status as its newest ``order_histories`` row: ``POST /api/order_histories?sendemail=1``
sets ``current_state`` and mails the customer the status's template. Statuses are rows of the shop
(``order_states``) with an id per shop and a name per language, so the connector finds the id by name, once
per store. Tracking numbers live on the order's ``order_carriers`` (one ``tracking_number`` each).

Every send reads before it writes (the order, its carriers), so a repeat adds no second history row (no
second e-mail) and no tracking number twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cartstatus.connector import ConnectionResult, Connector, StatusUpdate, StopSend, Tracking, json_body
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

from .webservice import (
    CODE_WEBSERVICE_DISABLED,
    CODE_XML_ERROR,
    DEFAULT_STATE_NAMES,
    TRACKING_CHARACTERS,
    TRACKING_MAX,
    errors_in,
    join_tracking,
    localized,
    resource_xml,
    split_tracking,
)

#: What the connector sends as a status: the default status names of a PrestaShop shop (English).
VOCABULARY = DEFAULT_STATE_NAMES

#: An order reference the connector can put in a filter as it is: PrestaShop's own are 9 letters.
REFERENCE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

#: The order carrier fields a PUT must carry: the webservice sets every field a PUT leaves out to null.
ORDER_CARRIER_FIELDS = ("id", "id_order", "id_carrier", "id_order_invoice", "weight", "shipping_cost_tax_excl",
                        "shipping_cost_tax_incl", "tracking_number", "date_add")


@dataclass
class Carrier:
    id: int
    name: str
    deleted: bool


@dataclass
class CarrierPlan:
    """What one order carrier (an existing one, or one to add) will hold once the send is done."""

    carrier: Carrier
    resource: dict[str, Any] | None  # the order carrier as read; None for one to add
    numbers: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    def text(self) -> str:
        return join_tracking(self.numbers)


class PrestaShopConnector(Connector):
    """Sends status changes and tracking numbers to a PrestaShop 1.7/8 shop through its webservice."""

    name = "prestashop"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "api_key"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://",
                    "description": "the shop's base URL (the webservice answers at {url}/api/)"},
            "api_key": {"type": "string", "minLength": 1, "secret": True,
                        "description": "the webservice key (Advanced Parameters > Webservice), 32 characters, with "
                                       "GET on orders, order_states, order_carriers and carriers, POST on "
                                       "order_histories and order_carriers, PUT on order_carriers"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request to the shop is given up"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Payment Received": "Payment accepted",
        "Processing": "Processing in progress",
        "Shipped": "Shipped",
        "Drop Shipped": "Shipped",
        "Delivered": "Delivered",
        "Completed": "Delivered",
        "Cancelled": "Canceled",
        "Refunded": "Refunded",
        "Backordered": "On backorder (paid)",
    }
    # PrestaShop publishes no request limit; its web server or host may have one (a 429 is then retried).
    rate_limit = None
    timeout = 20.0

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        # This instance serves one store: its statuses and carriers are read once, when first needed.
        self._states: dict[str, int] | None = None  # casefolded name (any language) -> id_order_state
        self._state_names: list[str] = []
        self._carriers: list[Carrier] | None = None

    def api(self, path: str) -> str:
        return f"{str(self.settings['url']).rstrip('/')}/api/{path}"

    def http_auth(self) -> httpx.Auth:
        # The webservice key is the Basic user; PrestaShop wants no password.
        return httpx.BasicAuth(self.secret("api_key"), "")

    async def get(self, path: str, **params: str) -> Any:
        """A read, in JSON (``output_format=JSON``: the query parameter every version honours)."""
        reply = await self.call("GET", self.api(path), params={**params, "output_format": "JSON"})
        return json_body(reply)

    async def write(self, method: str, path: str, node: str, fields: Mapping[str, Any],
                    **params: str) -> httpx.Response:
        """A write: the webservice takes XML bodies only (JSON input is not read by 1.7 or 8)."""
        return await self.call(method, self.api(path), params={**params, "output_format": "JSON"},
                               content=resource_xml(node, fields),
                               headers={"Content-Type": "application/xml"})

    # -- reading replies ---------------------------------------------------------

    def classify(self, response: httpx.Response) -> Outcome | None:
        code = response.status_code
        if code < 400 or code == 429:
            return None
        errors = errors_in(response.text)
        said = "; ".join(f"{message} (code {number})" if number else message for number, message in errors)
        numbers = {number for number, _ in errors}
        if str(CODE_WEBSERVICE_DISABLED) in numbers:
            return Failed(f"PrestaShop's webservice is disabled: {said}")
        if code == 500 and str(CODE_XML_ERROR) in numbers:  # PrestaShop answers a body it cannot read with a 500
            return Failed(f"PrestaShop could not read the request: {said}")
        if code >= 500:
            return None  # a fault of the shop or its server: tried again later
        if code == 401:
            return Failed(f"PrestaShop refused the webservice key (HTTP 401): {said or response.text.strip()}")
        if code == 404 and not errors:  # the webservice answers an id it does not have with an empty 404
            return Failed(f"PrestaShop has no {response.request.url.path} (HTTP 404)")
        if errors:
            return Failed(f"PrestaShop refused (HTTP {code}): {said}")
        return None

    # -- the shop's statuses and carriers, once per store ----------------------------

    async def state_ids(self) -> dict[str, int]:
        if self._states is None:
            self.remember_states(await self.get("order_states", display="[id,name,deleted]"))
        assert self._states is not None
        return self._states

    def remember_states(self, body: Any) -> int:
        """Keep the shop's statuses (a reply of GET order_states) by name, in every language; how many."""
        states: dict[str, int] = {}
        names: list[str] = []
        rows = self.rows(body, "order_states")
        if not rows:  # every shop has statuses: this is not the webservice's list (a proxy's page): not kept
            raise StopSend(RetryLater(f"PrestaShop listed no order statuses: {str(body)[:200]!r}"))
        for row in rows:
            if str(row.get("deleted", "0")) == "1":  # a status the merchant deleted stays, marked
                continue
            for text in localized(row.get("name")):
                states.setdefault(text.casefold(), int(row["id"]))
                names.append(text)
        self._states, self._state_names = states, names
        return len(rows)

    async def carriers(self, *, fresh: bool = False) -> list[Carrier]:
        if self._carriers is None or fresh:
            body = await self.get("carriers", display="[id,name,deleted]")
            self._carriers = [Carrier(int(row["id"]), str(row.get("name", "")), str(row.get("deleted", "0")) == "1")
                              for row in self.rows(body, "carriers")]
        return self._carriers

    @staticmethod
    def rows(body: Any, node: str) -> list[dict[str, Any]]:
        """A list reply's rows: ``{"node": [...]}``, or ``[]``, which is how the webservice says "none"."""
        rows = body.get(node, []) if isinstance(body, dict) else []
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    # -- sending -------------------------------------------------------------------

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        try:
            return await self._steps(update)
        except (KeyError, TypeError, ValueError) as exc:  # a reply not shaped as the webservice's (a proxy's page)
            return RetryLater(f"PrestaShop's reply could not be read: {type(exc).__name__}: {exc}")

    async def _steps(self, update: StatusUpdate) -> Outcome:
        order = await self.find_order(update.cart_order_ref)
        if isinstance(order, Failed):
            return order
        order_id = int(order["id"])
        states = await self.state_ids()
        target = states.get(update.cart_status.casefold())
        if target is None:
            return Failed(f"the shop has no order status named {update.cart_status!r}; its statuses are "
                          f"{', '.join(repr(n) for n in self._state_names)}: map the label to one of them")
        plans = await self.tracking_plans(order_id, update.tracking) if update.tracking else []
        if isinstance(plans, Failed):
            return plans
        written = []
        for plan in plans:  # only the order carriers that lack a number
            if plan.resource is not None:
                resource = {key: plan.resource.get(key) for key in ORDER_CARRIER_FIELDS}
                resource["tracking_number"] = plan.text()
                await self.write("PUT", f"order_carriers/{plan.resource['id']}", "order_carrier", resource,
                                 **self.in_transit_mail(order, plan))
            else:
                await self.write("POST", "order_carriers", "order_carrier", {
                    "id_order": order_id, "id_carrier": plan.carrier.id, "tracking_number": plan.text()})
            written.append(f"{plan.carrier.name} {', '.join(plan.added)}")
        status_done = int(order.get("current_state") or 0) == target
        if not status_done:
            # sendemail=1: the customer gets the status's own e-mail, as when set in the back office.
            await self.write("POST", "order_histories", "order_history",
                             {"id_order": order_id, "id_order_state": target}, sendemail="1")
        if status_done and not written:
            return AlreadyDone(f"order {order_id} is already {update.cart_status!r} with every tracking number")
        parts = ([] if status_done else [f"status {update.cart_status!r}"]) + [f"tracking {w}" for w in written]
        return Delivered(f"order {order_id}: " + "; ".join(parts))

    @staticmethod
    def in_transit_mail(order: Mapping[str, Any], plan: CarrierPlan) -> dict[str, str]:
        """``sendemail=1`` (PrestaShop mails the customer "Package in transit") for the first number of the
        order's own carrier line: the mail's follow-up link is that carrier's URL with the number in it, so a
        line of another carrier, or several numbers in one, would mail a broken link; a repeat finds the
        number there and mails nothing again."""
        assert plan.resource is not None
        first = not split_tracking(plan.resource.get("tracking_number")) and len(plan.numbers) == 1
        own = str(plan.resource.get("id_carrier")) == str(order.get("id_carrier"))
        return {"sendemail": "1"} if first and own else {}

    async def find_order(self, ref: str) -> dict[str, Any] | Failed:
        """The order by its id (digits) or its reference (PrestaShop's 9 letters, or any other the shop keeps)."""
        ref = ref.strip()
        if ref.isdigit():
            body = await self.get(f"orders/{int(ref)}")  # an unknown id: an empty 404, Failed by classify
            order = body.get("order") if isinstance(body, dict) else None
            if not isinstance(order, dict):  # a 200 that is not the webservice's order (a proxy's page)
                raise StopSend(RetryLater(f"PrestaShop's reply for order {ref} holds no order: {str(body)[:200]!r}"))
            return order
        if not REFERENCE.match(ref):
            return Failed(f"{ref!r} is neither a PrestaShop order id nor an order reference")
        found = self.rows(await self.get("orders", **{"filter[reference]": f"[{ref}]",
                                                       "display": "[id,reference,current_state,id_carrier]"}), "orders")
        if not found:
            return Failed(f"PrestaShop has no order with reference {ref!r}")
        if len(found) > 1:  # a cart split between carriers gives several orders one reference
            ids = ", ".join(str(o.get("id")) for o in found)
            return Failed(f"reference {ref!r} names {len(found)} PrestaShop orders ({ids}): send the order id instead")
        return found[0]

    async def tracking_plans(self, order_id: int, tracking: tuple[Tracking, ...]) -> list[CarrierPlan] | Failed:
        """The order carriers to write so that each number is held once, under its carrier's name.

        PrestaShop keeps one tracking_number per order carrier. A number goes on the order carrier of its
        carrier (matched by name); several numbers of one carrier share it, joined with ", " (64 characters
        at most); a carrier the order has no line for gets a new order carrier, if the shop has that carrier.
        """
        lines = self.rows(await self.get("order_carriers", **{"filter[id_order]": f"[{order_id}]",
                                                               "display": "full"}), "order_carriers")
        carriers = await self.carriers()
        held = {number for line in lines for number in split_tracking(line.get("tracking_number"))}
        missing = [t for t in dict.fromkeys(tracking) if t.number.strip() not in held]
        if not missing:
            return []
        if any(self.match(carriers, t.carrier) is None for t in missing):
            carriers = await self.carriers(fresh=True)  # one read more: a carrier added since
        plans: dict[int, CarrierPlan] = {}
        by_id = {c.id: c for c in carriers}
        for track in missing:
            number = track.number.strip()
            if not TRACKING_CHARACTERS.match(number):
                return Failed(f"PrestaShop does not take the tracking number {number!r} (characters it refuses)")
            wanted = self.match(carriers, track.carrier)
            if wanted is None:
                active = sorted({c.name for c in carriers if not c.deleted})
                return Failed(f"the shop has no carrier named {track.carrier!r} for tracking number {number}; its "
                              f"carriers are {', '.join(repr(n) for n in active)}")
            line = next((ln for ln in lines if self.same_carrier(by_id.get(int(ln.get("id_carrier") or 0)), wanted)),
                        None)
            key = int(line["id"]) if line is not None else -wanted.id
            if key not in plans:
                plans[key] = CarrierPlan(wanted, line, split_tracking(line.get("tracking_number")) if line else [])
            plans[key].numbers.append(number)
            plans[key].added.append(number)
        too_long = [p for p in plans.values() if len(p.text()) > TRACKING_MAX]
        if too_long:
            return Failed(f"PrestaShop holds at most {TRACKING_MAX} characters of tracking per order carrier; "
                          f"{too_long[0].carrier.name} would need {too_long[0].text()!r}")
        return list(plans.values())

    @staticmethod
    def match(carriers: list[Carrier], name: str) -> Carrier | None:
        """The shop's carrier for a carrier name: the same name (any case), else the one whose name holds it
        as a word ("UPS" for "UPS Standard"); a carrier the shop deleted only when no other has the name."""
        wanted = name.strip().casefold()
        word = re.compile(rf"(?<![0-9a-z]){re.escape(wanted)}(?![0-9a-z])")
        for exact in (True, False):
            found = [c for c in carriers
                     if (c.name.casefold() == wanted if exact else bool(word.search(c.name.casefold())))]
            active = [c for c in found if not c.deleted]
            if not exact and len({c.name.casefold() for c in active}) > 1:
                return None  # "UPS" in "UPS Standard" and "UPS Express": the merchant must say which
            if active or found:
                return (active or found)[-1]  # the newest: PrestaShop's copy of a carrier it edited
        return None

    @staticmethod
    def same_carrier(line_carrier: Carrier | None, wanted: Carrier) -> bool:
        # PrestaShop "edits" a carrier by deleting it and adding a copy: an old order's line may name the
        # deleted id, so the line matches by the carrier's name, not only its id.
        return line_carrier is not None and (line_carrier.id == wanted.id
                                             or line_carrier.name.casefold() == wanted.name.casefold())

    async def test_connection(self) -> ConnectionResult:
        try:
            reply = await self.call("GET", self.api("order_states"),
                                    params={"display": "[id,name,deleted]", "output_format": "JSON"})
            count = self.remember_states(json_body(reply))  # the read a first send would make anyway
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        version = reply.headers.get("PSWS-Version", "?")
        return ConnectionResult(True, f"PrestaShop {version} webservice answers; the key reads {count} order statuses")
