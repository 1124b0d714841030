"""Bad setup files and bad CSV rows: each fails with file, line, field and what to do; exit 2; nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cartstatus import ConfigError, StatusEngine, load_config
from cartstatus.cli import main
from cartstatus.engine import ImportError_, OrderError
from click.testing import CliRunner

from ..conftest import SHOP_PASSWORD, base_setup


def setup_text(change: Callable[[dict[str, Any]], None]) -> str:
    data = base_setup()
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def line_of(text: str, where: str | int | tuple[str, int]) -> int:
    """A line number as given, or the 1-based line of the first line containing a needle (plus an offset)."""
    if isinstance(where, int):
        return where
    needle, offset = where if isinstance(where, tuple) else (where, 0)
    return offset + next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _event(i: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["status_events"][i].update(values)


def _connector(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["stores"][0]["connector"].update(values)


def _drop_connector_field(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["stores"][0]["connector"].pop(key)


SYNTAX_ERROR = "system:\n  UseStatusUpdates: true\nstores:\n  - id: main\n    cart: seti\n   connector: {url: x}\n"

# (id, setup file text, the line's marker (or a line number), field, a piece of the message)
BAD_SETUPS: list[tuple[str, str, str | int | tuple[str, int], str, str]] = [
    ("YAML syntax error", SYNTAX_ERROR, 6, "(syntax)", "not valid YAML"),
    ("unknown top-level key",
     setup_text(lambda d: d.update(stack_controller={"lease": 1})), "stack_controller:", "stack_controller",
     "unknown key 'stack_controller'; allowed: controller, matrix, stack, status_events, stores, system"),
    ("UseStatusUpdates not a boolean",
     setup_text(lambda d: d["system"].update(UseStatusUpdates="maybe")), "UseStatusUpdates", "system.UseStatusUpdates",
     "'maybe' is not of type 'boolean' (expected true or false"),
    ("unknown status event",
     setup_text(_event(1, event="Order Teleported")), "Order Teleported", "status_events[1].event",
     "'Order Teleported' is not a known status event; expected one of: Order Received"),
    ("duplicate status event",
     setup_text(_event(1, event="order  SHIPPED")), "order  SHIPPED", "status_events[1].event",
     "'Order Shipped' is defined twice; keep one"),
    ("status event without a label",
     setup_text(lambda d: d["status_events"][2].pop("order_status")), "event: Invoice Printed",
     "status_events[2].order_status", "missing: 'order_status' is a required property (the status label"),
    ("store without cart",
     setup_text(lambda d: d["stores"][0].pop("cart")), "- id: main", "stores[0].cart",
     "missing: 'cart' is a required property (a key of the shopping-cart matrix)"),
    ("duplicate store id",
     setup_text(lambda d: d["stores"].append({"id": "main", "cart": "papercart"})), ("cart: papercart", -1),
     "stores[1].id", "store id 'main' is used twice; ids must be unique"),
    ("bad store id",
     setup_text(lambda d: d["stores"][0].update(id="main store")), "id: main store", "stores[0].id",
     "'main store' is not valid: expected letters, digits, _ . - (at most 64)"),
    ("$env secret not set",
     setup_text(_connector(password={"$env": "NO_SUCH_SHOP_PASSWORD"})), ("NO_SUCH_SHOP_PASSWORD", -1),
     "stores[0].connector.password", "environment variable NO_SUCH_SHOP_PASSWORD is not set; export it or use $file"),
    ("$file secret unreadable",
     setup_text(_connector(password={"$file": "missing-secret.txt"})), ("missing-secret.txt", -1),
     "stores[0].connector.password", "cannot read secret file"),
    ("bad stack URL",
     setup_text(lambda d: d["stack"].update(url="mysql://om@db/stack")), "mysql://", "stack.url",
     "'mysql://om@db/stack' is not valid: expected a SQLAlchemy database URL"),
    ("connector without password",
     setup_text(_drop_connector_field("password")), "connector:", "stores[0].connector.password",
     "missing: 'password' is a required property"),
    ("connector without url",
     setup_text(_drop_connector_field("url")), "connector:", "stores[0].connector.url",
     "missing: 'url' is a required property"),
    ("connector without user",
     setup_text(_drop_connector_field("user")), "connector:", "stores[0].connector.user",
     "missing: 'user' is a required property"),
    ("connector without code",
     setup_text(_drop_connector_field("code")), "connector:", "stores[0].connector.code",
     "missing: 'code' is a required property"),
    ("connector key misspelt",
     setup_text(_connector(pasword="x")), "pasword", "stores[0].connector.pasword",
     "unknown key 'pasword'; allowed: code, password, send_xml, timeout, url, user"),
    ("connector URL not http",
     setup_text(_connector(url="ftp://shop.example/seom.php")), "ftp://", "stores[0].connector.url",
     "does not match what seti expects (pattern: ^https?://)"),
    ("OSS merchant not a slug",
     setup_text(lambda d: d["stores"].append({"id": "b", "cart": "papercart", "oss": {
         "url": "https://oss.test", "merchant": "Bad Merchant!", "token": "t", "subscription_expires": "2099-01-01"}})),
     "Bad Merchant!", "stores[1].oss.merchant", "does not match '^[a-z0-9][a-z0-9-]{0,62}$'"),
    ("OSS end date not a date",
     setup_text(lambda d: d["stores"].append({"id": "b", "cart": "papercart", "oss": {
         "url": "https://oss.test", "merchant": "shop-b", "token": "t", "subscription_expires": "2099-02-30"}})),
     "2099-02-30", "stores[1].oss.subscription_expires", "'2099-02-30' is not a 'date'"),
    ("controller concurrency zero",
     setup_text(lambda d: d["controller"].update(concurrency=0)), "concurrency", "controller.concurrency",
     "0 is less than the minimum of 1"),
]


@pytest.mark.parametrize(("text", "where", "field", "message"), [c[1:] for c in BAD_SETUPS],
                         ids=[c[0] for c in BAD_SETUPS])
def test_bad_setup_file_is_refused_with_file_line_field_and_exit_2(
    text: str, where: str | int | tuple[str, int], field: str, message: str, tmp_path: Path
) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(text)
    line = line_of(text, where)

    with pytest.raises(ConfigError) as caught:
        load_config(setup)
    [problem] = caught.value.problems
    assert (problem.path, problem.line, problem.field) == (setup, line, field)
    assert message in problem.message

    # The same through the CLI, with a command that would otherwise create the stack database.
    result = CliRunner().invoke(main, ["--config", str(setup), "stack", "status"])
    assert result.exit_code == 2, result.output
    assert f"{setup}:{line}: {field}: " in result.output
    assert message in result.output
    assert SHOP_PASSWORD not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartstatus.yaml"]  # nothing written


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    def two_wrongs(d: dict[str, Any]) -> None:
        d["system"]["UseStatusUpdates"] = "maybe"
        d["controller"]["concurrency"] = 0

    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(setup_text(two_wrongs))
    with pytest.raises(ConfigError) as caught:
        load_config(setup)
    assert [p.field for p in caught.value.problems] == ["system.UseStatusUpdates", "controller.concurrency"]


def test_missing_setup_file_says_how_to_make_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.yaml"), "fire", "Order Shipped", "1"])
    assert result.exit_code == 2
    assert "nope.yaml: (file): no such setup file; create one (see README) or pass --config" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_stack_url_password_is_not_echoed(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(setup_text(lambda d: d["stack"].update(url="postgres://om:Db-Pa55word@db/stack")))
    result = CliRunner().invoke(main, ["--config", str(setup), "check"])
    assert result.exit_code == 2
    assert "stack.url" in result.output
    assert "Db-Pa55word" not in result.output


# -- CSV ---------------------------------------------------------------------

HEADER = "order_number,store,status,cart_order_ref,email,zip\n"
GOOD = "1001,main,New,C1001,a@example.com,12345\n"

# (id, file content, line, field, a piece of the message)
BAD_CSVS: list[tuple[str, bytes, int | None, str, str]] = [
    ("wrong header", b"order,store,status,ref,email,zip\n" + GOOD.encode(), 1, "(header)",
     "expected the header order_number,store,status,cart_order_ref,email,zip, found order,store,status,ref"),
    ("empty file", b"", 1, "(header)", "the file is empty"),
    ("wrong field count", (HEADER + GOOD + "1002,main,New,C1002\n").encode(), 3, "(row)",
     "4 fields, expected 6"),
    ("unknown store", (HEADER + GOOD + "1002,outlet,New,C1002,,\n").encode(), 3, "store",
     "'outlet' is not a store in"),
    ("empty cart_order_ref", (HEADER + GOOD + "1002,main,New,,,\n").encode(), 3, "cart_order_ref",
     "empty: give the cart's own order number"),
    ("bad email", (HEADER + GOOD + "1002,main,New,C1002,shopper-at-example.com,\n").encode(), 3, "email",
     "'shopper-at-example.com' is not an email address"),
    ("bad zip", (HEADER + GOOD + "1002,main,New,C1002,,!!\n").encode(), 3, "zip", "'!!' is not a ZIP or postal code"),
    ("bad order number", (HEADER + GOOD + "10 02,main,New,C1002,,\n").encode(), 3, "order_number",
     "'10 02' is not an order number"),
    ("duplicate order in the file", (HEADER + GOOD + "1002,main,New,C1002,,\n" + GOOD).encode(), 4, "order_number",
     "order 1001 of store main is already on line 2"),
    ("not UTF-8", (HEADER + GOOD).encode() + "1002,main,Envoyé,C1002,,\n".encode("latin-1"), 3, "(file)",
     "not UTF-8 text"),
]


@pytest.mark.parametrize(("content", "line", "field", "message"), [c[1:] for c in BAD_CSVS],
                         ids=[c[0] for c in BAD_CSVS])
def test_bad_csv_is_refused_whole_with_file_line_field_and_exit_2(
    content: bytes, line: int | None, field: str, message: str, engine: StatusEngine, tmp_path: Path
) -> None:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_bytes(content)

    with pytest.raises(ImportError_) as caught:
        engine.import_orders(csv_file)
    [problem] = caught.value.problems
    assert (problem.path, problem.line, problem.field) == (csv_file, line, field)
    assert message in problem.message

    result = CliRunner().invoke(main, ["--config", str(engine.config.path), "orders", "import", str(csv_file)])
    assert result.exit_code == 2, result.output
    assert "nothing imported" in result.output
    where = f"{csv_file}:{line}" if line else str(csv_file)
    assert f"{where}: {field}: " in result.output
    assert message in result.output
    # Not even the good rows before the bad one.
    with pytest.raises(OrderError):
        engine.show_order("1001")


def test_a_good_csv_imports_and_reimport_updates(engine: StatusEngine, tmp_path: Path) -> None:
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(HEADER + GOOD + "1002,main,,C1002,,\n")
    result = CliRunner().invoke(main, ["--config", str(engine.config.path), "orders", "import", str(csv_file)])
    assert result.exit_code == 0, result.output
    assert "imported 2 orders" in result.output
    assert engine.show_order("1001")["status"] == "New"
    assert engine.show_order("1002")["status"] is None
    csv_file.write_text(HEADER + GOOD.replace("New", "Printed"))
    assert engine.import_orders(csv_file) == 1
    assert [h["to"] for h in engine.show_order("1001")["history"]] == ["New", "Printed"]
