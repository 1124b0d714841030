"""Registers the built-in ``ecwid`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import EcwidConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(EcwidConnector)
