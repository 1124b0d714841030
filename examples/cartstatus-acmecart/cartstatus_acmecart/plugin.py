"""The hooks: the entry point ``acmecart = "cartstatus_acmecart.plugin"`` names this module."""

from typing import Any

from cartstatus import hookimpl

from .connector import VOCABULARY, AcmeCartConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(AcmeCartConnector)


@hookimpl
def register_matrix_rows(register: Any) -> None:
    # The row's fields are those of cartstatus's matrix/schema.json.
    register({
        "key": "acmecart",
        "name": "AcmeCart",
        "aliases": ["acme cart", "acme commerce"],
        "updates": "native_api",
        "api": "REST with a JWT admin login (POST /api/v1/auth/token): PUT /api/v1/orders/{ref}/status; "
               "shipments POST /api/v1/orders/{ref}/shipments, read first with GET /api/v1/orders/{ref}",
        "connector": "acmecart",
        "capabilities": {"tracking_numbers": True, "inventory": False},
        "status_vocabulary": list(VOCABULARY),
        "caveats": ["map every order-manager label to one of AcmeCart's five statuses with status_map",
                    "refusals come as HTTP 500 with an error code (a shipped order cannot be cancelled)"],
        "rate_limit": {"summary": "120 requests a minute per admin user; 429 with Retry-After",
                       "requests": 120, "per_seconds": 60},
        "sources": ["https://example.com/acmecart/api/v1"],
        "verified": "2026-01-15",
    })
