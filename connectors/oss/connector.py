"""The ``oss`` connector: sends a store's updates to the hosted Order Status System.

Used for stores whose cart takes no status updates, while the store's OSS
subscription is active (the route is decided in :mod:`cartstatus.routing`).
Its connection test is the one check of an OSS account (``cartstatus test``
and ``cartstatus setup`` run it): ``GET {url}/api/v1/account`` with the
store's bearer token answers 200 ``{"merchant": ..., "expires": "YYYY-MM-DD",
"active": true, ...}``, 401 for an unknown or revoked token, 402 with the end
date (``expires``) for a lapsed subscription.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from cartstatus.connector import (
    ConnectionResult,
    Connector,
    StatusUpdate,
    outcome_for_http_error,
    outcome_for_transport_error,
    retry_after_seconds,
)
from cartstatus.oss.wire import payload_for, validate
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater


def _reply(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


#: The OSS's account endpoint: the connection test.
ACCOUNT_PATH = "/api/v1/account"


class OssConnector(Connector):
    """POSTs the published wire format to ``{url}/api/v1/updates`` with the store's bearer token."""

    name = "oss"
    status_vocabulary = None  # the OSS shows any label the merchant uses
    settings_schema = {
        "type": "object",
        "required": ["url", "merchant", "token"],
        "additionalProperties": False,  # a misspelt setting is an error, not ignored
        "properties": {
            "url": {"type": "string", "pattern": "^https?://", "description": "the OSS's address"},
            "merchant": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$",
                         "description": "the store's merchant name at the OSS"},
            "token": {"type": "string", "minLength": 1, "secret": True, "description": "the store's OSS token"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            # Routing goes by the setup file's date: the connection test says when the OSS's differs.
            "subscription_expires": {"type": "string", "format": "date",
                                     "description": "the subscription's last day as the setup file has it "
                                                    "(YYYY-MM-DD); the connection test compares the OSS's"},
        },
    }

    @property
    def base_url(self) -> str:
        return str(self.settings["url"]).rstrip("/")

    @property
    def merchant(self) -> str:
        return str(self.settings["merchant"])

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret('token')}", "Accept": "application/json"}

    async def send(self, update: StatusUpdate) -> Outcome:
        body = payload_for(update, self.merchant)
        problems = validate(body)
        if problems:
            # Sending would only earn a 422: say which field, before any request.
            first = problems[0]
            return Failed(f"the update does not fit the OSS wire format: {first.field}: {first.message}")
        try:
            response = await self.client.post(f"{self.base_url}/api/v1/updates", json=body, headers=self._headers(),
                                              timeout=self.settings.get("timeout", self.timeout))
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)
        return self.outcome(response, update)

    def outcome(self, response: httpx.Response, update: StatusUpdate) -> Outcome:
        """What an OSS reply means for the record on the stack."""
        code = response.status_code
        reply = _reply(response)
        message = str(reply.get("message", "")).strip()
        if code == 200:
            if reply.get("result") != "OK":
                return RetryLater("the OSS answered 200 without its OK reply")
            # The order's page for the shopper (a signed link), kept in the order's history.
            link = reply.get("status_url") if isinstance(reply.get("status_url"), str) else None
            if response.headers.get("idempotent-replayed") == "true":
                return AlreadyDone(f"the OSS already had update {update.idempotency_key}", link)
            return Delivered("OSS OK", link)
        if code == 401:
            return Failed(f"the OSS refused the token of merchant {self.merchant} (unknown or revoked): ask the "
                          "OSS operator for a new token (cartstatus-oss accounts rotate-token) and put it in the "
                          "store's oss.token")
        if code == 402:
            expires = reply.get("expires") or "an earlier date"
            return Failed(f"the OSS subscription of merchant {self.merchant} lapsed (ended {expires}): renew it "
                          "with the OSS operator, then update oss.subscription_expires and retry the record")
        if code == 403:
            return Failed(f"the OSS token does not belong to merchant {self.merchant}: {message}")
        if code == 409:
            return Failed(f"the OSS already has update {update.idempotency_key} with a different body: {message}")
        if code == 413:
            return Failed(f"the OSS refused the update as too large: {message or 'shorten the note'}")
        if code == 422:
            field = reply.get("field") or "(body)"
            return Failed(f"the OSS refused the update: field {field}: {message}")
        if code in (408, 425, 429) or code >= 500:
            return RetryLater(f"HTTP {code} from the OSS", retry_after_seconds(response))
        fallback = outcome_for_http_error(response)
        return fallback if fallback is not None else RetryLater(f"HTTP {code} from the OSS")

    async def test_connection(self) -> ConnectionResult:
        """Does the OSS answer, is the token good, until when is the subscription paid (and is that the date
        the setup file has)."""
        try:
            response = await self.client.get(f"{self.base_url}{ACCOUNT_PATH}", headers=self._headers())
        except httpx.HTTPError as exc:
            return ConnectionResult(False, f"the OSS at {self.base_url} did not answer: "
                                           f"{outcome_for_transport_error(exc).reason}")
        return self.account_result(response)

    def account_result(self, response: httpx.Response, today: dt.date | None = None) -> ConnectionResult:
        """What the OSS's answer about the store's account means (see the module's description of the endpoint)."""
        code = response.status_code
        reply = _reply(response)
        merchant, url = self.merchant, self.base_url
        if code == 401:
            return ConnectionResult(False, f"the OSS refused the token of merchant {merchant} (unknown or revoked): "
                                           "ask the OSS operator for a new token (cartstatus-oss accounts "
                                           "rotate-token) and put it in the store's oss.token")
        if code == 402:
            ended = _date(reply.get("expires"))
            return ConnectionResult(False, f"the OSS subscription of merchant {merchant} lapsed (ended "
                                           f"{ended or 'on an earlier date'}): renew it with the OSS operator, then "
                                           "set the store's oss.subscription_expires to the new end date")
        if code == 404:
            return ConnectionResult(False, f"{url} has no OSS account endpoint ({ACCOUNT_PATH}, HTTP 404): check "
                                           "the store's oss.url (the OSS's address), and that the OSS is up to date")
        if code != 200:
            said = str(reply.get("message") or "").strip()
            return ConnectionResult(False, f"HTTP {code} from the OSS at {url}" + (f": {said}" if said else ""))
        until = _date(reply.get("expires"))
        if not isinstance(reply.get("merchant"), str) or until is None:
            return ConnectionResult(False, f"the OSS at {url} answered 200 without its account reply (merchant "
                                           "and expires): check the store's oss.url")
        if reply["merchant"] != merchant:
            return ConnectionResult(False, f"the token belongs to merchant {reply['merchant']}, not {merchant}: "
                                           "check the store's oss.merchant and oss.token")
        if until < (today or dt.date.today()) or reply.get("active") is False:
            return ConnectionResult(False, f"the OSS subscription of merchant {merchant} lapsed (ended {until}): "
                                           "renew it with the OSS operator")
        written = _date(self.settings.get("subscription_expires"))
        if written is not None and until != written:
            return ConnectionResult(False, f"the OSS has merchant {merchant}'s subscription until {until}, the "
                                           f"setup file says {written}: set the store's "
                                           f"oss.subscription_expires: {until}")
        return ConnectionResult(True, f"merchant {merchant}, subscription until {until}")
