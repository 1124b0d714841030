"""``cartstatus matrix``: support staff ask the shopping-cart matrix whether and how a cart takes updates.

The commands are given how to load the matrix in force (:data:`MatrixFor`):
the matrix is a library and knows neither the plugins nor the setup file
(``cartstatus.matrix_commands`` registers these commands with both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from cartstatus.terminal import console, echo_json, err_console, fail, warn
from rich.markup import escape
from rich.table import Table

from .export import FORMATS, export
from .loader import MATRIX_ENV, UPDATE_KINDS, UPDATE_WORDS, CartRow, Matrix, MatrixError, read_matrix_file
from .lookup import EXIT_UNKNOWN, answer, find_cart

#: Loads the matrix in force with an extra matrix file: ``--matrix FILE``, or None for the default one.
MatrixFor = Callable[[Path | None], Matrix]

SHORT = {"native_api": "API", "installed_script": "script", "batch_file": "batch file", "none": "none"}

SUPPORTS: dict[str, Callable[[CartRow, frozenset[str]], bool]] = {
    "status-updates": lambda row, installed: row.takes_updates,
    "direct": lambda row, installed: row.why_not_native(installed) is None,
    "tracking": lambda row, installed: row.tracking_numbers,
    "inventory": lambda row, installed: row.inventory,
}


def reads_matrix(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--matrix FILE`` option, and the matrix loader handed to the command as its first argument."""
    return click.pass_obj(click.option(
        "--matrix", "matrix_file", type=click.Path(dir_okay=False, path_type=Path), envvar=MATRIX_ENV,
        metavar="FILE", help=f"An extra matrix file of your own (env {MATRIX_ENV}; default: the setup file's "
                             "matrix.extra).")(f))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _matrix(matrix_for: MatrixFor, matrix_file: Path | None) -> Matrix:
    try:
        matrix = matrix_for(matrix_file)
    except MatrixError as exc:
        fail(f"the matrix file cannot be used:\n{exc}", 2)
    for problem in matrix.problems:
        warn(str(problem))
    return matrix


@click.group("matrix")
def matrix_group() -> None:
    """The shopping-cart matrix: which carts take status updates, and how."""


def matrix_commands(matrix_for: MatrixFor) -> click.Group:
    """The ``matrix`` command group, loading the matrix in force with ``matrix_for``."""
    # Handed to every subcommand as its context object (``click.pass_obj``).
    return click.Group(matrix_group.name, commands=matrix_group.commands, help=matrix_group.help,
                       context_settings={"obj": matrix_for})


@matrix_group.command("check")
@click.argument("name")
@json_option
@reads_matrix
def check(matrix_for: MatrixFor, name: str, as_json: bool, matrix_file: Path | None) -> None:
    """Can cart NAME take status updates, and how? Answers in one sentence.

    NAME may be a key, a name or an alias, in any case and spacing, or a close
    misspelling. Exit status: 0 the cart takes updates directly, 1 it needs the
    OSS, 3 no cart matches.
    """
    result = answer(_matrix(matrix_for, matrix_file), name)
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(result.sentence)
    sys.exit(result.exit_status)


@matrix_group.command("list")
@click.option("--supports", type=click.Choice(sorted(SUPPORTS)), multiple=True,
              help="Only carts that support this (may repeat): status-updates (API or script), direct "
                   "(and its connector is installed), tracking, inventory.")
@click.option("--updates", "kinds", type=click.Choice(UPDATE_KINDS), multiple=True,
              help="Only carts that take updates this way (may repeat).")
@json_option
@reads_matrix
def list_carts(matrix_for: MatrixFor, supports: tuple[str, ...], kinds: tuple[str, ...], as_json: bool,
               matrix_file: Path | None) -> None:
    """List the carts of the matrix as a table."""
    matrix = _matrix(matrix_for, matrix_file)
    installed = matrix.installed
    rows = [r for r in sorted(matrix, key=lambda r: r.key)
            if all(SUPPORTS[s](r, installed) for s in supports) and (not kinds or r.updates in kinds)]
    if as_json:
        echo_json([{**r.as_dict(), "connector_installed": r.connector_installed(installed)} for r in rows])
        return
    table = Table("key", "cart", "status updates", "connector", "tracking", "inventory", "verified",
                  title=f"shopping-cart matrix ({len(rows)} carts)")
    for r in rows:
        connector = "-" if r.connector is None else (
            escape(r.connector) + ("" if r.connector_installed(installed) else " [yellow](not installed)[/]"))
        table.add_row(escape(r.key), escape(r.name), SHORT[r.updates], connector,
                      "yes" if r.tracking_numbers else "no", "yes" if r.inventory else "no",
                      r.verified.isoformat() if r.verified else "[dim]no[/]")
    console.print(table)


@matrix_group.command("show")
@click.argument("key")
@json_option
@reads_matrix
def show(matrix_for: MatrixFor, key: str, as_json: bool, matrix_file: Path | None) -> None:
    """Show every field of one cart's row (KEY may be any name the cart answers to)."""
    matrix = _matrix(matrix_for, matrix_file)
    look = find_cart(matrix, key)
    row = look.row
    if row is None:
        hint = f"; the closest are: {', '.join(look.suggestions)}" if look.suggestions else ""
        fail(f"no cart in the matrix matches {key!r}{hint}", EXIT_UNKNOWN)
    installed = row.connector_installed(matrix.installed)
    if as_json:
        echo_json({**row.as_dict(), "connector_installed": installed})
        return
    if look.matched_by == "fuzzy":
        err_console.print(f"(taking {key!r} to mean {row.key})", markup=False, highlight=False)
    console.print(f"[bold]{escape(row.name)}[/] ({escape(row.key)})", highlight=False)
    lines = [
        ("aliases", ", ".join(row.aliases) or "-"),
        ("status updates", UPDATE_WORDS[row.updates]),
        ("how", row.api or "-"),
        ("connector", "-" if row.connector is None else
         f"{row.connector} ({'installed' if installed else 'not installed'})"),
        ("tracking numbers", "yes" if row.tracking_numbers else "no"),
        ("inventory", "yes" if row.inventory else "no"),
        ("status vocabulary", ", ".join(row.status_vocabulary) if row.status_vocabulary else "any label"),
        ("rate limit", row.rate_limit.summary if row.rate_limit else "-"),
        ("verified", row.verified.isoformat() if row.verified else "not verified against a source"),
        ("from", row.origin),
    ]
    for label, value in lines:
        console.print(f"  {label + ':':<19}{value}", markup=False, highlight=False)
    for label, values in (("caveat", row.caveats), ("source", row.sources)):
        for value in values:
            console.print(f"  {label}: {value}", markup=False, highlight=False)


@matrix_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def validate(matrix_for: MatrixFor, file: Path) -> None:
    """Check a matrix FILE: its schema, its keys, and collisions with the built-in and plugin rows."""
    try:
        rows, _ = read_matrix_file(file)
        merged = matrix_for(file)
    except MatrixError as exc:
        fail(f"{file} is not a usable matrix file:\n{exc}", 1)
    collisions = [p for p in merged.problems if p.path == file]
    if collisions:
        fail(f"{file} collides with rows already in the matrix:\n" + "\n".join(map(str, collisions)), 1)
    for row, line in rows:
        if row.connector is not None and not row.connector_installed(merged.installed):
            warn(f"{file}:{line}: {row.key}: connector {row.connector!r} is not installed; the cart routes to "
                 "the OSS until it is")
    console.print(f"{file}: OK, {len(rows)} carts", markup=False, highlight=False)


@matrix_group.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
              help="Output format; html is a self-contained page to publish.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@reads_matrix
def export_cmd(matrix_for: MatrixFor, fmt: str, output: Path | None, matrix_file: Path | None) -> None:
    """Export the whole matrix as JSON, CSV, Markdown or HTML."""
    matrix = _matrix(matrix_for, matrix_file)
    rows = sorted(matrix, key=lambda r: r.key)
    text = export(rows, fmt, set(matrix.installed))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(rows)} carts to {output}", markup=False, highlight=False)
