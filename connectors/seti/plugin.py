"""Registers the built-in ``seti`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import SetiConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(SetiConnector)
