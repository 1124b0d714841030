"""The AcmeCart connector: status by ``PUT``, shipments read before written, a real batch call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from cartstatus import ConnectionResult, Connector, Delivered, Failed, Outcome, RateLimit, StatusUpdate
from cartstatus.connector import outcome_for_http_error, outcome_for_transport_error

VOCABULARY = ("pending", "processing", "shipped", "delivered", "cancelled")
BATCH_LIMIT = 50


class AcmeCartConnector(Connector):
    """Sends status changes and tracking numbers to AcmeCart's REST API."""

    name = "acmecart"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "api_key"],
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://", "description": "the API root, .../api/v1"},
            "api_key": {"type": "string", "minLength": 8, "secret": True, "description": "the store's API key"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
    }
    status_vocabulary = VOCABULARY
    rate_limit = RateLimit(120, 60.0, "per API key")
    supports_batch = True
    timeout = 20.0

    def _url(self, path: str) -> str:
        return str(self.settings["base_url"]).rstrip("/") + path

    async def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return await self.client.request(
            method, self._url(path), json=json,
            headers={"Authorization": f"Bearer {self.secret('api_key')}"},
            timeout=float(self.settings.get("timeout", self.timeout)),
        )

    async def send(self, update: StatusUpdate) -> Outcome:
        refused = self.check_status(update)
        if refused is not None:
            return refused
        body: dict[str, Any] = {"status": update.cart_status}
        if update.note:
            body["note"] = update.note
        try:
            response = await self._request("PUT", f"/orders/{update.cart_order_ref}/status", body)
            failed = outcome_for_http_error(response)
            if failed is not None:
                return failed
            return await self._ship(update)
        except httpx.HTTPError as exc:
            return outcome_for_transport_error(exc)

    async def _ship(self, update: StatusUpdate) -> Outcome:
        """Add the update's tracking numbers the order does not have yet (creating one is not idempotent)."""
        if not update.tracking:
            return Delivered("status set")
        path = f"/orders/{update.cart_order_ref}/shipments"
        response = await self._request("GET", path)
        failed = outcome_for_http_error(response)
        if failed is not None:
            return failed
        have = {s.get("tracking_number") for s in response.json()}
        added = 0
        for track in update.tracking:
            if track.number in have:
                continue
            response = await self._request("POST", path, {"carrier": track.carrier, "tracking_number": track.number,
                                                          "ship_date": track.ship_date})
            failed = outcome_for_http_error(response)
            if failed is not None:
                return failed
            added += 1
        return Delivered(f"status set, {added} shipments added")

    async def send_batch(self, updates: Sequence[StatusUpdate]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [self.check_status(u) for u in updates]
        todo = [i for i, o in enumerate(outcomes) if o is None]
        for start in range(0, len(todo), BATCH_LIMIT):
            chunk = todo[start:start + BATCH_LIMIT]
            for i, outcome in zip(chunk, await self._batch([updates[i] for i in chunk]), strict=True):
                outcomes[i] = outcome
        return [o if o is not None else Failed("no outcome") for o in outcomes]

    async def _batch(self, updates: Sequence[StatusUpdate]) -> list[Outcome]:
        body = {"updates": [{"order": u.cart_order_ref, "status": u.cart_status, **({"note": u.note} if u.note else {})}
                            for u in updates]}
        try:
            response = await self._request("POST", "/orders/batch", body)
        except httpx.HTTPError as exc:
            return [outcome_for_transport_error(exc)] * len(updates)
        failed = outcome_for_http_error(response)
        if failed is not None:
            return [failed] * len(updates)
        results = {r.get("order"): r for r in response.json().get("results", [])}
        outcomes: list[Outcome] = []
        for update in updates:
            result = results.get(update.cart_order_ref)
            if result is None:
                outcomes.append(Failed("AcmeCart's batch reply left this order out"))
            elif not result.get("ok"):
                outcomes.append(outcome_for_http_error(httpx.Response(int(result.get("code", 400)),
                                text=str(result.get("error", "")))) or Failed(str(result.get("error"))))
            else:
                try:
                    outcomes.append(await self._ship(update))
                except httpx.HTTPError as exc:
                    outcomes.append(outcome_for_transport_error(exc))
        return outcomes

    async def test_connection(self) -> ConnectionResult:
        try:
            response = await self._request("GET", "/ping")
        except httpx.HTTPError as exc:
            return ConnectionResult(False, outcome_for_transport_error(exc).reason)
        if response.status_code != 200:
            return ConnectionResult(False, f"HTTP {response.status_code} from AcmeCart")
        return ConnectionResult(True, f"AcmeCart store {response.json().get('store', '?')} answers")
