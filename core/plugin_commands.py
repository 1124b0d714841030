"""``cartstatus plugins`` and ``cartstatus new-connector``: what is installed, and a start for a new one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .plugins import LOAD_ENV, plugin_info
from .scaffold import AUTH_STYLES, DEFAULT_AUTH, DEFAULT_REFUSAL_STATUS, ScaffoldError, generate

err_console = Console(stderr=True)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per plugin.")
def plugins_command(as_json: bool) -> None:
    """List the plugins: name, version, hooks, connectors, matrix rows and load errors.

    Built-in plugins are listed too. A plugin that failed to load or whose
    registration was refused is listed with its error, and the exit status is 1.
    CARTSTATUS_LOAD_PLUGINS (comma-separated names) limits which third-party
    plugins load.
    """
    infos = plugin_info()
    failed = any(i.errors for i in infos)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
    else:
        table = Table(title="cartstatus plugins")
        for column in ("plugin", "version", "hooks", "connectors", "matrix rows", "errors"):
            table.add_column(column, overflow="fold")
        for i in infos:
            name = f"{i.name} [dim](built-in)[/]" if i.builtin else i.name
            errors = "\n".join(f"[red]{e}[/]" for e in i.errors)
            table.add_row(name, i.version or "-", "\n".join(i.hooks), ", ".join(i.connectors),
                          ", ".join(i.matrix_rows), errors)
        Console().print(table)  # made here, so that it measures the terminal it prints to
        if failed:
            err_console.print(f"[red]some plugins failed to load or register[/] (the others are in use); "
                              f"fix or uninstall them, or leave them out with {LOAD_ENV}",
                              highlight=False, soft_wrap=True)
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
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    click.echo(f"wrote {target}\nnext: pip install -e '{target}[test]' && pytest {target}")
