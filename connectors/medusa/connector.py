"""The ``medusa`` connector: Medusa 2.x's Admin REST API, logged in with an admin user's e-mail and password.

A Medusa order keeps three state fields (``status``, ``payment_status``,
``fulfillment_status``) and changes them only through its own actions:
capture a payment, create a fulfillment, create its shipment (where the
tracking numbers go, as the shipment's ``labels``), mark it delivered,
complete or cancel the order. Each label of the vocabulary is one such
action (or a few, in order); the order is read first so that a repeat, or a
retry after part of a label was done, makes only what is missing: a second
``POST .../shipments`` would record the shipment twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from cartstatus.auth import Token, TokenLogin
from cartstatus.connector import ConnectionResult, Connector, StatusUpdate, StopSend, Tracking, json_body
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater

#: The cart's own actions, as a store's status_map names them.
VOCABULARY = ("captured", "shipped", "delivered", "completed", "canceled")
#: The labels whose action ships the order: their tracking numbers become the shipment's labels.
SHIPPING = ("shipped", "delivered")

#: Where the carrier of each tracking number is kept: Medusa's labels have no carrier field, a
#: fulfillment's metadata does take any key (the label's tracking_url names the carrier's page too).
CARRIERS_KEY = "cartstatus_carriers"
#: Where tracking numbers sent with a label that ships nothing are kept: the order's metadata.
TRACKING_KEY = "cartstatus_tracking"

#: Every field the connector decides from (Medusa's ``fields`` query: relations with their fields).
ORDER_FIELDS = ",".join((
    "id", "display_id", "status", "payment_status", "fulfillment_status", "metadata",
    "items.id", "items.requires_shipping", "items.detail.quantity", "items.detail.fulfilled_quantity",
    "fulfillments.id", "fulfillments.requires_shipping", "fulfillments.shipped_at", "fulfillments.delivered_at",
    "fulfillments.canceled_at",
    "fulfillments.metadata", "fulfillments.items.line_item_id", "fulfillments.items.quantity",
    "fulfillments.labels.tracking_number",
    "payment_collections.payments.id", "payment_collections.payments.captured_at",
    "payment_collections.payments.canceled_at",
))

#: Public tracking pages of the carriers an order manager names most, for the label's tracking_url.
TRACKING_PAGES = {
    "ups": "https://www.ups.com/track?tracknum={number}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={number}",
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    "dhl": "https://www.dhl.com/en/express/tracking.html?AWB={number}",
}

#: The payment_status values of an order whose payment has been captured.
CAPTURED = ("captured", "partially_refunded", "refunded")
#: Medusa's answer when another request holds the order (a workflow's lock): it asks to try again.
CONFLICT = 409


def tracking_url(track: Tracking) -> str:
    page = TRACKING_PAGES.get(track.carrier.casefold())
    return page.format(number=quote(track.number, safe="")) if page else ""


def medusa_error(response: httpx.Response) -> tuple[str, str] | None:
    """``(type, message)`` of Medusa's error body ``{"type": ..., "message": ...}``, when it is one."""
    body = json_body(response)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    return str(body.get("type") or body.get("code") or "error"), body["message"]


def _quantity(value: Any) -> float:
    """Medusa's quantities come as numbers or as BigNumber strings."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class MedusaConnector(Connector):
    """Sends order status changes and tracking numbers to a Medusa 2.x store through its Admin API."""

    name = "medusa"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "email", "password"],
        "properties": {
            "url": {"type": "string", "pattern": "^https?://",
                    "description": "the Medusa server's root, as https://shop.example.com (no /admin)"},
            "email": {"type": "string", "minLength": 3,
                      "description": "the e-mail of a Medusa admin user (POST /auth/user/emailpass)"},
            "password": {"type": "string", "minLength": 1, "secret": True, "description": "that user's password"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before one request to the cart is given up (default 30)"},
        },
    }
    status_vocabulary = VOCABULARY
    default_status_map = {
        "Payment Received": "captured",
        "Shipped": "shipped",
        "Delivered": "delivered",
        "Completed": "completed",
        "Cancelled": "canceled",
    }
    # Medusa itself publishes no request limit (a host in front of it may: a 429 with Retry-After is honoured).
    rate_limit = None
    timeout = 30.0

    def url(self, path: str) -> str:
        return str(self.settings["url"]).rstrip("/") + path

    # -- authentication and replies ----------------------------------------------------

    def http_auth(self) -> httpx.Auth:
        # A JWT from POST /auth/user/emailpass, kept for this store, renewed before its exp and once on a 401.
        return TokenLogin(self._login, lambda reply: Token.from_jwt(reply.json()["token"]),
                          check=self.outcome_for_response)

    def _login(self) -> httpx.Request:
        return self.client.build_request("POST", self.url("/auth/user/emailpass"), json={
            "email": self.settings["email"], "password": self.secret("password")})

    def classify(self, response: httpx.Response) -> Outcome | None:
        # Medusa answers every error with {"type", "message"}: a business refusal ("not_allowed": an order
        # that cannot be canceled any more; "invalid_data": a canceled order) is for a person, in Medusa's
        # words; a 409 (another request holds the order's workflow lock) passes.
        if response.status_code < 400 or response.status_code >= 500 or response.status_code == 429:
            return None
        error = medusa_error(response)
        if response.status_code == CONFLICT:
            return RetryLater(f"Medusa is busy with the order: {error[1] if error else 'HTTP 409'}")
        if error is None:
            return None
        kind, message = error
        if response.status_code == 401:
            return Failed(f"Medusa refused the admin credential: {message} (HTTP 401)")
        return Failed(f"Medusa refused: {message} ({kind}, HTTP {response.status_code})")

    # -- sending ---------------------------------------------------------------------

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _read(self, ref: str) -> dict[str, Any]:
        reply = await self.call("GET", self.url(f"/admin/orders/{quote(ref, safe='')}"),
                                params={"fields": ORDER_FIELDS})
        body = json_body(reply)
        order = body.get("order") if isinstance(body, dict) else None
        if not isinstance(order, dict):
            raise StopSend(RetryLater("Medusa's order reply held no order"))
        return order

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        ref = update.cart_order_ref
        order = await self._read(ref)
        done: list[str] = []
        missing = [t for t in _unique(update.tracking) if t.number not in held_numbers(order)]
        label = update.cart_status
        if label in SHIPPING:  # on a canceled order Medusa refuses the fulfillment, in its words
            missing = await self._ship(ref, order, missing, done)
            if label == "delivered":
                order = await self._read(ref) if done else order
                await self._mark_delivered(ref, order, done)
        if missing:  # numbers no shipment can take (the label ships nothing, or every item has shipped)
            await self._keep_in_metadata(ref, order, missing, done)
        if label == "captured":
            await self._capture(order, done)
        elif label == "completed" and order.get("status") != "completed":
            await self.call("POST", self.url(f"/admin/orders/{quote(ref, safe='')}/complete"), json={})
            done.append("order completed")
        elif label == "canceled" and order.get("status") != "canceled":
            await self.call("POST", self.url(f"/admin/orders/{quote(ref, safe='')}/cancel"), json={})
            done.append("order canceled")
        if not done:
            return AlreadyDone(f"Medusa's order already had {label} and every tracking number")
        return Delivered("; ".join(done))

    async def _ship(self, ref: str, order: dict[str, Any], missing: list[Tracking], done: list[str]) -> list[Tracking]:
        """Fulfil what is unfulfilled, then ship every fulfillment not shipped yet, the missing numbers as the
        labels of the first that needs shipping; gives back the numbers no shipment took (all had shipped)."""
        path = f"/admin/orders/{quote(ref, safe='')}"
        # Medusa makes a fulfillment of items that need shipping or of items that do not, never of both.
        groups: dict[bool, list[dict[str, Any]]] = {}
        for item in order.get("items") or []:
            if (left := _remaining(item)) > 0:
                groups.setdefault(item.get("requires_shipping") is not False, []).append(
                    {"id": item["id"], "quantity": left})
        # The carriers go with the items that ship (with the others only when nothing ships), so that a retry
        # after one of two fulfillments was made ends as one delivery does.
        any_ship = any(item.get("requires_shipping") is not False for item in order.get("items") or [])
        for shipping, items in sorted(groups.items(), reverse=True):
            body: dict[str, Any] = {"items": items}
            if missing and shipping == any_ship:
                body["metadata"] = {CARRIERS_KEY: {t.number: t.carrier for t in missing}}
            await self.call("POST", self.url(f"{path}/fulfillments"), json=body)
            done.append("items fulfilled" if shipping else "items that need no shipping fulfilled")
        if groups:
            order = await self._read(ref)  # the new fulfillments' ids
        unshipped = [f for f in active_fulfillments(order) if not f.get("shipped_at")]
        # All the numbers go on one shipment, the first that needs shipping: Medusa cannot say which package
        # holds which item.
        unshipped.sort(key=lambda f: f.get("requires_shipping") is False)
        for fulfillment in unshipped:
            items = [{"id": i["line_item_id"], "quantity": _number(i.get("quantity"))}
                     for i in fulfillment.get("items") or []]
            labels = [{"tracking_number": t.number, "tracking_url": tracking_url(t), "label_url": ""}
                      for t in missing]
            await self.call("POST", self.url(f"{path}/fulfillments/{fulfillment['id']}/shipments"),
                            json={"items": items, "labels": labels})
            done.append(f"shipment created with {len(labels)} tracking numbers" if labels else "shipment created")
            missing = []
        return missing

    async def _mark_delivered(self, ref: str, order: dict[str, Any], done: list[str]) -> None:
        for fulfillment in active_fulfillments(order):
            if not fulfillment.get("delivered_at"):
                await self.call("POST", self.url(f"/admin/orders/{quote(ref, safe='')}/fulfillments/"
                                                 f"{fulfillment['id']}/mark-as-delivered"), json={})
                done.append("fulfillment marked delivered")

    async def _capture(self, order: dict[str, Any], done: list[str]) -> None:
        due = [p for p in payments(order) if not p.get("captured_at") and not p.get("canceled_at")]
        if not due and order.get("payment_status") not in CAPTURED:
            # Nothing captured and nothing to capture (a canceled payment): never "already done".
            raise StopSend(Failed(f"Medusa has no payment to capture on this order "
                                  f"(payment_status {order.get('payment_status')!r})"))
        for payment in due:
            # A capture of the whole amount; Medusa answers a repeat with the captured payment, unchanged.
            await self.call("POST", self.url(f"/admin/payments/{quote(payment['id'], safe='')}/capture"), json={})
            done.append("payment captured")

    async def _keep_in_metadata(self, ref: str, order: dict[str, Any], missing: list[Tracking],
                                done: list[str]) -> None:
        metadata = dict(order.get("metadata") or {})
        kept = list(metadata.get(TRACKING_KEY) or [])
        kept += [{"carrier": t.carrier, "number": t.number} for t in missing]
        metadata[TRACKING_KEY] = kept
        await self.call("POST", self.url(f"/admin/orders/{quote(ref, safe='')}"), json={"metadata": metadata})
        done.append(f"{len(missing)} tracking numbers kept in the order's metadata")

    async def test_connection(self) -> ConnectionResult:
        try:
            reply = await self.call("GET", self.url("/admin/users/me"))
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        body = json_body(reply)
        user = body.get("user") if isinstance(body, dict) else None
        who = user.get("email") if isinstance(user, dict) else None
        return ConnectionResult(True, f"Medusa answers; logged in as {who or 'an admin user'}")


def _unique(tracking: Iterable[Tracking]) -> list[Tracking]:
    seen: dict[str, Tracking] = {}
    for track in tracking:
        seen.setdefault(track.number, track)
    return list(seen.values())


def _number(value: Any) -> int | float:
    number = _quantity(value)
    return int(number) if number.is_integer() else number


def _remaining(item: Mapping[str, Any]) -> int | float:
    # Medusa keeps an item's quantities on its ``detail`` (the order's version of the item).
    detail = item.get("detail") or {}
    ordered = item.get("quantity", detail.get("quantity"))
    return _number(_quantity(ordered) - _quantity(detail.get("fulfilled_quantity")))


def active_fulfillments(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [f for f in order.get("fulfillments") or [] if not f.get("canceled_at")]


def payments(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for c in order.get("payment_collections") or [] for p in c.get("payments") or []]


def held_numbers(order: Mapping[str, Any]) -> set[str]:
    """Every tracking number Medusa holds for the order: its shipments' labels and the order's metadata."""
    numbers = {label.get("tracking_number") for f in active_fulfillments(order) for label in f.get("labels") or []}
    kept = (order.get("metadata") or {}).get(TRACKING_KEY) or []
    numbers |= {entry.get("number") for entry in kept if isinstance(entry, dict)}
    return {n for n in numbers if isinstance(n, str)}
