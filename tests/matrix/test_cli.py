"""``matrix list``, ``show``, ``validate`` and ``export``, and where the extra matrix file comes from."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cartstatus.cli import main
from cartstatus.matrix import load_matrix
from click.testing import CliRunner

from ..conftest import base_setup
from .conftest import row


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CARTSTATUS_MATRIX", raising=False)
    monkeypatch.delenv("CARTSTATUS_CONFIG", raising=False)
    return CliRunner()


def test_list_json_and_filters(runner: CliRunner) -> None:
    everything = json.loads(runner.invoke(main, ["matrix", "list", "--json"]).output)
    assert len(everything) == len(load_matrix())
    direct = json.loads(runner.invoke(main, ["matrix", "list", "--supports", "direct", "--json"]).output)
    assert {r["key"] for r in direct} == {r.key for r in load_matrix() if r.connector is not None}
    updates = json.loads(runner.invoke(main, ["matrix", "list", "--supports", "status-updates", "--json"]).output)
    assert "americart" not in {r["key"] for r in updates} and "woocommerce" in {r["key"] for r in updates}
    none = json.loads(runner.invoke(main, ["matrix", "list", "--updates", "none", "--json"]).output)
    assert [r["key"] for r in none] == ["americart"]


def test_list_table(runner: CliRunner) -> None:
    result = runner.invoke(main, ["matrix", "list", "--updates", "batch_file"])
    assert result.exit_code == 0 and "yahoo" in result.output and "woocommerce" not in result.output


def test_show_by_alias_and_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["matrix", "show", "3dcart"])
    assert result.exit_code == 0
    assert "Shift4Shop (3dcart) (shift4shop)" in result.output and "OrderStatusID" in result.output
    data = json.loads(runner.invoke(main, ["matrix", "show", "bigcommerce", "--json"]).output)
    assert data["status_vocabulary"][2] == "Shipped" and data["rate_limit"]["requests"] == 150


def test_show_unknown_exits_3(runner: CliRunner) -> None:
    result = runner.invoke(main, ["matrix", "show", "nothing-like-it"])
    assert result.exit_code == 3


def test_validate_good_bad_and_colliding(runner: CliRunner, write_matrix: Callable[..., Path]) -> None:
    good = write_matrix([row()], name="good.yaml")
    result = runner.invoke(main, ["matrix", "validate", str(good)])
    assert result.exit_code == 0 and "OK, 1 carts" in result.output
    bad = write_matrix([row(updates="whenever")], name="bad.yaml")
    result = runner.invoke(main, ["matrix", "validate", str(bad)])
    assert result.exit_code == 1 and "bad.yaml:6: carts[0].updates" in result.output
    clash = write_matrix([row(key="shopify")], name="clash.yaml")
    result = runner.invoke(main, ["matrix", "validate", str(clash)])
    assert result.exit_code == 1 and "already defined by built-in" in result.output


def test_validate_warns_about_uninstalled_connector(runner: CliRunner, write_matrix: Callable[..., Path]) -> None:
    path = write_matrix([row(connector="magic", updates="native_api")])
    result = runner.invoke(main, ["matrix", "validate", str(path)])
    assert result.exit_code == 0 and "connector 'magic' is not installed" in result.output


def test_matrix_option_env_and_setup_file(runner: CliRunner, tmp_path: Path,
                                          write_matrix: Callable[..., Path]) -> None:
    extra = write_matrix([row()])
    assert runner.invoke(main, ["matrix", "check", "my cart"]).exit_code == 3
    assert runner.invoke(main, ["matrix", "check", "my cart", "--matrix", str(extra)]).exit_code == 0
    assert runner.invoke(main, ["matrix", "check", "my cart"], env={"CARTSTATUS_MATRIX": str(extra)}).exit_code == 0
    (tmp_path / "cartstatus.yaml").write_text(yaml.safe_dump(base_setup(matrix={"extra": extra.name})))
    assert runner.invoke(main, ["matrix", "check", "my cart"]).exit_code == 0


def test_broken_extra_matrix_is_a_clear_error(runner: CliRunner, write_matrix: Callable[..., Path]) -> None:
    broken = write_matrix("carts: [\n")
    result = runner.invoke(main, ["matrix", "list", "--matrix", str(broken)])
    assert result.exit_code == 2 and "extra-matrix.yaml" in result.output


def test_export_json_csv_markdown(runner: CliRunner) -> None:
    n = len(load_matrix())
    data = json.loads(runner.invoke(main, ["matrix", "export", "--format", "json"]).output)
    assert len(data["carts"]) == n
    rows = list(csv.DictReader(io.StringIO(runner.invoke(main, ["matrix", "export", "--format", "csv"]).output)))
    assert len(rows) == n and {r["key"] for r in rows} == {r.key for r in load_matrix()}
    md = runner.invoke(main, ["matrix", "export", "--format", "markdown"]).output.splitlines()
    assert len(md) == n + 2 and all(line.startswith("| ") and line.endswith(" |") for line in md)


def test_export_html_is_self_contained_and_escaped(runner: CliRunner, tmp_path: Path,
                                                   write_matrix: Callable[..., Path]) -> None:
    extra = write_matrix([row(name="Evil <script>alert(1)</script> Cart", caveats=["a | b & <b>c</b>"])])
    out = tmp_path / "matrix.html"
    result = runner.invoke(main, ["matrix", "export", "--format", "html", "-o", str(out), "--matrix", str(extra)])
    assert result.exit_code == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a | b &amp; &lt;b&gt;c&lt;/b&gt;" in page
    assert "<link" not in page and "src=" not in page  # nothing loaded from elsewhere
    assert page.count("<tr class=") == len(load_matrix(extra))


def test_validate_prints_the_key_pattern_intact(runner: CliRunner, write_matrix: Callable[..., Path]) -> None:
    # Rich took "[a-z0-9][a-z0-9_]" for markup and printed the pattern as '^{0,63}$'.
    bad = write_matrix([row(key="My Cart")], name="bad-key.yaml")
    result = runner.invoke(main, ["matrix", "validate", str(bad)])
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "carts[0].key" in line)
    assert f"{bad}:2: carts[0].key: 'My Cart' is not valid: expected lower-case letters" in line
    assert "it does not match '^[a-z0-9][a-z0-9_]{0,63}$'" in line


def test_matrix_text_in_brackets_is_printed_as_written(runner: CliRunner, write_matrix: Callable[..., Path]) -> None:
    extra = write_matrix([row(name="My [beta] Cart", caveats=["labels must match [a-z]+ exactly"])])
    shown = runner.invoke(main, ["matrix", "show", "mycart", "--matrix", str(extra)])
    assert shown.exit_code == 0
    assert "My [beta] Cart (mycart)" in shown.output and "caveat: labels must match [a-z]+ exactly" in shown.output
    listed = runner.invoke(main, ["matrix", "list", "--matrix", str(extra)], env={"COLUMNS": "300"})
    assert "My [beta] Cart" in listed.output
