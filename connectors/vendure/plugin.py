"""Registers the built-in ``vendure`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import VendureConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(VendureConnector)
