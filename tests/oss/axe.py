"""axe-core, the accessibility checker, for the browser test: installed once from npm, injected through Selenium.

The install lives in ``.cache/axe-core/`` at the repository root (ignored by git), at the pinned version
below: a marker file written last holds it, so a changed pin or a half-done install is installed again.
Without Node and npm (or without the registry) the test is skipped when run by hand, and fails under
``make test`` / CI (``CARTSTATUS_SERVICES=1``, see tests/services.py).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..services import missing

ROOT = Path(__file__).resolve().parents[2]
AXE_DIR = ROOT / ".cache" / "axe-core"
AXE_VERSION = "4.14.1"
MARKER = AXE_DIR / ".cartstatus-installed"
SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
INSTALL_SECONDS = 300
#: Violations at these impacts fail the test (axe's scale: minor, moderate, serious, critical).
FAILING_IMPACTS = ("serious", "critical")


def axe_script() -> str:
    """The text of ``axe.min.js``, installed with npm into ``.cache/axe-core/`` unless it is there already."""
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    with (AXE_DIR.parent / "axe-core.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one session at a time installs
        if not (MARKER.exists() and MARKER.read_text() == AXE_VERSION and SCRIPT.exists()):
            _install()
    return SCRIPT.read_text(encoding="utf-8")


def _install() -> None:
    if not shutil.which("npm"):
        missing("npm (to install axe-core for the accessibility check)")
    MARKER.unlink(missing_ok=True)
    (AXE_DIR / "package.json").write_text(json.dumps(
        {"name": "cartstatus-axe", "private": True, "version": "0.0.0", "dependencies": {"axe-core": AXE_VERSION}},
        indent=2) + "\n")
    (AXE_DIR / ".npmrc").write_text("fund=false\naudit=false\nupdate-notifier=false\n")
    try:
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=AXE_DIR, capture_output=True,
                              text=True, timeout=INSTALL_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        missing(f"axe-core from npm ({exc})")
    if done.returncode != 0 or not SCRIPT.exists():
        missing(f"axe-core from npm (npm install exited {done.returncode}: {done.stderr.strip()[-500:]})")
    MARKER.write_text(AXE_VERSION)  # last: a half install is done again


def axe_violations(driver: Any, script: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page ``driver`` shows (the WCAG 2.x A and AA rules and best practices)."""
    driver.execute_script(script)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        "  .then(r => done({violations: r.violations}), e => done({error: String(e)}));")
    if "error" in result:
        pytest.fail(f"axe-core did not run: {result['error']}", pytrace=False)
    return list(result["violations"])


def serious(violations: list[dict[str, Any]]) -> list[str]:
    """The serious and critical violations, one line each: the rule, its impact and where."""
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in violations if v.get("impact") in FAILING_IMPACTS]
