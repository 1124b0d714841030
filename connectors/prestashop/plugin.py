"""Registers the built-in ``prestashop`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import PrestaShopConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(PrestaShopConnector)
