"""The wheel: every package pyproject.toml must list, the HTML templates and stylesheet, found when installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> import path, as pyproject.toml's package-dir maps them.
PACKAGES = {"core": "cartstatus", "connectors": "cartstatus/connectors", "oss_service": "cartstatus/oss",
            "matrix": "cartstatus/matrix"}


@pytest.mark.slow
def test_every_package_and_template_is_in_the_wheel_and_renders_from_it(tmp_path: Path) -> None:
    source = tmp_path / "source"
    # A copy without the build leftovers: the wheel is built from what git would check out.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                 ".*_cache", "demo-work"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("cartstatus-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # pyproject.toml lists the packages one by one: one left out would be missing from the wheel.
    packages = {f"{target}/{init.parent.relative_to(ROOT / folder).as_posix()}/__init__.py".replace("/./", "/")
                for folder, target in PACKAGES.items() for init in (ROOT / folder).rglob("__init__.py")}
    assert "cartstatus/oss/migrations/versions/__init__.py" in packages
    assert sorted(packages - names) == []
    templates = {f"{target}/templates/{f.name}" for folder, target in PACKAGES.items()
                 if (ROOT / folder / "templates").is_dir()
                 for f in (ROOT / folder / "templates").iterdir() if f.is_file()}
    assert {"cartstatus/templates/base.html", "cartstatus/templates/cartstatus.css"} <= templates
    assert sorted(templates - names) == []

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = ("import datetime as dt; from cartstatus.matrix.export import to_html; "
              "from cartstatus.matrix.loader import load_matrix; import cartstatus.oss.pages as pages; "
              "print(pages.templates.env.get_template('lookup.html').filename); "
              "print(to_html(load_matrix(), set(), dt.date(2026, 1, 2)))")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    first, page = ran.stdout.split("\n", 1)
    assert first.startswith(str(site))  # the installed copy, not the source tree
    assert "exported 2026-01-02" in page and ".matrix th{" in page  # rendered, the stylesheet inlined
