"""Meta-tests: every hook is documented with its signature and has a test; the docs' worked example works."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cartstatus import hookspecs, plugins

from .conftest import ROOT, pip_install

DOC = ROOT / "docs" / "writing-connectors.md"


def signature(name: str) -> str:
    params = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(params)})"


def test_the_hooks_are_the_ones_the_plugin_manager_knows() -> None:
    assert plugins.hook_names() == sorted(
        name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "cartstatus_spec"))
    assert len(plugins.hook_names()) >= 4


@pytest.mark.parametrize("hook", plugins.hook_names())
def test_every_hook_is_documented_with_its_signature(hook: str) -> None:
    headings = [line.removeprefix("### ").strip() for line in DOC.read_text().splitlines() if line.startswith("### ")]
    assert signature(hook) in headings, f"docs/writing-connectors.md needs a '### {signature(hook)}' section"
    spec = getattr(hookspecs, hook)
    doc = inspect.getdoc(spec) or ""
    assert doc and "\n" not in doc, f"hookspec {hook} needs a one-line docstring"
    body = ast.parse(inspect.getsource(spec)).body[0]
    assert isinstance(body, ast.FunctionDef) and len(body.body) == 1, f"hookspec {hook} must be signature-only"


def all_test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("hook", plugins.hook_names())
def test_every_hook_has_a_test(hook: str) -> None:
    assert any(f"hook_{hook}" in name for name in all_test_names()), (
        f"no test named test_hook_{hook}_...: every hook needs one")


def doc_files() -> dict[str, str]:
    """The worked example's files: a ``<!-- file: PATH -->`` line, then a fenced block."""
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return dict(found)


def test_the_worked_example_installs_and_passes_the_kit(tmp_path: Path) -> None:
    files = doc_files()
    assert {"pyproject.toml", "cartstatus_examplecart/connector.py", "cartstatus_examplecart/simulator.py",
            "cartstatus_examplecart/plugin.py", "tests/test_conformance.py"} <= set(files)
    package = tmp_path / "cartstatus-examplecart"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    site = tmp_path / "site"
    pip_install(package, site, tmp_path / "build")
    run = tmp_path / "run"
    (run / "tests").mkdir(parents=True)
    (run / "tests" / "test_conformance.py").write_text(files["tests/test_conformance.py"])
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop(plugins.LOAD_ENV, None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=run, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"\b(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 12, result.stdout
    assert "skipped" not in result.stdout and "failed" not in result.stdout
