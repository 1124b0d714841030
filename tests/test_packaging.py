"""pyproject.toml lists every package: the folders are mapped to import names by hand (``package-dir``).

A folder left out of ``packages`` is silently missing from the wheel, while the
editable install used by the tests still finds it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

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
