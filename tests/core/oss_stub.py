"""A stand-in for the OSS's account endpoint (``GET /api/v1/account``), as ``cartstatus test`` expects it to answer.

The OSS server gains the endpoint itself later; until then this stub is the contract:
200 ``{"merchant", "expires"}``, 401 for an unknown or revoked token,
402 with the end date (``expires``) for a lapsed subscription.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Account:
    merchant: str
    expires: dt.date
    revoked: bool = False


@dataclass
class OssAccounts:
    """Accounts by token; ``app()`` serves them."""

    accounts: dict[str, Account] = field(default_factory=dict)
    today: dt.date = field(default_factory=dt.date.today)

    async def _account(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.accounts.get(token) if scheme.lower() == "bearer" else None
        if account is None or account.revoked:
            return JSONResponse({"error": "unauthorized",
                                 "message": "unknown or revoked store token: ask the OSS operator for a new token"},
                                status_code=401, headers={"WWW-Authenticate": 'Bearer realm="oss"'})
        if account.expires < self.today:
            end = account.expires.isoformat()
            return JSONResponse({"error": "subscription lapsed", "merchant": account.merchant, "expires": end,
                                 "message": f"the OSS subscription of merchant {account.merchant} ended on {end}"},
                                status_code=402)
        return JSONResponse({"merchant": account.merchant, "expires": account.expires.isoformat(), "active": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/account", self._account, methods=["GET"])])
