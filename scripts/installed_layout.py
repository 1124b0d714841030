"""Lay the package out as it installs, in a folder of links, for tools that find modules by walking folders.

pyproject.toml's ``package-dir`` maps the folders (``core/`` is ``cartstatus``,
``matrix/`` is ``cartstatus.matrix``, ...). An editable install finds them
through an import hook that import-linter cannot follow: it walks the package's
folder, which holds only ``core/``. ``python scripts/installed_layout.py TOOL
ARGS...`` runs TOOL with the laid-out folder first on ``PYTHONPATH`` and
``MYPYPATH``: ``lint-imports`` checks the contracts, ``mypy -p cartstatus``
type-checks with every import between the folders followed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lay_out(target: Path) -> None:
    """Link every entry of each mapped folder into ``target``, under its package's path."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):  # parents before their subpackages
        where = target.joinpath(*package.split("."))
        where.mkdir(parents=True, exist_ok=True)
        for entry in (ROOT / folder).iterdir():
            if entry.name != "__pycache__" and not (where / entry.name).exists():
                (where / entry.name).symlink_to(entry)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cartstatus-layout-") as tmp:
        lay_out(Path(tmp))
        env = dict(os.environ)
        for name in ("PYTHONPATH", "MYPYPATH"):
            env[name] = os.pathsep.join(filter(None, [tmp, os.environ.get(name)]))
        return subprocess.run(sys.argv[1:], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
