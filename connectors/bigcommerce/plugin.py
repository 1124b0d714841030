"""Registers the built-in ``bigcommerce`` connector through the public hooks (its row is in matrix/carts.yaml)."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import BigCommerceConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(BigCommerceConnector)
