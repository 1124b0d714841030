"""The hooks a cartstatus plugin may implement (documented in docs/writing-connectors.md)."""

from collections.abc import Callable
from typing import Any

import click
from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("cartstatus")
hookimpl = HookimplMarker("cartstatus")


@hookspec
def register_connectors(register: Callable[[Any], None]) -> None:
    """Register connector classes: call ``register(ConnectorClass)`` for each."""


@hookspec
def register_matrix_rows(register: Callable[[Any], None]) -> None:
    """Register shopping-cart matrix rows: call ``register(row_dict)`` for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``cartstatus`` command: ``cli`` is its click group (``cli.add_command(...)``)."""


@hookspec
def update_delivered(record: Any, outcome: Any) -> None:
    """Observe a stack record that its cart or the OSS accepted."""


@hookspec
def update_parked(record: Any, reason: str) -> None:
    """Observe a stack record parked with a permanent failure."""
