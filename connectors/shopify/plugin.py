"""Registers the built-in ``shopify`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import ShopifyConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(ShopifyConnector)
