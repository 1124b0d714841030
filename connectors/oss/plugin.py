"""Registers the built-in ``oss`` connector through the public hooks."""

from typing import Any

from cartstatus.hookspecs import hookimpl

from .connector import OssConnector


@hookimpl
def register_connectors(register: Any) -> None:
    register(OssConnector)
