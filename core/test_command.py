"""``cartstatus test [STORE ...]``: Test Settings for each store, a table of OK or refused with the reason.

A built-in plugin: its command comes through ``register_commands`` as a third party's does.
"""

from __future__ import annotations

import sys
from typing import Protocol

import click
from rich.markup import escape
from rich.table import Table

from .config import Config
from .hookspecs import hookimpl
from .settings_test import run_settings_test
from .terminal import console, echo_json, fail


class _Obj(Protocol):
    """What the ``cartstatus`` command hands its commands (``cartstatus.cli.Context``)."""

    @property
    def config(self) -> Config: ...


@click.command("test")
@click.argument("stores", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {store, target, ok, detail}.")
@click.pass_obj
def test_command(obj: _Obj, stores: tuple[str, ...], as_json: bool) -> None:
    """Test Settings: try each store's connection (or the named STORES') for real.

    A store whose cart takes updates runs its connector's connection test
    against the cart; a store sent to the OSS asks the OSS whether its token
    and subscription are good. Nothing is sent to any order.

    Exit status: 0 every test passed, 1 one was refused, 2 the setup file or a store name is wrong.
    """
    config = obj.config
    unknown = [s for s in stores if s not in config.stores]
    if unknown:
        fail(f"no store {', '.join(unknown)} in {config.path}; its stores: {', '.join(config.stores) or 'none'}", 2)
    if not config.stores:
        fail(f"{config.path} has no stores to test: add one (cartstatus setup)", 2)
    results = run_settings_test(config, stores)
    if as_json:
        echo_json([r.as_dict() for r in results])
    else:
        table = Table("store", "to", "result", "detail")
        for r in results:
            table.add_row(escape(r.store), escape(r.target), "[green]OK[/]" if r.ok else "[red]refused[/]",
                          escape(r.detail))
        console.print(table)
    sys.exit(0 if all(r.ok for r in results) else 1)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(test_command)
