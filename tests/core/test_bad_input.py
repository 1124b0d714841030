"""Bad setup files and bad CSV rows: each fails with file, line, field and what to do; exit 2; nothing written."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cartstatus import ConfigError, StatusEngine, load_config
from cartstatus.cli import main
from cartstatus.engine import OrderError
from cartstatus.orders import OrderImportError
from click.testing import CliRunner

from ..conftest import SHOP_PASSWORD, base_setup
from ..services import fresh_postgres_database


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


SETUP_WITH_TWO_URLS = setup_text(lambda d: None).replace(
    "    url: http://cart.test/seom.php\n",
    "    url: http://cart.test/seom.php\n    url: http://cart.test/other.php\n")
SYNTAX_ERROR = "system:\n  UseStatusUpdates: true\nstores:\n  - id: main\n    cart: seti\n   connector: {url: x}\n"

# (id, setup file text, the line's marker (or a line number), field, a piece of the message)
BAD_SETUPS: list[tuple[str, str, str | int | tuple[str, int], str, str]] = [
    ("YAML syntax error", SYNTAX_ERROR, 6, "(syntax)", "not valid YAML"),
    ("unknown top-level key",
     setup_text(lambda d: d.update(stack_controller={"lease": 1})), "stack_controller:", "stack_controller",
     "unknown key 'stack_controller'; allowed: controller, matrix, stack, status_events, stores, system"),
    ("UseStatusUpdates not a boolean",
     setup_text(lambda d: d["system"].update(UseStatusUpdates="maybe")), "UseStatusUpdates", "system.UseStatusUpdates",
     "'maybe' is not true or false (expected true or false"),
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
    *[(f"connector without {key}", setup_text(_drop_connector_field(key)), "connector:",
       f"stores[0].connector.{key}", f"missing: {key!r} is a required property")
      for key in ("password", "url", "user", "code")],
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
     "2099-02-30", "stores[1].oss.subscription_expires",
     "'2099-02-30' is not valid: expected the subscription's last day, a date YYYY-MM-DD"),
    ("controller concurrency zero",
     setup_text(lambda d: d["controller"].update(concurrency=0)), "concurrency", "controller.concurrency",
     "0 is less than the minimum of 1"),
    ("lease over its maximum",
     setup_text(lambda d: d["controller"].update(lease_seconds=86400)), "lease_seconds", "controller.lease_seconds",
     "86400 is greater than the maximum of 3600"),
    ("retry horizon over its maximum",
     setup_text(lambda d: d["controller"].update(retry_horizon_seconds=10**9)), "retry_horizon_seconds",
     "controller.retry_horizon_seconds", "1000000000 is greater than the maximum of 2592000"),
    ("first backoff longer than the cap",
     setup_text(lambda d: d["controller"].update(backoff_base=10, backoff_cap=5)), "backoff_base",
     "controller.backoff_base", "10 is more than backoff_cap 5: the first wait cannot be longer than the longest"),
    ("a control character in a status label",
     setup_text(_event(0, order_status="Ship\x00ped")), 'order_status: "Ship', "status_events[0].order_status",
     '"Ship\\u0000ped" is not valid: expected the status label the event sets (1 to 100 characters, no control'),
    ("a stack URL whose port is not a number",
     setup_text(lambda d: d["stack"].update(url="postgresql://om:Db-Pa55word@db:five/stack")), "postgresql://",
     "stack.url", "'postgresql://om:********@db:five/stack' is not a database URL cartstatus can use"),
    ("$file secret not text",
     setup_text(_connector(password={"$file": ["a", "b"]})), ("$file", -1), "stores[0].connector.password",
     "$file needs a PATH written as text: {$file: PATH}"),
    ("a key repeated inside a store",
     SETUP_WITH_TWO_URLS, ("url: http://cart.test/other.php", 0), "stores[0].connector.url",
     "key 'url' on line 18 repeats line 17: keep one (a repeated key silently replaces the first)"),
    ("an alias inside itself",
     setup_text(lambda d: None) + "matrix: &m {extra: [*m]}\n", "matrix:", "matrix.extra[0]",
     "an alias refers to a value that contains it: write the values out"),
    ("a list as a key",
     setup_text(lambda d: None) + "? [a, b]\n: 1\n", "? [a, b]", "(top level)",
     "a key must be a plain value, not a list or a mapping"),
    ("nested too deep",
     setup_text(lambda d: None) + "matrix: " + "[" * 60 + "]" * 60 + "\n", "matrix:", "matrix" + "[0]" * 49,
     "nested deeper than 50 levels: flatten it"),
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

    with pytest.raises(OrderImportError) as caught:
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


# -- issue 8, findings 1, 5 and 6: each through the real command, one line, exit 2 ----------------

PG_PASSWORD = "Pg-Pa55word"


def refused(args: list[str], *pieces: str) -> str:
    """Run cartstatus; it must exit 2 with every piece on one line of its output, no traceback, no secret."""
    result = CliRunner().invoke(main, args)
    out = result.output
    assert result.exit_code == 2, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    assert SHOP_PASSWORD not in out and PG_PASSWORD not in out
    line = next((line for line in out.splitlines() if pieces[0] in line), "")
    for piece in pieces:
        assert piece in line, (piece, out)
    return line


def write(tmp_path: Path, content: str | bytes, name: str = "cartstatus.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def bomb(levels: int = 8) -> str:
    """The billion laughs under a store's ``connector:``: 9 ** levels values from a 600-byte file."""
    lines = ['      a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "stores:\n  - id: main\n    cart: seti\n    connector:\n" + "\n".join(lines) + "\n"


def test_finding_6_an_alias_bomb_is_one_line_in_milliseconds(tmp_path: Path) -> None:
    setup = write(tmp_path, bomb())
    started = time.perf_counter()
    line = refused(["--config", str(setup), "check"], f"{setup}:9: stores[0].connector.a4[0]: ",
                   "aliases here expand the file past 10,000 values (an alias bomb?): write the values out")
    # A guard against the blow-up, not a timing: loose enough for a loaded machine (it took over 60 s and 2 GB).
    assert time.perf_counter() - started < 5.0, line


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = setup_text(lambda d: None).replace("connector:\n", "connector: &shop\n").replace(
        "stack:\n", "- {id: second, cart: seti, connector: {<<: *shop, code: second}}\nstack:\n")
    second = load_config(write(tmp_path, text)).stores["second"]
    assert (second.connector["code"], second.connector["url"]) == ("second", "http://cart.test/seom.php")


def test_finding_6_a_repeated_key_names_both_lines_instead_of_dropping_a_store(tmp_path: Path) -> None:
    # The second ``stores:`` used to replace the first silently: store main vanished.
    text = setup_text(lambda d: None) + "stores:\n  - {id: outlet, cart: americart}\n"
    first = line_of(text, "stores:")
    second = len(text.splitlines()) - 1
    refused(["--config", str(write(tmp_path, text)), "check"], f"cartstatus.yaml:{second}: stores: ",
            f"key 'stores' on line {second} repeats line {first}: keep one")


def big_setup(size: int) -> str:
    """A setup file of about ``size`` bytes: many script-cart stores, all of them good."""
    stores = []
    total = 100
    while total < size - 300:
        n = len(stores)
        stores.append(f"  - id: store-{n}\n    cart: seti\n    connector:\n      url: https://shop-{n}.example.com/seom.php\n"
                      f"      user: om\n      password: {{$env: SHOP_PASSWORD}}\n      code: s{n}\n      timeout: 3\n")
        total += len(stores[-1])
    return "system: {UseStatusUpdates: true}\ncontroller: {lease_seconds: 5}\nstores:\n" + "".join(stores)


def test_finding_6_a_1_mb_file_is_refused_by_its_size_at_once(tmp_path: Path) -> None:
    setup = write(tmp_path, big_setup(1024 * 1024))
    started = time.perf_counter()
    refused(["--config", str(setup), "check"], f"{setup}: (file): ",
            "over 256 KiB, the most a setup file may be: check that this is the right file")
    assert time.perf_counter() - started < 3.0  # refused by its size, never parsed: it took 9 s to load


def test_a_big_setup_file_under_the_limit_loads_in_well_under_a_second(tmp_path: Path) -> None:
    from cartstatus.yamlfile import MAX_BYTES, load_yaml

    setup = write(tmp_path, big_setup(MAX_BYTES - 1024))
    started = time.perf_counter()
    data, _ = load_yaml(setup)
    assert time.perf_counter() - started < 3.0  # a guard against a quadratic load, loose enough for a loaded machine
    assert len(data["stores"]) > 1000
    assert CliRunner().invoke(main, ["--config", str(setup), "check"]).exit_code == 0


def test_finding_6_a_file_that_is_not_utf8_says_which_byte(tmp_path: Path) -> None:
    setup = write(tmp_path, b"system:\n  UseStatusUpdates: true\n# caf\xe9\n")
    refused(["--config", str(setup), "check"], f"{setup}:3: (file): ",
            "not UTF-8 text (byte 38, line 3); save it as UTF-8")


@pytest.mark.parametrize("value", [123, True, ["SHOP_PASSWORD"], ""])
def test_finding_6_an_env_secret_that_is_not_a_name(value: Any, tmp_path: Path) -> None:
    setup = write(tmp_path, setup_text(_connector(password={"$env": value})))
    refused(["--config", str(setup), "check"], "stores[0].connector.password: ",
            "$env needs a NAME written as text: {$env: NAME}")


def test_finding_6_a_file_secret_that_is_not_utf8(tmp_path: Path) -> None:
    secret = write(tmp_path, b"\xff\xfe" + SHOP_PASSWORD.encode("utf-16-le"), "shop-password.txt")
    setup = write(tmp_path, setup_text(_connector(password={"$file": secret.name})))
    refused(["--config", str(setup), "check"], f"{setup}:", "stores[0].connector.password: ",
            f"secret file {secret} is not UTF-8 text (byte 0, line 1); save it as UTF-8")


STACK_COMMANDS = [["stack", "status"], ["stack", "list"], ["stack", "retry", "--all-failed"],
                  ["stack", "purge-failed", "--yes"], ["orders", "show", "1001"], ["diagnose", "1001"],
                  ["fire", "Order Shipped", "1001"], ["controller", "--drain"]]


def test_finding_6_an_unreachable_postgresql_is_one_line_for_every_command(tmp_path: Path) -> None:
    url = f"postgresql://om:{PG_PASSWORD}@127.0.0.1:1/stack"
    setup = write(tmp_path, setup_text(lambda d: d["stack"].update(url=url)))
    csv_file = write(tmp_path, HEADER + GOOD, "orders.csv")
    for command in [*STACK_COMMANDS, ["orders", "import", str(csv_file)]]:
        refused(["--config", str(setup), *command],
                "error: cannot open the stack database postgresql://om:***@127.0.0.1:1/stack: ",
                "Connection refused",
                f"is the database server running and reachable? Check the host, port, user and password in "
                f"stack.url in {setup}")


def test_finding_6_an_unreachable_postgresql_from_a_real_process(tmp_path: Path) -> None:
    from .test_crash import cartstatus_command

    url = f"postgresql://om:{PG_PASSWORD}@127.0.0.1:1/stack"
    setup = write(tmp_path, setup_text(lambda d: d["stack"].update(url=url)))
    run = subprocess.run([*cartstatus_command(), "--config", str(setup), "stack", "status"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "SHOP_PASSWORD": SHOP_PASSWORD})
    assert run.returncode == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith("error: cannot open the stack database postgresql://om:***@127.0.0.1:1/stack: ")
    assert PG_PASSWORD not in run.stderr and "Traceback" not in run.stderr


def test_finding_6_a_sqlite_folder_that_does_not_exist(tmp_path: Path) -> None:
    setup = write(tmp_path, setup_text(lambda d: d["stack"].update(url="sqlite:///no/such/folder/stack.db")))
    for command in STACK_COMMANDS:
        refused(["--config", str(setup), *command],
                f"error: cannot open the stack database sqlite:///{tmp_path}/no/such/folder/stack.db: ",
                f"the folder {tmp_path}/no/such/folder does not exist: create it, or change stack.url in {setup}")
    assert not (tmp_path / "no").exists()


def test_a_stack_file_that_is_not_a_database(tmp_path: Path) -> None:
    setup = write(tmp_path, setup_text(lambda d: None))
    (tmp_path / "stack.db").write_text("order_number,store\n" * 100)
    refused(["--config", str(setup), "stack", "status"], "error: cannot open the stack database ",
            f"file is not a database; {tmp_path}/stack.db is not a SQLite database: point stack.url in {setup} "
            "at a stack file")


def test_finding_6_a_csv_field_over_the_csv_limit(engine: StatusEngine, tmp_path: Path) -> None:
    csv_file = write(tmp_path, HEADER + GOOD + "1002,main,New,C1002," + "x" * 131_073 + ",\n", "orders.csv")
    refused(["--config", str(engine.config.path), "orders", "import", str(csv_file)], f"{csv_file}:3: (row): ",
            "a field is longer than 131,072 characters, the most a CSV field may have: is this the right file?")
    with pytest.raises(OrderError):
        engine.show_order("1001")


@pytest.mark.parametrize(("kind", "message"), [("symlink loop", "cannot read: Too many levels of symbolic links"),
                                               ("directory", "cannot read: Is a directory")])
def test_finding_6_a_csv_path_that_is_not_a_file(kind: str, message: str, engine: StatusEngine,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    if kind == "symlink loop":
        path.symlink_to(tmp_path / "other.csv")
        (tmp_path / "other.csv").symlink_to(path)
    elif kind == "directory":
        path.mkdir()
    refused(["--config", str(engine.config.path), "orders", "import", str(path)], f"{path}: (file): ", message)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A setup file on a fresh SQLite stack or a fresh PostgreSQL database, with order 1001 imported."""
    with contextlib.ExitStack() as stack:
        url = "sqlite:///stack.db"
        if request.param == "postgresql":
            url = stack.enter_context(fresh_postgres_database())
        setup = write(tmp_path, setup_text(lambda d: d["stack"].update(url=url)))
        good = write(tmp_path, HEADER + GOOD, "good.csv")
        assert CliRunner().invoke(main, ["--config", str(setup), "orders", "import", str(good)]).exit_code == 0
        yield setup


def label_of(setup: Path, order: str) -> str | None:
    engine = StatusEngine(load_config(setup))
    try:
        label: str | None = engine.show_order(order)["status"]
        return label
    finally:
        engine.db.dispose()


# (CSV line 3, the field, the piece of the message): control characters and values longer than their column.
DIRTY_ROWS = [
    ("1002,main,Ne\x00w,C1002,,", "status", "contains the control character U+0000 at character 3: remove it"),
    ("10\x0002,main,New,C1002,,", "order_number", "contains the control character U+0000 at character 3"),
    ("1002,main,New,C1\x1b002,,", "cart_order_ref", "contains the control character U+001B at character 3"),
    ('1002,main,"New\nline",C1002,,', "status", "contains the control character U+000A at character 4"),
    ("1002,main,New\x7f,C1002,,", "status", "contains the control character U+007F at character 4"),
    ("1002,main,New,C1002," + "a" * 250 + "@example.com,", "email",
     "262 characters, more than the 254 it may have: shorten it"),
    ("1002,main," + "S" * 101 + ",C1002,,", "status", "101 characters, more than the 100 it may have"),
]


@pytest.mark.parametrize(("row", "field", "message"), DIRTY_ROWS, ids=[f"{f} {m[:40]}" for _, f, m in DIRTY_ROWS])
def test_finding_5_a_control_character_or_an_overlong_value_in_a_csv_is_refused(
    row: str, field: str, message: str, any_setup: Path, tmp_path: Path
) -> None:
    # A NUL imported on SQLite and then failed every send; PostgreSQL raised a traceback.
    csv_file = write(tmp_path, (HEADER + GOOD.replace("New", "Printed") + row + "\n").encode(), "orders.csv")
    refused(["--config", str(any_setup), "orders", "import", str(csv_file)], f"{csv_file}:3: {field}: ", message)
    assert label_of(any_setup, "1001") == "New"  # nothing from the file was written


@pytest.mark.parametrize(("args", "message"), [
    (["10\x0001"], "order number 1 ('10\\x0001'): contains the control character U+0000 at character 3"),
    (["1001", "1" * 65], "order number 2 ('11111111111111111111'...): 65 characters, more than the 64"),
    (["1001", "--note", "call\x00me"], "note: contains the control character U+0000 at character 5"),
    (["1001", "--note", "n" * 2001], "note: 2,001 characters, more than the 2000 it may have"),
    (["1001", "--tracking", "UPS:1Z\x00999"], "tracking 1 number: contains the control character U+0000"),
    (["1001", "--tracking", "U\x07PS:1Z999"], "tracking 1 carrier: contains the control character U+0007"),
    (["1001", "--store", "ma\x00in"], "store: contains the control character U+0000 at character 3"),
], ids=["NUL in an order number", "order number too long", "NUL in a note", "note too long",
        "NUL in a tracking number", "BEL in a carrier", "NUL in the store"])
def test_finding_5_a_control_character_at_fire_is_refused(args: list[str], message: str, any_setup: Path) -> None:
    refused(["--config", str(any_setup), "fire", "Order Shipped", *args], "error: nothing fired: ", message)
    assert label_of(any_setup, "1001") == "New"


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "1.0e+999"])
@pytest.mark.parametrize("field", ["controller.backoff_cap", "controller.lease_seconds", "stores[0].connector.timeout"])
def test_finding_5_inf_and_nan_are_refused_with_the_field(value: str, field: str, tmp_path: Path) -> None:
    key = field.rpartition(".")[2]
    text = setup_text(lambda d: None)
    text = re.sub(rf"^(\s*{key}:) .*$", rf"\1 {value}", text, count=1, flags=re.MULTILINE)
    setup = write(tmp_path, text)
    refused(["--config", str(setup), "check"], f"{setup}:{line_of(text, f'{key}: {value}')}: {field}: ",
            f"{value} is not a finite number: write a number")


def test_finding_5_an_unknown_cart_fails_check_naming_the_nearest_keys(tmp_path: Path) -> None:
    text = setup_text(lambda d: d["stores"].extend([
        {"id": "woo", "cart": "woocomerce"}, {"id": "square", "cart": "Square Space"},
        {"id": "paper", "cart": "papercart"}]))
    setup = write(tmp_path, text)
    # Loading takes it (issue 9 untangles the setup file from the matrix); check compares carts with the matrix.
    assert set(load_config(setup).stores) == {"main", "woo", "square", "paper"}
    out = CliRunner().invoke(main, ["--config", str(setup), "check"]).output
    refused(["--config", str(setup), "check"], f"{setup}:{line_of(text, 'cart: woocomerce')}: stores[1].cart: ",
            "'woocomerce' is not a key of the shopping-cart matrix, so nothing would be sent for store 'woo'; "
            "nearest in the matrix: woocommerce (see `cartstatus matrix list`)")
    refused(["--config", str(setup), "check"], f"{setup}:{line_of(text, 'cart: papercart')}: stores[3].cart: ",
            "'papercart' is not a key of the shopping-cart matrix", "nearest in the matrix: americart")
    assert "Square Space" not in out  # a cart's name or alias routes: not an error


def test_finding_1_a_timeout_that_cannot_fit_inside_the_lease_is_refused(tmp_path: Path) -> None:
    # The repro: a 300 s timeout against a 60 s lease passed check.
    text = setup_text(lambda d: (d["controller"].update(lease_seconds=60), _connector(timeout=300)(d)))
    setup = write(tmp_path, text)
    refused(["--config", str(setup), "check"],
            f"{setup}:{line_of(text, 'timeout: 300')}: stores[0].connector.timeout: ",
            "a timeout of 300 s cannot fit inside the lease: a send may last at most 55 s (controller.lease_seconds "
            "60 less a 5 s margin); lower it to 55 or less, or raise controller.lease_seconds to 305 or more")
    # No timeout given: the connector's own default (seti: 30 s) must fit too.
    text = setup_text(lambda d: (d["controller"].update(lease_seconds=10), _drop_connector_field("timeout")(d)))
    setup = write(tmp_path, text)
    refused(["--config", str(setup), "check"], f"{setup}:{line_of(text, 'cart: seti')}: stores[0].cart: ",
            "connector 'seti' times out after 30 s by default, which cannot fit inside the lease: a send may last "
            "at most 7.5 s (controller.lease_seconds 10 less a 2.5 s margin); set the store's connector timeout to "
            "7.5 or less, or raise controller.lease_seconds to 35 or more")
    # Either change is accepted.
    ok = setup_text(lambda d: d["controller"].update(lease_seconds=35))
    assert CliRunner().invoke(main, ["--config", str(write(tmp_path, ok)), "check"]).exit_code == 0


def test_a_database_lost_in_the_middle_of_a_command_is_one_line(engine: StatusEngine,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa
    from cartstatus.stack import Stack

    def locked(self: Stack) -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(Stack, "status", locked)
    db = engine.config.stack_url.removeprefix("sqlite:///")
    refused(["--config", str(engine.config.path), "stack", "status"],
            f"error: lost the stack database sqlite:///{db}: database is locked; check that {db} and its folder "
            f"can be read and written, or change stack.url in {engine.config.path}")
