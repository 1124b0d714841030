"""What every command prints through: the consoles, the one-line error that ends a command, JSON.

Text from files, carts and people is printed as text: a message quoting a
pattern like ``[a-z0-9]`` is not Rich markup (Rich would take it for a style
and drop it).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

# soft_wrap: piped output keeps each message on one line (rich would cut it at 80 columns).
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: MESSAGE`` on stderr and exit with ``code`` (2 for bad input)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)


def warn(message: str) -> None:
    """Print ``warning: MESSAGE`` on stderr; the command goes on."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def echo_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (dates and paths as text)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
