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
from cartstatus.testing import ConnectorConformance

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


#: A fenced block: the ``<!-- file: PATH -->`` line before it, if any, its language and its text.
BLOCK = re.compile(r"(?:<!-- file: (\S+) -->\n)?```(\w*)\n(.*?)```", flags=re.DOTALL)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_files() -> dict[str, str]:
    """The worked example's files: each ``<!-- file: PATH -->`` line, then a fenced block; the blocks
    of one path, in the order the page shows them, make the file (so the page can walk through it)."""
    files: dict[str, str] = {}
    for path, _, text in BLOCK.findall(DOC.read_text()):
        if path:
            files[path] = files.get(path, "") + ("\n" if path in files else "") + text
    return files


def snippets() -> list[tuple[str, int, str]]:
    """Every Python block of README.md and docs/ that is not part of the worked example: (page, number, code)."""
    return [(doc.name, i, text) for doc in DOCS for i, (path, lang, text) in enumerate(BLOCK.findall(doc.read_text()))
            if lang == "python" and not path]


def test_the_docs_show_python_examples_that_are_not_the_worked_examples() -> None:
    assert {page for page, _, _ in snippets()} == {"writing-connectors.md"}
    assert len(snippets()) >= 2


@pytest.mark.parametrize(("page", "number", "code"), snippets(), ids=[f"{p}#{n}" for p, n, _ in snippets()])
def test_every_python_example_in_the_docs_runs(page: str, number: int, code: str) -> None:
    # Each block stands alone and checks what it shows with asserts.
    assert "assert " in code, f"{page} block {number} shows code but checks nothing: end it with an assert"
    exec(compile(code, f"{page}#{number}", "exec"), {"__name__": f"docs_{number}"})


def test_the_worked_example_is_the_login_cart_the_page_walks_through() -> None:
    connector = doc_files()["cartstatus_examplecart/connector.py"]
    compile(connector, "connector.py", "exec")  # the pieces make one module
    for piece in ("def http_auth", "TokenLogin(", "def classify", "status_code == 500", "self.outcome_of(",
                  "AlreadyDone(", "def carrier_codes"):
        assert piece in connector, f"the worked example's connector lost {piece!r}"


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
    # Every check of the kit, the login and partial-delivery checks included.
    checks = [name for name in dir(ConnectorConformance) if name.startswith("test_")]
    assert passed and int(passed.group(1)) == len(checks), result.stdout
    assert "skipped" not in result.stdout and "failed" not in result.stdout
