"""Every YAML block of README.md and docs/ is a setup file that loads and passes ``cartstatus check``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cartstatus.cli import main
from click.testing import CliRunner

from .conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: (document, block number, YAML text) of each YAML block: none is left out, so each is a setup file.
SETUPS = [(doc.relative_to(ROOT), i, text)
          for doc in DOCS
          for i, text in enumerate(re.findall(r"```ya?ml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL))]


def test_the_docs_show_setup_files() -> None:
    assert {doc.as_posix() for doc, _, _ in SETUPS} >= {
        "README.md", "docs/deploying-oss.md", "docs/merchant-guide.md", *(
            f"docs/carts/{cart}.md" for cart in ("bigcommerce", "ecwid", "magento", "medusa", "prestashop",
                                                 "shopify", "vendure", "woocommerce"))}


@pytest.mark.parametrize(("doc", "block", "text"), SETUPS, ids=[f"{d}#{i}" for d, i, _ in SETUPS])
def test_a_documented_setup_file_passes_check(doc: Path, block: int, text: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Its secrets exist: an environment variable or a file beside the setup file.
    for name in re.findall(r"\$env: (\w+)", text):
        monkeypatch.setenv(name, "a-secret")
    for name in re.findall(r"\$file: ([\w./-]+)", text):
        (tmp_path / name).write_text("a-secret\n")
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(setup), "check"])
    assert result.exit_code == 0, f"{doc} block {block}: {result.output}"
    assert "OK" in result.output
