"""Every shell example of README.md and docs/ runs, offline, in the order shown, as a merchant would type it.

Each document's blocks run as one script in a fresh folder. A block after ``<!-- not run: REASON -->`` is
left out (it installs, or needs a real cart or a service), and says why; a line ending ``# exits N`` must
end with status N; any other line must succeed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?P<mark><!-- not run: (?P<reason>[^>]*?) -->\n)?```(?:sh|bash|shell)\n(?P<body>.*?)```",
                   re.DOTALL)
#: The documents with shell examples, each with at least one that runs.
GUIDES = [doc for doc in DOCS if any(not b["mark"] for b in BLOCK.finditer(doc.read_text(encoding="utf-8")))]
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


def test_every_document_s_shell_examples_are_run_or_say_why_not() -> None:
    assert {doc.relative_to(ROOT).as_posix() for doc in GUIDES} >= {
        "README.md", "docs/merchant-guide.md", "docs/support-guide.md", "docs/deploying-oss.md"}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in BLOCK.finditer(text):
            assert not block["mark"] or len(block["reason"].split()) >= 2, f"{doc.name}: a reason, not {block[0]!r}"
        # A shell example in another fence (```console, ```shell-session) would never run: none is written so.
        assert not re.search(r"^```(console|shell-session|zsh)\b", text, re.MULTILINE), doc.name


@pytest.mark.parametrize("doc", GUIDES, ids=[d.relative_to(ROOT).as_posix() for d in GUIDES])
def test_the_document_s_shell_examples_run(doc: Path, tmp_path: Path) -> None:
    text = script(doc)
    assert re.search(r"^cartstatus(-oss)? ", text, re.MULTILINE), "the document's examples went missing"
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
