"""Plugins can be type-checked against cartstatus: the installed package carries ``py.typed`` (PEP 561)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, pip_install

EXAMPLE = ROOT / "examples" / "cartstatus-acmecart"


def test_the_example_plugin_type_checks_strictly_against_the_installed_package(tmp_path: Path) -> None:
    source = tmp_path / "cartstatus-src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*_cache", "demo-work", "build", "*.egg-info", "__pycache__", "examples"))
    site = tmp_path / "site"
    (tmp_path / "build").mkdir()
    pip_install(source, site, tmp_path / "build")  # a real install, not the editable one mypy cannot follow
    assert (site / "cartstatus" / "py.typed").is_file()

    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", sys.executable,
         "--cache-dir", os.devnull, "cartstatus_acmecart", "tests"],  # no cache: once seen waiting on its lock
        cwd=EXAMPLE, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=300)

    # Without py.typed mypy takes every cartstatus name as Any, and --strict says so
    # ("Class cannot subclass 'Connector' (has type 'Any')").
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
