"""``cartstatus plugins`` and ``cartstatus new-connector``: what is installed, and a start for a new one.

A built-in plugin: its commands come through ``register_commands`` as a third party's do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .hookspecs import hookimpl
from .matrix import MatrixError
from .matrix.loader import plugin_source
from .plugins import LOAD_ENV, PluginError, get_matrix_rows, plugin_info
from .routing import cart_matrix
from .scaffold import AUTH_STYLES, DEFAULT_AUTH, DEFAULT_REFUSAL_STATUS, ScaffoldError, generate
from .terminal import err_console, fail


def _row_errors() -> list[PluginError]:
    """What the matrix found wrong with plugins' rows (bad fields, collisions), by plugin."""
    try:
        problems = cart_matrix().problems
    except MatrixError as exc:
        problems = exc.problems
    givers = {name for name, _ in get_matrix_rows()}
    return [PluginError(name, f"register_matrix_rows: {p.field}: {p.message}")
            for p in problems for name in givers if p.path == plugin_source(name)]


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per plugin.")
@click.option("--all", "all_builtins", is_flag=True, help="Also list the built-in plugins that add commands.")
def plugins_command(as_json: bool, all_builtins: bool) -> None:
    """List the plugins: name, version, hooks, connectors, matrix rows and load errors.

    Built-in connector plugins are listed too. A plugin that failed to load or
    whose registration was refused is listed with its error, and the exit status
    is 1. CARTSTATUS_LOAD_PLUGINS (comma-separated names) limits which
    third-party plugins load.
    """
    infos = plugin_info(_row_errors(), all_builtins=all_builtins)
    failed = any(i.errors for i in infos)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
    else:
        table = Table(title="cartstatus plugins")
        for column in ("plugin", "version", "hooks", "connectors", "matrix rows", "errors"):
            table.add_column(column, overflow="fold")
        for i in infos:
            name = escape(i.name) + (" [dim](built-in)[/]" if i.builtin else "")
            errors = "\n".join(f"[red]{escape(e)}[/]" for e in i.errors)
            table.add_row(name, escape(i.version or "-"), "\n".join(i.hooks), escape(", ".join(i.connectors)),
                          escape(", ".join(i.matrix_rows)), errors)
        Console().print(table)  # made here, so that it measures the terminal it prints to
        if failed:
            err_console.print(f"[red]some plugins failed to load or register[/] (the others are in use); "
                              f"fix or uninstall them, or leave them out with {LOAD_ENV}", highlight=False)
    if failed:
        sys.exit(1)


@click.command("new-connector")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to write the package folder cartstatus-NAME.")
@click.option("--auth", type=click.Choice(AUTH_STYLES), default=DEFAULT_AUTH, show_default=True,
              help="How the cart authenticates: an API key, HTTP Basic, or a login for a token.")
@click.option("--refusal-status", type=click.IntRange(400, 599), default=DEFAULT_REFUSAL_STATUS, show_default=True,
              help="The HTTP status the cart refuses a change with (some carts use 500).")
def new_connector_command(name: str, directory: Path, auth: str, refusal_status: int) -> None:
    """Write a plugin package for a new cart connector NAME, ready to install and test.

    The package holds a pyproject with the `cartstatus` entry point, the
    connector, its simulator, its matrix row and tests using the conformance kit;
    it passes them as generated. NAME is the cart's key (lowercase, e.g. mycart).
    """
    try:
        target = generate(name, directory, auth=auth, refusal_status=refusal_status)
    except ScaffoldError as exc:
        fail(str(exc), 2)
    click.echo(f"wrote {target}\nnext: pip install -e '{target}[test]' && pytest {target}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(plugins_command)
    cli.add_command(new_connector_command)
