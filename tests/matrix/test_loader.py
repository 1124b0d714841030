"""The loader: bad matrix files are reported with file, line and field; collisions never replace rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cartstatus.matrix import MatrixError, load_matrix, read_matrix_file
from cartstatus.routing import cart_matrix

from .conftest import row

GOOD_ROW = """\
  - key: mycart
    name: My Cart
    updates: installed_script
    connector: seti
    capabilities: {tracking_numbers: true, inventory: false}
    caveats: []
    sources: [https://example.com/docs]
    verified: 2026-11-27
"""

BAD_FILES: dict[str, tuple[str, int, str, str]] = {
    "yaml syntax": ("carts:\n  - key: mycart\n    name: My: Cart\n", 3, "(syntax)", "not valid YAML"),
    "empty file": ("", 1, "(file)", "empty"),
    "no carts list": ("rows: []\n", 1, "(top level)", "'carts' is a required property"),
    "carts not a list": ("carts: {key: mycart}\n", 1, "carts", "a mapping is not a list"),
    "missing field": ("carts:\n" + GOOD_ROW.replace("    sources: [https://example.com/docs]\n", ""),
                      2, "carts[0]", "'sources' is a required property"),
    "unknown field": ("carts:\n" + GOOD_ROW.replace("    connector: seti", "    conector: seti"),
                      2, "carts[0]", "unknown key 'conector'"),
    "bad updates kind": ("carts:\n" + GOOD_ROW.replace("updates: installed_script", "updates: sometimes"),
                         4, "carts[0].updates", "native_api, installed_script, batch_file, none"),
    "bad key": ("carts:\n" + GOOD_ROW.replace("key: mycart", "key: My Cart"), 2, "carts[0].key", "does not match"),
    "duplicate key": ("carts:\n" + GOOD_ROW + GOOD_ROW, 10, "carts[1].key", "already used on line 2"),
    "impossible date": ("carts:\n" + GOOD_ROW.replace("2026-11-27", "2026-13-01"), 9, "carts[0].verified",
                        "YYYY-MM-DD"),
    "date not a date": ("carts:\n" + GOOD_ROW.replace("2026-11-27", "last week"), 9, "carts[0].verified",
                        "YYYY-MM-DD"),
    "source not a URL": ("carts:\n" + GOOD_ROW.replace("https://example.com/docs", "see the wiki"), 8,
                         "carts[0].sources[0]", "http or https"),
    "capability not boolean": ("carts:\n" + GOOD_ROW.replace("tracking_numbers: true", "tracking_numbers: maybe"),
                               6, "carts[0].capabilities.tracking_numbers", "true or false"),
    "connector on a cart that takes none": ("carts:\n" + GOOD_ROW.replace("updates: installed_script",
                                                                          "updates: none"),
                                            5, "carts[0].connector", "no connector"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_matrix_file_names_file_line_and_field(kind: str, write_matrix: Callable[..., Path]) -> None:
    text, line, field, message = BAD_FILES[kind]
    path = write_matrix(text)
    with pytest.raises(MatrixError) as info:
        read_matrix_file(path)
    matching = [p for p in info.value.problems if message in p.message]
    assert matching, info.value.problems
    problem = matching[0]
    assert problem.path == path
    assert problem.field == field
    assert problem.line == line
    assert str(path) in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MatrixError) as info:
        read_matrix_file(tmp_path / "nope.yaml")
    assert info.value.problems[0].field == "(file)"
    assert "no such matrix file" in str(info.value)


def test_good_file_reads(write_matrix: Callable[..., Path]) -> None:
    rows, _ = read_matrix_file(write_matrix("carts:\n" + GOOD_ROW))
    (r, line), = rows
    assert (r.key, r.updates, r.connector, line, r.verified.isoformat() if r.verified else None) == (
        "mycart", "installed_script", "seti", 2, "2026-11-27")


def test_the_builtin_matrix_loads_without_problems() -> None:
    matrix = load_matrix()
    assert len(matrix) >= 25
    assert matrix.problems == []


def test_extra_file_adds_rows(write_matrix: Callable[..., Path]) -> None:
    matrix = load_matrix(write_matrix([row()]))
    assert matrix.get("mycart") is not None
    assert matrix.by_name("My Shop-Cart") is matrix.get("mycart")
    assert matrix.get("mycart").origin.endswith("extra-matrix.yaml")  # type: ignore[union-attr]


@pytest.mark.parametrize("clash", [{"key": "woocommerce"}, {"aliases": ["Woo Commerce"]}, {"name": "3dcart"}])
def test_extra_row_colliding_with_builtin_is_reported_not_used(clash: dict[str, Any],
                                                               write_matrix: Callable[..., Path]) -> None:
    path = write_matrix([row(**clash)])
    matrix = load_matrix(path)
    assert len(matrix.problems) == 1
    problem = matrix.problems[0]
    assert problem.path == path and problem.line == 2
    assert "ignored" in problem.message
    # the built-in row is still the one in force
    assert matrix.get("woocommerce").origin == "built-in"  # type: ignore[union-attr]
    assert matrix.get("mycart") is None


def test_plugin_rows_come_through_the_hook(register_plugin: Callable[..., None]) -> None:
    def register_matrix_rows(register: Any) -> None:
        register(row(key="plugincart", name="Plugin Cart", aliases=[]))

    register_plugin("test-rows", register_matrix_rows=register_matrix_rows)
    matrix = cart_matrix()
    assert matrix.get("plugincart").origin == "plugin test-rows"  # type: ignore[union-attr]
    assert matrix.problems == []


def test_plugin_row_colliding_with_builtin_is_reported(register_plugin: Callable[..., None]) -> None:
    def register_matrix_rows(register: Any) -> None:
        register(row(key="shopify", name="Shopify (my fork)", aliases=[], connector=None, updates="none"))
        register(row(key="myshop", name="My Shop", aliases=["big commerce"]))

    register_plugin("test-clash", register_matrix_rows=register_matrix_rows)
    matrix = cart_matrix()
    messages = [p.message for p in matrix.problems]
    assert len(messages) == 2
    assert "'shopify' is already defined by built-in" in messages[0]
    assert "'bigcommerce'" in messages[1]
    assert matrix.get("shopify").origin == "built-in"  # type: ignore[union-attr]
    assert matrix.get("myshop") is None
    assert all("test-clash" in str(p.path) for p in matrix.problems)


def test_bad_plugin_row_is_reported_not_raised(register_plugin: Callable[..., None]) -> None:
    def register_matrix_rows(register: Any) -> None:
        register(row(key="halfcart", updates="perhaps"))
        register("not a row")

    register_plugin("test-bad", register_matrix_rows=register_matrix_rows)
    matrix = cart_matrix()
    assert matrix.get("halfcart") is None
    fields = [p.field for p in matrix.problems]
    assert "updates" in fields and "(row)" in fields
