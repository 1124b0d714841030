"""The ``oss`` connector: sends a store's updates to the hosted Order Status System.

Used for stores whose cart takes no status updates, while the store's OSS
subscription is active (the route is decided in :mod:`cartstatus.routing`).
"""

from __future__ import annotations

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
        try:
            response = await self.client.get(f"{self.base_url}/api/v1/account", headers=self._headers())
        except httpx.HTTPError as exc:
            return ConnectionResult(False, outcome_for_transport_error(exc).reason)
        if response.status_code == 401:
            return ConnectionResult(False, "the OSS refused the token (unknown or revoked)")
        if response.status_code == 402:
            return ConnectionResult(False, f"merchant {self.merchant}: subscription ended "
                                           f"{_reply(response).get('expires')}")
        if response.status_code != 200:
            return ConnectionResult(False, f"HTTP {response.status_code} from {self.base_url}")
        info = _reply(response)
        if info.get("merchant") != self.merchant:
            return ConnectionResult(False, f"the token belongs to merchant {info.get('merchant')}, "
                                           f"not {self.merchant}")
        if not info.get("active"):
            return ConnectionResult(False, f"merchant {self.merchant}: subscription ended {info.get('expires')}")
        return ConnectionResult(True, f"merchant {self.merchant}, subscription until {info.get('expires')}")
