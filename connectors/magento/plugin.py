"""Registers the built-in ``magento`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import MagentoConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(MagentoConnector)
