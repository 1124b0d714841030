"""The hooks: the entry point ``acmecart = "cartstatus_acmecart.plugin"`` names this module."""

from typing import Any

from cartstatus import hookimpl

from .connector import VOCABULARY, AcmeCartConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(AcmeCartConnector)


@hookimpl
def register_matrix_rows(register: Any) -> None:
    register({
        "key": "acmecart",
        "name": "AcmeCart",
        "aliases": ["acme cart", "acme"],
        "updates": "native",
        "connector": "acmecart",
        "tracking": True,
        "inventory": False,
        "status_vocabulary": list(VOCABULARY),
        "caveats": ["map every order-manager label to one of AcmeCart's five statuses with status_map"],
        "rate_limit": "120 requests a minute per API key; 429 with Retry-After",
        "source": {"url": "https://example.com/acmecart/api/v1", "verified": "2026-01-15"},
    })
