"""``cartstatus matrix``: support staff ask the shopping-cart matrix whether and how a cart takes updates."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from cartstatus.plugins import get_connectors
from rich.console import Console
from rich.table import Table

from .export import FORMATS, export
from .loader import MATRIX_ENV, UPDATE_KINDS, UPDATE_WORDS, Matrix, MatrixError, load_matrix, read_matrix_file
from .lookup import EXIT_UNKNOWN, answer, find_cart

console = Console()
SHORT = {"native_api": "API", "installed_script": "script", "batch_file": "batch file", "none": "none"}
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

SUPPORTS = {
    "status-updates": lambda row, installed: row.takes_updates,
    "direct": lambda row, installed: row.takes_updates and row.connector in installed,
    "tracking": lambda row, installed: row.tracking_numbers,
    "inventory": lambda row, installed: row.inventory,
}


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def matrix_option(f: F) -> F:
    return click.option("--matrix", "matrix_file", type=click.Path(dir_okay=False, path_type=Path),
                        envvar=MATRIX_ENV, metavar="FILE",
                        help=f"An extra matrix file of your own (env {MATRIX_ENV}; default: the setup "
                             "file's matrix.extra).")(f)


def _extra_from_setup() -> Path | None:
    """The setup file's ``matrix: {extra: ...}``, when there is a usable setup file."""
    from cartstatus.config import ConfigError, config_path, load_config

    root = click.get_current_context().find_root()
    path = config_path(root.params.get("config_option"))
    if not path.exists():
        return None
    try:
        return load_config(path).matrix_extra
    except ConfigError as exc:
        err_console.print(f"[yellow]warning:[/] {path} cannot be used, so its matrix.extra is ignored:\n{exc}",
                          highlight=False, soft_wrap=True)
        return None


def _matrix(matrix_file: Path | None) -> Matrix:
    extra = matrix_file if matrix_file is not None else _extra_from_setup()
    try:
        matrix = load_matrix(extra)
    except MatrixError as exc:
        _fail(f"the matrix file cannot be used:\n{exc}", 2)
    for problem in matrix.problems:
        err_console.print(f"[yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)
    return matrix


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group("matrix")
def matrix_group() -> None:
    """The shopping-cart matrix: which carts take status updates, and how."""


@matrix_group.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@matrix_option
def check(name: str, as_json: bool, matrix_file: Path | None) -> None:
    """Can cart NAME take status updates, and how? Answers in one sentence.

    NAME may be a key, a name or an alias, in any case and spacing, or a close
    misspelling. Exit status: 0 the cart takes updates directly, 1 it needs the
    OSS, 3 no cart matches.
    """
    result = answer(_matrix(matrix_file), name)
    if as_json:
        _echo_json(result.as_dict())
    else:
        click.echo(result.sentence)
    sys.exit(result.exit_status)


@matrix_group.command("list")
@click.option("--supports", type=click.Choice(sorted(SUPPORTS)), multiple=True,
              help="Only carts that support this (may repeat): status-updates (API or script), direct "
                   "(and its connector is installed), tracking, inventory.")
@click.option("--updates", "kinds", type=click.Choice(UPDATE_KINDS), multiple=True,
              help="Only carts that take updates this way (may repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@matrix_option
def list_carts(supports: tuple[str, ...], kinds: tuple[str, ...], as_json: bool, matrix_file: Path | None) -> None:
    """List the carts of the matrix as a table."""
    installed = set(get_connectors())
    rows = [r for r in sorted(_matrix(matrix_file), key=lambda r: r.key)
            if all(SUPPORTS[s](r, installed) for s in supports) and (not kinds or r.updates in kinds)]
    if as_json:
        _echo_json([{**r.as_dict(), "connector_installed": bool(r.connector and r.connector in installed)}
                    for r in rows])
        return
    table = Table("key", "cart", "status updates", "connector", "tracking", "inventory", "verified",
                  title=f"shopping-cart matrix ({len(rows)} carts)")
    for r in rows:
        connector = "-" if r.connector is None else (
            r.connector + ("" if r.connector in installed else " [yellow](not installed)[/]"))
        table.add_row(r.key, r.name, SHORT[r.updates], connector, "yes" if r.tracking_numbers else "no",
                      "yes" if r.inventory else "no", r.verified.isoformat() if r.verified else "[dim]no[/]")
    console.print(table)


@matrix_group.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@matrix_option
def show(key: str, as_json: bool, matrix_file: Path | None) -> None:
    """Show every field of one cart's row (KEY may be any name the cart answers to)."""
    matrix = _matrix(matrix_file)
    look = find_cart(matrix, key)
    if look.row is None:
        hint = f"; the closest are: {', '.join(look.suggestions)}" if look.suggestions else ""
        _fail(f"no cart in the matrix matches {key!r}{hint}", EXIT_UNKNOWN)
    row = look.row
    installed = set(get_connectors())
    data = {**row.as_dict(), "connector_installed": bool(row.connector and row.connector in installed)}
    if as_json:
        _echo_json(data)
        return
    if look.matched_by == "fuzzy":
        err_console.print(f"(taking {key!r} to mean {row.key})", highlight=False)
    console.print(f"[bold]{row.name}[/] ({row.key})", highlight=False)
    lines = [
        ("aliases", ", ".join(row.aliases) or "-"),
        ("status updates", UPDATE_WORDS[row.updates]),
        ("how", row.api or "-"),
        ("connector", "-" if row.connector is None else
         f"{row.connector} ({'installed' if data['connector_installed'] else 'not installed'})"),
        ("tracking numbers", "yes" if row.tracking_numbers else "no"),
        ("inventory", "yes" if row.inventory else "no"),
        ("status vocabulary", ", ".join(row.status_vocabulary) if row.status_vocabulary else "any label"),
        ("rate limit", row.rate_limit.summary if row.rate_limit else "-"),
        ("verified", row.verified.isoformat() if row.verified else "not verified against a source"),
        ("from", row.origin),
    ]
    for label, value in lines:
        console.print(f"  {label + ':':<19}{value}", highlight=False, soft_wrap=True)
    for c in row.caveats:
        console.print(f"  caveat: {c}", highlight=False, soft_wrap=True)
    for s in row.sources:
        console.print(f"  source: {s}", highlight=False, soft_wrap=True)


@matrix_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate(file: Path) -> None:
    """Check a matrix FILE: its schema, its keys, and collisions with the built-in and plugin rows."""
    try:
        rows, _ = read_matrix_file(file)
    except MatrixError as exc:
        _fail(f"{file} is not a usable matrix file:\n{exc}", 1)
    try:
        merged = load_matrix(file)
    except MatrixError as exc:  # pragma: no cover - the same file just read
        _fail(str(exc), 1)
    collisions = [p for p in merged.problems if p.path == file]
    if collisions:
        _fail(f"{file} collides with rows already in the matrix:\n" + "\n".join(map(str, collisions)), 1)
    installed = set(get_connectors())
    for row, line in rows:
        if row.connector is not None and row.connector not in installed:
            err_console.print(f"[yellow]warning:[/] {file}:{line}: {row.key}: connector {row.connector!r} is not "
                              "installed; the cart routes to the OSS until it is", highlight=False, soft_wrap=True)
    console.print(f"{file}: OK, {len(rows)} carts", highlight=False, soft_wrap=True)


@matrix_group.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
              help="Output format; html is a self-contained page to publish.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@matrix_option
def export_cmd(fmt: str, output: Path | None, matrix_file: Path | None) -> None:
    """Export the whole matrix as JSON, CSV, Markdown or HTML."""
    rows = sorted(_matrix(matrix_file), key=lambda r: r.key)
    text = export(rows, fmt, set(get_connectors()))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(rows)} carts to {output}", highlight=False, soft_wrap=True)
