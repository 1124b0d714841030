"""Writes docs/commands.md, the command reference, from the CLI itself: each command's own ``--help``.

Usage: ``python scripts/command_reference.py [OUT]`` (``make docs``). Built-in commands only:
third-party plugins are not loaded. tests/core/test_command_reference.py fails when the file is stale.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "commands.md"
#: The width the help texts are laid out at, whatever the terminal.
WIDTH = 100

HEADER = """# Command reference

Generated from the CLIs by `make docs` (scripts/command_reference.py): edit the commands' help, not this file.
Two programs: `cartstatus`, the merchant's, and `cartstatus-oss`, the OSS operator's (see
[deploying the OSS](deploying-oss.md)). Every `cartstatus` command takes the setup file as
`cartstatus --config FILE COMMAND` (else `CARTSTATUS_CONFIG`, else `./cartstatus.yaml`). Installed plugins may
add commands of their own (`cartstatus plugins`).
"""


def _sections(command: click.Command, parent: click.Context | None, name: str) -> list[str]:
    # The command's own context settings (``-h`` for help), as when it runs: click keeps the help option it
    # made first, so a reference made without them would differ after the command ran once in the process.
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(command, parent=parent, info_name=name, **settings)
    path = ctx.command_path
    sections = [f"## {path}\n\n```text\n{command.get_help(ctx)}\n```\n"]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is not None and not child.hidden:
                sections += _sections(child, ctx, sub)
    return sections


def reference() -> str:
    """The reference as Markdown: each program, then each of its commands and subcommands in order."""
    from cartstatus import plugins
    from cartstatus.cli import main
    from cartstatus.oss.cli import main as oss_main

    before = os.environ.get(plugins.LOAD_ENV)
    os.environ[plugins.LOAD_ENV] = ""  # the built-ins only
    plugins.reset_plugins()
    try:
        sections = _sections(main, None, "cartstatus") + _sections(oss_main, None, "cartstatus-oss")
        return HEADER + "\n" + "\n".join(sections)
    finally:
        if before is None:
            del os.environ[plugins.LOAD_ENV]
        else:
            os.environ[plugins.LOAD_ENV] = before
        plugins.reset_plugins()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.write_text(reference(), encoding="utf-8")
    print(f"wrote {out}")
