"""Registers the built-in ``woocommerce`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import WooCommerceConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(WooCommerceConnector)
