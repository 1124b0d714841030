"""The built-in plugin that adds ``cartstatus matrix``, with the matrix in force.

The matrix's commands (``cartstatus.matrix.cli``) are given how to load the
matrix: the built-in rows, the rows plugins register, and an extra file
(``--matrix``, else the setup file's ``matrix.extra``), with the installed
connectors.
"""

from __future__ import annotations

from pathlib import Path

import click

from .config import ConfigError, config_path
from .hookspecs import hookimpl
from .matrix import Matrix
from .matrix.cli import matrix_commands
from .routing import cart_matrix, load_config
from .terminal import warn


def _extra_from_setup() -> Path | None:
    """The setup file's ``matrix: {extra: ...}``, when there is a usable setup file."""
    root = click.get_current_context().find_root()
    path = config_path(root.params.get("config_option"))
    if not path.exists():
        return None
    try:
        return load_config(path).matrix_extra
    except ConfigError as exc:
        warn(f"{path} cannot be used, so its matrix.extra is ignored:\n{exc}")
        return None


def matrix_in_force(matrix_file: Path | None) -> Matrix:
    """The matrix with ``matrix_file`` as its extra file, else the setup file's."""
    return cart_matrix(matrix_file if matrix_file is not None else _extra_from_setup())


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(matrix_commands(matrix_in_force))
