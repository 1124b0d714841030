"""Every `sh` example of the guides runs, offline, in the order shown, as a merchant would type it.

A block after ``<!-- not run: REASON -->`` is left out (it installs, or needs a real cart or a service);
a line ending ``# exits N`` must end with status N; any other line must succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

GUIDES = [ROOT / "docs" / "merchant-guide.md", ROOT / "docs" / "support-guide.md"]
BLOCK = re.compile(r"(?P<mark><!-- not run: [^>]*-->\n)?```sh\n(?P<body>.*?)```", re.DOTALL)
EXITS = re.compile(r"^(?P<command>.*?)\s+# exits (?P<status>\d+)\s*$")


def script(doc: Path) -> str:
    """The document's runnable blocks as one bash script, each ``# exits N`` line checked for its status."""
    lines = ["set -euxo pipefail"]
    for block in BLOCK.finditer(doc.read_text(encoding="utf-8")):
        if block["mark"]:
            continue
        for line in block["body"].splitlines():
            expected = EXITS.match(line)
            if expected:
                command, status = expected["command"], expected["status"]
                line = (f'{{ {command}; }} && s=0 || s=$?; [ "$s" -eq {status} ] || '
                        f'{{ echo "exit status $s, not {status}: {command}" >&2; exit 1; }}')
            lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("doc", GUIDES, ids=[d.name for d in GUIDES])
def test_the_guide_s_shell_examples_run(doc: Path, tmp_path: Path) -> None:
    text = script(doc)
    assert text.count("cartstatus ") >= 5, "the guide's examples went missing"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTSTATUS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)
    ran = subprocess.run(["bash", "-c", text], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, f"{doc.name}:\n{ran.stderr[-4000:]}"


def test_a_failing_example_fails_the_test(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("```sh\ntrue   # exits 1\n```\n<!-- not run: nope -->\n```sh\nfalse\n```\n")
    assert subprocess.run(["bash", "-c", script(doc)], capture_output=True).returncode == 1
    doc.write_text("```sh\nfalse   # exits 1\n```\n<!-- not run: nope -->\n```sh\nfalse\n```\n")
    assert subprocess.run(["bash", "-c", script(doc)], capture_output=True).returncode == 0
