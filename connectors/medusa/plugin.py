"""Registers the built-in ``medusa`` connector through the public hooks (its matrix row is in matrix/carts.yaml)."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import MedusaConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(MedusaConnector)
