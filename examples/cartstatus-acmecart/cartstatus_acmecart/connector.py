"""The AcmeCart connector: a login for a token, refusals in HTTP 500, shipments read before they are written."""

from __future__ import annotations

import httpx
from cartstatus import AlreadyDone, ConnectionResult, Connector, Delivered, Failed, Outcome, RateLimit, StatusUpdate
from cartstatus.auth import Token, TokenLogin
from cartstatus.connector import StopSend, json_body

VOCABULARY = ("pending", "processing", "shipped", "delivered", "cancelled")


class AcmeCartConnector(Connector):
    """Sends status changes and tracking numbers to AcmeCart's REST API."""

    name = "acmecart"
    settings_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "username", "password"],
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://", "description": "the API root, .../api/v1"},
            "username": {"type": "string", "minLength": 1, "description": "an AcmeCart admin user"},
            "password": {"type": "string", "minLength": 8, "secret": True, "description": "its password"},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120},
        },
    }
    status_vocabulary = VOCABULARY
    rate_limit = RateLimit(120, 60.0, "per admin user")
    timeout = 20.0

    def url(self, path: str) -> str:
        return str(self.settings["base_url"]).rstrip("/") + path

    def http_auth(self) -> httpx.Auth:
        # A JWT from POST /auth/token, kept for this store, renewed before its exp and once on a 401.
        return TokenLogin(self._login, lambda reply: Token.from_jwt(reply.json()["token"]),
                          check=self.outcome_for_response)

    def _login(self) -> httpx.Request:
        return self.client.build_request("POST", self.url("/auth/token"), json={
            "username": self.settings["username"], "password": self.secret("password")})

    def classify(self, response: httpx.Response) -> Outcome | None:
        # AcmeCart refuses with HTTP 500 and an error code ("order is not cancelable at this status",
        # "unknown carrier"): retrying never helps. A 500 without a code is a fault: tried again later.
        body = json_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 500 and isinstance(error, dict) and error.get("code"):
            return Failed(f"AcmeCart refused: {error.get('message')} ({error['code']})")
        return None

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.check_status(update) or await self.outcome_of(self._deliver(update))

    async def _deliver(self, update: StatusUpdate) -> Outcome:
        # Read before writing: a repeat, or a retry after part of the label was done, makes only what is missing.
        path = f"/orders/{update.cart_order_ref}"
        order = (await self.call("GET", self.url(path))).json()
        have = {shipment["tracking_number"] for shipment in order["shipments"]}
        missing = [track for track in update.tracking if track.number not in have]
        for track in missing:  # a second POST would make a second shipment
            await self.call("POST", self.url(f"{path}/shipments"), json={
                "carrier": track.carrier, "tracking_number": track.number, "ship_date": track.ship_date})
        if order["status"] == update.cart_status:
            return Delivered(f"{len(missing)} shipments added") if missing else AlreadyDone("nothing was missing")
        await self.call("PUT", self.url(f"{path}/status"), json={"status": update.cart_status, "note": update.note})
        return Delivered(f"status {update.cart_status}, {len(missing)} shipments added")

    async def test_connection(self) -> ConnectionResult:
        try:
            reply = await self.call("GET", self.url("/ping"))
        except StopSend as stop:
            return ConnectionResult(False, stop.reason)
        return ConnectionResult(True, f"AcmeCart store {json_body(reply).get('store', '?')} answers")
