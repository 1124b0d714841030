"""docs/commands.md is the CLI's own help: this fails when a command changes and the reference was not made again."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from .conftest import ROOT


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("command_reference", ROOT / "scripts" / "command_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_command_reference_is_not_stale() -> None:
    written = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert generator().reference() == written, "docs/commands.md is stale: run `make docs`"


def test_the_reference_has_every_command_and_its_options() -> None:
    reference = generator().reference()
    for path in ("cartstatus setup", "cartstatus test", "cartstatus stack retry", "cartstatus matrix check",
                 "cartstatus diagnose", "cartstatus events load-defaults", "cartstatus-oss serve",
                 "cartstatus-oss accounts create", "cartstatus-oss migrate"):
        assert f"\n## {path}\n" in reference
    assert "--oss-expires" in reference  # options are in it, not only the command names
