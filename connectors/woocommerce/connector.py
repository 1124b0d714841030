"""The ``woocommerce`` connector: WooCommerce's REST API v3, with a consumer key and secret.

- status: ``PUT /wp-json/wc/v3/orders/<id>`` with ``{"status": ...}``;
- tracking: core WooCommerce has no tracking field, so each number becomes one customer note,
  ``POST /wp-json/wc/v3/orders/<id>/notes``, written only when the order's customer notes
  (read first) do not name it already;
- batch: ``POST /wp-json/wc/v3/orders/batch`` with ``{"update": [...]}``, at most 100 items a request,
  each item's ``error`` read on its own.

See docs/carts/woocommerce.md.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
from cartstatus.connector import (
    ConnectionResult,
    Connector,
    StatusUpdate,
    StopSend,
    Tracking,
    json_body,
    outcome_for_transport_error,
)
from cartstatus.outcomes import SUCCESS, Delivered, Failed, Outcome, RetryLater

#: The order statuses of WooCommerce core that a status update may set. Not ``trash``: a status update
#: must never trash an order (the orders endpoint refuses it anyway), nor ``checkout-draft``/``auto-draft``.
VOCABULARY = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed")

#: WooCommerce's default batch limit (the ``woocommerce_rest_batch_items_limit`` filter); over it, 413.
BATCH_LIMIT = 100

API = "/wp-json/wc/v3"

#: What a store plugin's own status may look like: WordPress keeps ``wc-<slug>`` in a 20-character column.
STATUS_SLUG = "^[a-z0-9][a-z0-9_-]{0,16}$"

#: Codes of WooCommerce's replies that mean the key itself was refused (wrong, revoked, read-only).
CREDENTIAL_CODES = ("woocommerce_rest_authentication_error", "woocommerce_rest_cannot_view",
                    "woocommerce_rest_cannot_edit", "woocommerce_rest_cannot_create", "woocommerce_rest_cannot_batch")


def tracking_note(track: Tracking) -> str:
    """The customer note that carries one tracking number (the simulator reads it back the same way)."""
    shipped = f" on {track.ship_date}" if track.ship_date else ""
    return f"Shipped with {track.carrier}{shipped}, tracking number {track.number}"


def names_number(text: str, number: str) -> bool:
    """Whether a note's text names ``number`` as a whole word (``123`` is not in ``91234``)."""
    return re.search(rf"(?<![\w-]){re.escape(number)}(?![\w-])", text) is not None


def order_id(ref: str) -> int | str:
    """The order's id as WooCommerce's JSON has it: an integer (a reference that is not one is sent as is,
    and WooCommerce answers that it has no such order)."""
    return int(ref) if ref.isdigit() else ref


class WooCommerceConnector(Connector):
    """Sets a WooCommerce order's status, and adds each tracking number once as a customer note."""

    name = "woocommerce"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "consumer_key", "consumer_secret"],
        "properties": {
            # HTTPS only: WooCommerce takes HTTP Basic with the key only over HTTPS (over plain HTTP it wants
            # OAuth 1.0a signatures), and a key sent in clear would be readable on the way.
            "url": {"type": "string", "pattern": "^https://",
                    "description": "the WordPress site's address, https://shop.example (its REST API is "
                                   "under /wp-json/wc/v3)"},
            "consumer_key": {"type": "string", "minLength": 8, "secret": True,
                             "description": "a WooCommerce REST API key with Read/Write permission, ck_..."},
            "consumer_secret": {"type": "string", "minLength": 8, "secret": True,
                                "description": "its consumer secret, cs_..."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120,
                        "description": "seconds before a request is given up (default 30)"},
            "statuses": {"type": "array", "uniqueItems": True,
                         "items": {"type": "string", "pattern": STATUS_SLUG,
                                   "not": {"enum": ["trash", "auto-draft", "checkout-draft", *VOCABULARY]}},
                         "description": "order statuses a store plugin adds (their slugs, without wc-, for "
                                        "example shipped), taken as well as WooCommerce's own"},
        },
    }
    status_vocabulary: ClassVar[tuple[str, ...] | None] = VOCABULARY
    default_status_map = {
        "Payment Received": "processing",
        "Processing": "processing",
        "Drop Shipped": "processing",
        "Partially Shipped": "processing",
        "Backordered": "processing",
        "Shipped": "completed",
        "Delivered": "completed",
        "Completed": "completed",
        "Cancelled": "cancelled",
        "On Hold": "on-hold",
        "Refunded": "refunded",
    }
    rate_limit = None  # WooCommerce core publishes none for wc/v3 (its host may: a 429 is read as such)
    # A WordPress site on the merchant's own host: every order save runs hooks and e-mails, so a few
    # requests at a time is as much as it should be asked to take.
    max_in_flight = 4
    supports_batch = True
    timeout = 30.0

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        # This store's vocabulary: WooCommerce's own and its plugins' (check_status reads the instance's).
        self.status_vocabulary = self.vocabulary_for(settings)  # type: ignore[misc]
        # What this store's batch call takes; lowered when the store answers 413 with a smaller limit.
        self.batch_limit = BATCH_LIMIT

    @classmethod
    def vocabulary_for(cls, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """The statuses a store with these settings takes: WooCommerce's, then its ``statuses``."""
        extra = settings.get("statuses") or ()
        return VOCABULARY + tuple(str(s) for s in extra if str(s) not in VOCABULARY)

    def url(self, path: str) -> str:
        return str(self.settings["url"]).rstrip("/") + API + path

    def order_url(self, update: StatusUpdate, tail: str = "") -> str:
        # The reference is quoted whole: one with a "/" or a "?" must not reach another route or add a parameter.
        return self.url(f"/orders/{urllib.parse.quote(update.cart_order_ref, safe='')}{tail}")

    def http_auth(self) -> httpx.Auth:
        # WooCommerce over HTTPS: HTTP Basic, the consumer key as user and the secret as password.
        return httpx.BasicAuth(self.secret("consumer_key"), self.secret("consumer_secret"))

    # -- replies -----------------------------------------------------------------

    def classify(self, response: httpx.Response) -> Outcome | None:
        # A WooCommerce/WordPress refusal is {"code", "message", "data": {"status"}}: give its words. Throttling
        # and server faults go on to the status-code rules (RetryLater, with Retry-After).
        status = response.status_code
        if status < 400 or status in (408, 425, 429) or status >= 500:
            return None
        body = json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            return None
        return Failed(self.refusal(status, body["code"], body.get("message")))

    @staticmethod
    def refusal(status: int | None, code: str, message: Any) -> str:
        """A WooCommerce refusal in words a person can act on."""
        said = f"WooCommerce refused (HTTP {status or '?'} {code}): {message or 'no message'}"
        if code.endswith("_invalid_id"):
            return f"{said}; WooCommerce has no such order (the reference must be the order's id)"
        if code in CREDENTIAL_CODES or status in (401, 403):
            return (f"{said}; check the store's consumer_key and consumer_secret: a WooCommerce REST API key "
                    "with Read/Write permission, over HTTPS")
        if code == "rest_no_route":
            return f"{said}; is url the WordPress site's address, with the WooCommerce REST API at /wp-json/wc/v3?"
        return said

    def item_outcome(self, item: Any, update: StatusUpdate) -> Outcome:
        """One item of a batch reply: the order as saved, or its own ``error``."""
        if not isinstance(item, dict):
            return RetryLater("WooCommerce's batch reply held no answer for this order")
        error = item.get("error")
        if isinstance(error, dict):
            data = error.get("data")
            status = data.get("status") if isinstance(data, dict) else None
            code = str(error.get("code") or "unknown")
            reason = self.refusal(status if isinstance(status, int) else None, code, error.get("message"))
            if isinstance(status, int) and (status in (408, 425, 429) or status >= 500):
                return RetryLater(reason)
            return Failed(reason)
        return self.saved(item, update)

    @staticmethod
    def saved(order: Any, update: StatusUpdate) -> Outcome:
        """The order WooCommerce answered with has the status sent; a batch item with a status the store does
        not have is saved as ``pending`` without an error, so this is checked, not assumed."""
        status = order.get("status") if isinstance(order, dict) else None
        if status == update.cart_status:
            return Delivered(f"WooCommerce order {update.cart_order_ref} is {status}")
        if status is None:
            return RetryLater("WooCommerce's reply did not show the order's status")
        return Failed(f"WooCommerce saved order {update.cart_order_ref} as {status!r}, not {update.cart_status!r}: "
                      "does the store have that status?")

    # -- sending -----------------------------------------------------------------

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        # Tracking first (the customer sees the numbers before the "completed" e-mail), then the status,
        # which is naturally repeatable: a repeat or a retry after a cut adds only the notes still missing.
        added = await self._add_tracking(update)
        reply = await self.call("PUT", self.order_url(update),
                                json={"status": update.cart_status})
        outcome = self.saved(json_body(reply), update)
        if isinstance(outcome, Delivered) and added:
            return Delivered(f"{outcome.detail}; {added} tracking note(s) added")
        return outcome

    async def _add_tracking(self, update: StatusUpdate) -> int:
        """Read the order's customer notes, then add one for each tracking number none of them names."""
        if not update.tracking:
            return 0
        notes_url = self.order_url(update, "/notes")
        reply = await self.call("GET", notes_url, params={"type": "customer"})
        notes = json_body(reply)
        if not isinstance(notes, list):
            raise StopSend(RetryLater("WooCommerce's order notes reply was not a list of notes"))
        texts = [str(n.get("note", "")) for n in notes if isinstance(n, dict)]
        missing = [t for t in dict.fromkeys(update.tracking) if not any(names_number(x, t.number) for x in texts)]
        for track in missing:  # one note per number: a second POST would make a second note
            await self.call("POST", notes_url, json={"note": tracking_note(track), "customer_note": True})
        return len(missing)

    async def _tracking_step(self, update: StatusUpdate) -> Outcome:
        added = await self._add_tracking(update)
        return Delivered(f"{added} tracking note(s) added")

    async def send_batch(self, updates: Sequence[StatusUpdate]) -> list[Outcome]:
        """Tracking notes per order (read first), then the statuses in batches of at most ``batch_limit``.

        An update refused before any request, or whose notes failed, is left out of the batch with its
        own outcome (its status is not set without its tracking). A status a store plugin adds goes alone
        (``PUT`` checks it against the store's statuses; a batch item would be saved as ``pending``).
        """
        outcomes: list[Outcome | None] = [None] * len(updates)
        batched: list[int] = []
        notes: dict[int, str] = {}
        for i, update in enumerate(updates):
            refused = self.check_status(update)
            if refused is not None:
                outcomes[i] = refused
            elif update.cart_status not in VOCABULARY:
                outcomes[i] = await self.send(update)
            elif update.tracking:
                step = await self.outcome_of(self._tracking_step(update))
                if isinstance(step, SUCCESS):
                    batched.append(i)
                    if not step.detail.startswith("0 "):
                        notes[i] = step.detail
                else:
                    outcomes[i] = step
            else:
                batched.append(i)
        await self._send_statuses(updates, batched, outcomes)
        final: list[Outcome] = []
        for i, outcome in enumerate(outcomes):
            assert outcome is not None
            if isinstance(outcome, Delivered) and i in notes:
                outcome = Delivered(f"{outcome.detail}; {notes[i]}")
            final.append(outcome)
        return final

    async def _send_statuses(self, updates: Sequence[StatusUpdate], batched: list[int],
                             outcomes: list[Outcome | None]) -> None:
        pending = list(batched)
        while pending:
            chunk, pending = pending[:self.batch_limit], pending[self.batch_limit:]
            body = {"update": [{"id": order_id(updates[i].cart_order_ref), "status": updates[i].cart_status}
                               for i in chunk]}
            try:
                reply = await self.call("POST", self.url("/orders/batch"), json=body)
            except StopSend as stop:
                smaller = self._smaller_limit(stop.outcome)
                if smaller is not None and len(chunk) > smaller:
                    self.batch_limit = smaller  # this store's limit, for the rest of the connector's life
                    pending = chunk + pending
                    continue
                for i in chunk:
                    outcomes[i] = stop.outcome
                continue
            except httpx.HTTPError as exc:
                for i in chunk:
                    outcomes[i] = outcome_for_transport_error(exc)
                continue
            items = json_body(reply)
            items = items.get("update") if isinstance(items, dict) else None
            if not isinstance(items, list) or len(items) != len(chunk):
                for i in chunk:  # setting a status is repeatable: sending the chunk again does no harm
                    outcomes[i] = RetryLater("WooCommerce's batch reply did not answer every order")
                continue
            for i, item in zip(chunk, items, strict=True):  # WooCommerce answers the items in order
                outcomes[i] = self.item_outcome(item, updates[i])

    @staticmethod
    def _smaller_limit(outcome: Outcome) -> int | None:
        """The store's own batch limit when it refused a batch as too large (413 with the limit in its words)."""
        if not isinstance(outcome, Failed) or "woocommerce_rest_request_entity_too_large" not in outcome.reason:
            return None
        found = re.search(r"\b(\d+)\b", outcome.reason.split("):", 1)[-1])
        return int(found.group(1)) if found and int(found.group(1)) > 0 else 1

    async def test_connection(self) -> ConnectionResult:
        try:
            await self.call("GET", self.url("/orders"), params={"per_page": 1})
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        except httpx.HTTPError as exc:
            return ConnectionResult(False, outcome_for_transport_error(exc).reason)
        return ConnectionResult(True, "WooCommerce answers and lets this key read orders")
