"""The ``ecwid`` connector: Ecwid's REST API v3, ``PUT /{storeId}/orders/{orderId}`` read first with a ``GET``.

Ecwid keeps two statuses on an order, ``fulfillmentStatus`` and ``paymentStatus``, whose values do not overlap;
the connector sets whichever field the mapped value belongs to. An order has one ``trackingNumber`` (a string:
the ``shipments`` Ecwid lists are shipping labels bought through Ecwid, read-only), so every number goes into that
one field as ``Carrier: number``, the entries joined by ``", "`` (see docs/carts/ecwid.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from cartstatus.auth import HeaderAuth
from cartstatus.connector import (
    ConnectionResult,
    Connector,
    RateLimit,
    StatusUpdate,
    StopSend,
    Tracking,
    json_body,
)
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

#: Ecwid's fulfillment statuses (the order's ``fulfillmentStatus``), as Ecwid spells them.
FULFILLMENT_STATUSES = ("AWAITING_PROCESSING", "PROCESSING", "SHIPPED", "DELIVERED", "WILL_NOT_DELIVER", "RETURNED",
                        "READY_FOR_PICKUP", "OUT_FOR_DELIVERY")
#: Ecwid's payment statuses (the order's ``paymentStatus``); no name is also a fulfillment status.
PAYMENT_STATUSES = ("AWAITING_PAYMENT", "PAID", "CANCELLED", "REFUNDED", "PARTIALLY_REFUNDED", "INCOMPLETE")
VOCABULARY = FULFILLMENT_STATUSES + PAYMENT_STATUSES

DEFAULT_API_BASE = "https://app.ecwid.com/api/v3"
#: How the entries of the one ``trackingNumber`` field are joined, and how an entry names its carrier.
ENTRY_SEPARATOR = ", "
CARRIER_SEPARATOR = ": "


def status_field(cart_status: str) -> str:
    """The order field an Ecwid status value belongs to."""
    return "fulfillmentStatus" if cart_status in FULFILLMENT_STATUSES else "paymentStatus"


def tracking_entries(text: str | None) -> list[tuple[str, str]]:
    """The ``(carrier, number)`` entries of an order's ``trackingNumber``; a bare number (typed in Ecwid's
    admin) has carrier ``""``."""
    entries = []
    for part in (text or "").split(ENTRY_SEPARATOR.strip()):
        part = part.strip()
        if part:
            carrier, sep, number = part.rpartition(CARRIER_SEPARATOR)
            entries.append((carrier.strip(), number.strip()) if sep else ("", part))
    return entries


def tracking_text(held: str | None, missing: Sequence[Tracking]) -> str:
    """``held`` (kept as the cart has it: a person may have typed it) with each missing number appended."""
    # A comma in a carrier's name would split its entry in two when read back.
    carriers = [" ".join(t.carrier.replace(",", " ").split()) for t in missing]
    added = [f"{carrier}{CARRIER_SEPARATOR}{t.number}" if carrier else t.number
             for carrier, t in zip(carriers, missing, strict=True)]
    return ENTRY_SEPARATOR.join([part for part in [(held or "").strip()] if part] + added)


def missing_tracking(held: str | None, tracking: Sequence[Tracking]) -> list[Tracking]:
    """The numbers of ``tracking`` the order's ``trackingNumber`` does not hold yet, each once."""
    have = {number for _, number in tracking_entries(held)}
    missing: list[Tracking] = []
    for track in tracking:
        if track.number and track.number not in have:
            have.add(track.number)
            missing.append(track)
    return missing


def ecwid_error(body: Any) -> str | None:
    """Ecwid's own words from an error body ``{"errorMessage": ..., "errorCode": ...}`` (both optional)."""
    if not isinstance(body, Mapping):
        return None
    message, code = body.get("errorMessage"), body.get("errorCode")
    words = [str(w) for w in (message, f"({code})" if code else None) if w]
    return " ".join(words) or None


class EcwidConnector(Connector):
    """Sets an Ecwid order's fulfillment or payment status, and its tracking numbers, through REST API v3."""

    name = "ecwid"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["store_id", "token"],
        "properties": {
            "store_id": {"type": "integer", "minimum": 1,
                         "description": "the Ecwid store ID (Ecwid admin > Settings > General, or #develop-apps)"},
            "token": {"type": "string", "minLength": 8, "pattern": "^(?!public_)\\S+$", "secret": True,
                      "description": "the custom app's secret access token (secret_...), with the read_orders and "
                                     "update_orders scopes; a public_ token cannot change orders"},
            "api_base": {"type": "string", "pattern": "^https?://", "default": DEFAULT_API_BASE,
                         "description": "the REST API root, without the store ID"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request to Ecwid is given up"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Received": "AWAITING_PROCESSING",
        "Payment Received": "PAID",
        "Processing": "PROCESSING",
        "Shipped": "SHIPPED",
        "Drop Shipped": "SHIPPED",
        "Delivered": "DELIVERED",
        "Cancelled": "CANCELLED",
        "Refunded": "REFUNDED",
    }
    # Ecwid: "up to 600 requests per minute per token"; beyond, 429 with "Retry-After: N" (read by `call`).
    rate_limit = RateLimit(600, 60.0, "600 requests a minute per token")
    timeout = 20.0

    @property
    def store_url(self) -> str:
        base = str(self.settings.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        return f"{base}/{int(self.settings['store_id'])}"

    def order_url(self, ref: str) -> str:
        # Order ids carry the store's prefixes and suffixes (SALE-G01ZG): one path segment, quoted whole.
        return f"{self.store_url}/orders/{quote(ref, safe='')}"

    def http_auth(self) -> httpx.Auth:
        return HeaderAuth("Authorization", self.secret("token"), scheme="Bearer")

    def classify(self, response: httpx.Response) -> Outcome | None:
        # Every 4xx but the passing ones (408, 429: the status-code rules) is final, in Ecwid's own words:
        # 403 INVALID_API_TOKEN or INSUFFICIENT_APP_SCOPE, 404 ORDER_NOT_FOUND, 400 WRONG_PARAMETER...
        code = response.status_code
        if 400 <= code < 500 and code not in (408, 425, 429):
            said = ecwid_error(json_body(response)) or response.text[:200].strip() or response.reason_phrase
            return Failed(f"Ecwid refused: HTTP {code}: {said}")
        return None

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        # Read before writing: the one trackingNumber field is replaced by a PUT, so what it holds is kept,
        # and a repeat (or a retry after a lost reply) finds everything there and sends nothing.
        url = self.order_url(update.cart_order_ref)
        order = json_body(await self.call("GET", url))
        if not isinstance(order, Mapping):  # a 200 page that is not Ecwid's JSON (a proxy's): passing, unread
            return RetryLater(f"Ecwid's answer to GET order {update.cart_order_ref} was not an order: unreadable")
        field = status_field(update.cart_status)
        held = order.get("trackingNumber")
        missing = missing_tracking(held if isinstance(held, str) else None, update.tracking)
        if order.get(field) == update.cart_status and not missing:
            return AlreadyDone(f"Ecwid already had {field} {update.cart_status} and every tracking number")
        # The status goes with every PUT, even when it is already set: the PUT is the status change asked for.
        body: dict[str, Any] = {field: update.cart_status}
        if missing:
            body["trackingNumber"] = tracking_text(held if isinstance(held, str) else None, missing)
        reply = json_body(await self.call("PUT", url, json=body))
        if not isinstance(reply, Mapping) or "updateCount" not in reply:
            return RetryLater(f"Ecwid's answer to PUT order {update.cart_order_ref} was unreadable: sent again later")
        if reply["updateCount"] != 1:
            # Ecwid's "0 if the item was not updated": nothing says a retry would fare better; a person looks.
            return Failed(f"Ecwid did not update order {update.cart_order_ref}: updateCount {reply['updateCount']!r}")
        added = f", {len(missing)} tracking number(s) added" if missing else ""
        return Delivered(f"{field} {update.cart_status}{added}")

    async def test_connection(self) -> ConnectionResult:
        # One cheap read that needs what sending needs (read_orders), rather than /profile (any token reads it).
        try:
            reply = await self.call("GET", f"{self.store_url}/orders", params={"limit": 1})
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        body = json_body(reply)
        total = body.get("total", "?") if isinstance(body, Mapping) else "?"
        return ConnectionResult(True, f"Ecwid store {int(self.settings['store_id'])} answers ({total} orders)")
