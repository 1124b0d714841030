"""The carts' official API descriptions (``../shared/specs/`` beside the project), for ``check_request``.

They are the team's data files, not the project's: a test that needs one skips, saying which file and where it
was looked for, when it is absent (outside this team). ``CARTSTATUS_SPECS`` names another folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS_ENV = "CARTSTATUS_SPECS"


def specs_folder() -> Path | None:
    """``$CARTSTATUS_SPECS``, else the first ``shared/specs`` beside the project or one of its parents
    (a git worktree sits deeper than the clone)."""
    if os.environ.get(SPECS_ENV):
        return Path(os.environ[SPECS_ENV])
    for parent in ROOT.parents:
        if (parent / "shared" / "specs").is_dir():
            return parent / "shared" / "specs"
    return None


def spec_file(name: str) -> Path:
    """The description ``name`` (``bigcommerce-orders-v2.openapi.yml``...), or a skip that says why."""
    folder = specs_folder()
    path = folder / name if folder else None
    if path is None or not path.is_file():
        pytest.skip(f"the cart's API description {name} is not here (looked in {folder or ROOT.parent / 'shared/specs'}"
                    f"; set {SPECS_ENV}): requests cannot be checked against it")
    return path
