"""The package as it installs: pyproject.toml lists every package (the folders are mapped to import names by hand,
``package-dir``), and the wheel holds every package and template and renders from an install.

A folder left out of ``packages`` is silently missing from the wheel, while the
editable install used by the tests still finds it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _folder(package: str) -> Path:
    """The folder a package is built from: the longest ``package-dir`` prefix of its name."""
    mapping: dict[str, str] = SETUPTOOLS["package-dir"]
    prefix = max((p for p in mapping if package == p or package.startswith(p + ".")), key=len)
    return ROOT / mapping[prefix] / package[len(prefix):].lstrip(".").replace(".", "/")


def _shipped_as_data(folder: Path, packages: list[str]) -> bool:
    """Whether every file in ``folder`` is package data of a listed package above it."""
    files = {f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    for package in packages:
        base = _folder(package)
        if base in folder.parents:
            globs = [*SETUPTOOLS["package-data"].get("*", []), *SETUPTOOLS["package-data"].get(package, [])]
            files -= {f for pattern in globs for f in base.glob(pattern)}
    return not files


def _folders_with_files() -> dict[str, Path]:
    """Each folder under a mapped one that holds a file, by the package name it would have."""
    found = {}
    for name, top in SETUPTOOLS["package-dir"].items():
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if (folder.is_dir() and "__pycache__" not in folder.parts
                    and any(f.is_file() for f in folder.iterdir())):
                rel = folder.relative_to(ROOT / top).as_posix()
                found[name if rel == "." else f"{name}.{rel.replace('/', '.')}"] = folder
    return found


def test_every_folder_of_the_mapped_trees_is_a_listed_package_or_data_of_one() -> None:
    packages: list[str] = SETUPTOOLS["packages"]
    missing = sorted(name for name, folder in _folders_with_files().items()
                     if name not in packages and not _shipped_as_data(folder, packages))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_is_a_folder_with_files() -> None:
    folders = _folders_with_files()
    stale = [name for name in SETUPTOOLS["packages"] if name not in folders]
    assert not stale, f"listed in pyproject.toml but no folder with files: {stale}"
    assert _folder("cartstatus.oss.migrations") == ROOT / "oss_service" / "migrations"


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
    # The shopper pages' catalogs, compiled from the .po when first used: no build step.
    assert {"cartstatus/oss/locale/fr/LC_MESSAGES/messages.po", "cartstatus/oss/locale/de/LC_MESSAGES/messages.po"} \
        <= names

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = ("import datetime as dt; from cartstatus.matrix.export import to_html; "
              "from cartstatus.matrix.loader import load_matrix; import cartstatus.oss.pages as pages; "
              "from cartstatus.oss.i18n import translations; print(translations('fr').gettext('Shipped')); "
              "print(pages.templates.env.get_template('lookup.html').filename); "
              "print(to_html(load_matrix(), set(), dt.date(2026, 1, 2)))")
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    french, first, page = ran.stdout.split("\n", 2)
    assert french == "Expédiée"
    assert first.startswith(str(site))  # the installed copy, not the source tree
    assert "exported 2026-01-02" in page and ".matrix th{" in page  # rendered, the stylesheet inlined
