"""Loading plugins: entry points, CARTSTATUS_LOAD_PLUGINS, broken plugins, the hooks, ``cartstatus plugins``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cartstatus import StackController, StatusEngine, plugins
from cartstatus.cli import main
from cartstatus.connectors.oss import OssConnector
from cartstatus.connectors.seti import SetiConnector
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.hookspecs import hookimpl
from click.testing import CliRunner

from ..conftest import add_orders
from .conftest import Hooks

GOOD = """
from cartstatus import Connector, Delivered, hookimpl

class GoodConnector(Connector):
    name = "goodcart"
    settings_schema = {"type": "object"}

    async def send(self, update):
        return Delivered()

@hookimpl
def register_connectors(register):
    register(GoodConnector)

ROW = {"key": "goodcart", "name": "Good Cart", "updates": "native_api", "connector": "goodcart",
       "capabilities": {"tracking_numbers": False, "inventory": False}, "caveats": [],
       "sources": ["https://example.com/goodcart"], "verified": "2026-01-01"}

@hookimpl
def register_matrix_rows(register):
    register(ROW)
"""

BROKEN_IMPORT = """
import no_such_module_anywhere
"""

RAISES_IN_REGISTER = """
from cartstatus import hookimpl

@hookimpl
def register_connectors(register):
    raise RuntimeError("the plugin's own bug")
"""

GARBAGE = """
from cartstatus import Connector, Delivered, hookimpl

class Nameless(Connector):
    async def send(self, update):
        return Delivered()

class Lazy(Connector):
    name = "lazycart"

class BadSchema(Connector):
    name = "badschema"
    settings_schema = {"type": "no-such-type"}

    async def send(self, update):
        return Delivered()

class Impostor(Connector):
    name = "seti"

    async def send(self, update):
        return Delivered()

class Fine(Connector):
    name = "finecart"

    async def send(self, update):
        return Delivered()

@hookimpl
def register_connectors(register):
    register(42)
    register(dict)
    register(Nameless)
    register(Lazy)
    register(BadSchema)
    register(Impostor)
    register(Fine)

@hookimpl
def register_matrix_rows(register):
    register("not a row")
    register({"name": "no key"})
    register({"key": "finecart"})
"""

TYPO_HOOK = """
from cartstatus import hookimpl

@hookimpl
def register_conectors(register):
    pass
"""

BAD_SIGNATURE = """
from cartstatus import hookimpl

@hookimpl
def register_connectors(register, not_an_argument):
    pass
"""


def install_zoo(fake_plugins: Callable[..., None]) -> None:
    fake_plugins("cs-good", {"cs_good": GOOD}, {"good": "cs_good"}, version="2.5")
    fake_plugins("cs-broken", {"cs_broken": BROKEN_IMPORT}, {"broken": "cs_broken"})
    fake_plugins("cs-raises", {"cs_raises": RAISES_IN_REGISTER}, {"raises": "cs_raises"})
    fake_plugins("cs-garbage", {"cs_garbage": GARBAGE}, {"garbage": "cs_garbage"})
    fake_plugins("cs-typo", {"cs_typo": TYPO_HOOK}, {"typo": "cs_typo"})
    fake_plugins("cs-badsig", {"cs_badsig": BAD_SIGNATURE}, {"badsig": "cs_badsig"})


def errors_by_plugin() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for err in plugins.state.errors:
        found.setdefault(err.name, []).append(err.error)
    return found


#: The built-in connectors' names, in registration order (each plugin module is connectors/<name>/plugin.py).
BUILTIN = [module.split(".")[2] for module in plugins.CONNECTOR_PLUGINS]


def with_builtins(*names: str) -> list[str]:
    return sorted([*names, *BUILTIN])


def test_builtins_register_through_the_same_hooks(fresh_plugins: None) -> None:
    connectors = plugins.get_connectors()
    assert list(connectors) == BUILTIN and {"seti", "oss", "woocommerce"} <= set(BUILTIN)
    assert (connectors["seti"], connectors["oss"]) == (SetiConnector, OssConnector)
    assert plugins.get_connector_plugins()[:2] == [("cartstatus.connectors.seti.plugin", SetiConnector),
                                                   ("cartstatus.connectors.oss.plugin", OssConnector)]
    assert [module for module, _ in plugins.get_connector_plugins()] == list(plugins.CONNECTOR_PLUGINS)
    assert plugins.state.errors == []


def test_broken_plugins_do_not_stop_the_others(fake_plugins: Callable[..., None]) -> None:
    install_zoo(fake_plugins)
    connectors = plugins.get_connectors()
    # The good plugin, the good part of the garbage plugin and the built-in all load.
    assert sorted(connectors) == with_builtins("finecart", "goodcart")
    assert connectors["seti"] is SetiConnector  # an impostor never replaces a built-in
    # Rows go to the matrix loader as given: it checks them against matrix/schema.json and reports.
    rows = [(p, r) for p, r in plugins.get_matrix_rows()]
    assert [p for p, _ in rows] == ["cs-garbage", "cs-garbage", "cs-garbage", "cs-good"]
    assert rows[0][1] == "not a row" and rows[3][1]["key"] == "goodcart"
    errors = errors_by_plugin()
    assert "cs-good" not in errors
    assert errors["cs-broken"] == ["ModuleNotFoundError: No module named 'no_such_module_anywhere'"]
    assert errors["cs-raises"] == ["register_connectors: RuntimeError: the plugin's own bug"]
    garbage = "\n".join(errors["cs-garbage"])
    for expected in ("42 is not a Connector subclass", "dict'> is not a Connector subclass",
                     "Nameless.name is ''", "Lazy does not implement send()",
                     "BadSchema.settings_schema is not a valid JSON Schema",
                     "connector 'seti' is already registered by cartstatus.connectors.seti.plugin"):
        assert expected in garbage
    assert len(errors["cs-garbage"]) == 6
    assert errors["cs-typo"] == [
        "implements register_conectors(), which is not a cartstatus hook (the hooks are: register_commands, "
        "register_connectors, register_matrix_rows, update_delivered, update_parked)"]
    assert "PluginValidationError" in errors["cs-badsig"][0]
    assert "not_an_argument" in errors["cs-badsig"][0]


def test_errors_are_reported_once_however_often_asked(fake_plugins: Callable[..., None]) -> None:
    install_zoo(fake_plugins)
    for _ in range(3):
        plugins.get_connectors()
        plugins.get_matrix_rows()
    assert len(errors_by_plugin()["cs-raises"]) == 1


@pytest.mark.parametrize(("value", "expected"), [
    ("good", with_builtins("goodcart")),  # an entry-point name
    ("CS_Good", with_builtins("goodcart")),  # a distribution name, spelt any PEP 503 way
    ("", with_builtins()),  # empty: no third-party plugin; the built-ins still load
    ("cs-good, garbage", with_builtins("finecart", "goodcart")),
])
def test_load_plugins_env_limits_what_loads(fake_plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch,
                                            value: str, expected: list[str]) -> None:
    install_zoo(fake_plugins)
    monkeypatch.setenv(plugins.LOAD_ENV, value)
    assert sorted(plugins.get_connectors()) == expected
    assert "cs-broken" not in errors_by_plugin()  # not asked for, so not even imported


def test_load_plugins_env_names_a_missing_plugin(fake_plugins: Callable[..., None],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    install_zoo(fake_plugins)
    monkeypatch.setenv(plugins.LOAD_ENV, "good,cs-nowhere")
    assert sorted(plugins.get_connectors()) == with_builtins("goodcart")
    assert errors_by_plugin()["cs-nowhere"] == [
        "named in CARTSTATUS_LOAD_PLUGINS but no installed plugin has that name"]


def test_plugins_command_lists_plugins_and_errors(fake_plugins: Callable[..., None]) -> None:
    install_zoo(fake_plugins)
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 1, result.output  # some plugins are broken
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert listed["cs-good"] == {
        "name": "cs-good", "entry_point": "good", "version": "2.5", "builtin": False, "loaded": True,
        "hooks": ["register_connectors", "register_matrix_rows"], "connectors": ["goodcart"],
        "matrix_rows": ["goodcart"], "errors": []}
    seti = listed["cartstatus.connectors.seti.plugin"]
    assert (seti["builtin"], seti["connectors"], seti["errors"]) == (True, ["seti"], [])
    assert listed["cs-broken"]["loaded"] is False
    assert listed["cs-broken"]["errors"] == ["ModuleNotFoundError: No module named 'no_such_module_anywhere'"]
    garbage = listed["cs-garbage"]
    assert garbage["connectors"] == ["finecart"] and garbage["matrix_rows"] == ["finecart"]
    # Six refused connectors, and the matrix loader's word on its three bad rows (a field at a time).
    assert len([e for e in garbage["errors"] if e.startswith("register_connectors: ")]) == 6
    row_errors = [e for e in garbage["errors"] if e.startswith("register_matrix_rows: ")]
    assert "register_matrix_rows: (row): expected a mapping, got str" in row_errors
    assert "register_matrix_rows: (top level): 'key' is a required property: add it" in row_errors
    assert "register_matrix_rows: (top level): 'name' is a required property: add it" in row_errors
    assert listed["cs-raises"]["connectors"] == [] and listed["cs-raises"]["loaded"] is True

    table = CliRunner().invoke(main, ["plugins"], env={"COLUMNS": "300"})
    assert table.exit_code == 1
    for text in ("cs-good", "2.5", "goodcart", "cs-broken", "no_such_module_anywhere", "(built-in)"):
        assert text in table.output


def test_plugins_command_exits_0_when_all_is_well(fresh_plugins: None) -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0
    assert [p["connectors"] for p in json.loads(result.output)] == [[name] for name in BUILTIN]


def test_plugins_all_lists_the_builtin_command_plugins(fresh_plugins: None) -> None:
    result = CliRunner().invoke(main, ["plugins", "--all", "--json"])
    assert result.exit_code == 0
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert {name: p["hooks"] for name, p in listed.items() if name in plugins.COMMAND_PLUGINS} == {
        name: ["register_commands"] for name in plugins.COMMAND_PLUGINS}
    assert all(p["builtin"] and not p["errors"] for p in listed.values())


# -- one test per hook (tests/core/test_hook_docs.py checks every hook has one) --


def test_hook_register_connectors_gives_routing_its_connector(fake_plugins: Callable[..., None],
                                                              write_setup: Callable[..., Any]) -> None:
    from cartstatus import load_config, route_for_store

    fake_plugins("cs-good", {"cs_good": GOOD}, {"good": "cs_good"})
    from tests.conftest import base_setup

    data = base_setup()
    data["stores"].append({"id": "g", "cart": "goodcart", "connector": {}})
    data["controller"]["lease_seconds"] = 60  # goodcart's 30 s default timeout must fit inside the lease
    route = route_for_store(load_config(write_setup(data)).stores["g"])
    assert (route.kind, route.connector) == ("native", "goodcart")


def test_hook_register_matrix_rows_rows_are_copies(fake_plugins: Callable[..., None]) -> None:
    fake_plugins("cs-good", {"cs_good": GOOD}, {"good": "cs_good"})
    rows = plugins.get_matrix_rows()
    rows[0][1]["key"] = "changed by a caller"
    assert plugins.get_matrix_rows()[0][1]["key"] == "goodcart"


ADDS_A_COMMAND = """
import click
from cartstatus import hookimpl

@click.command("hello")
def hello():
    '''Say hello.'''
    click.echo("hello from a plugin")

@hookimpl
def register_commands(cli):
    cli.add_command(hello)
"""

RAISES_IN_COMMANDS = """
import click
from cartstatus import hookimpl

@click.command("half")
def half():
    click.echo("half a registration")

@hookimpl
def register_commands(cli):
    cli.add_command(half)
    raise RuntimeError("the plugin's own bug")
"""

TAKES_FIRE = """
import click
from cartstatus import hookimpl

@click.command("fire")
def fire():
    click.echo("hijacked")

@click.command("extra")
def extra():
    click.echo("extra")

@hookimpl
def register_commands(cli):
    cli.add_command(extra)
    cli.add_command(fire)
"""


def test_hook_register_commands_a_broken_plugin_is_reported_and_the_cli_still_works(
        fake_plugins: Callable[..., None], tmp_path: Any) -> None:
    fake_plugins("cs-hello", {"cs_hello": ADDS_A_COMMAND}, {"hello": "cs_hello"})
    fake_plugins("cs-cmd-bug", {"cs_cmd_bug": RAISES_IN_COMMANDS}, {"cmdbug": "cs_cmd_bug"})
    fake_plugins("cs-takes-fire", {"cs_takes_fire": TAKES_FIRE}, {"takesfire": "cs_takes_fire"})
    runner = CliRunner()

    hello = runner.invoke(main, ["hello"])
    assert (hello.exit_code, hello.output) == (0, "hello from a plugin\n")
    usage = runner.invoke(main, ["--help"])
    assert usage.exit_code == 0
    for command in ("check", "fire", "controller", "matrix", "diagnose", "plugins", "new-connector", "hello"):
        assert f"  {command} " in usage.output, command
    # What a broken plugin added is taken back, all of it: nothing half-registered, no built-in replaced.
    for command in ("half", "extra"):
        assert "No such command" in runner.invoke(main, [command]).output
    fire = runner.invoke(main, ["--config", str(tmp_path / "none.yaml"), "fire", "Order Shipped", "1001"])
    assert fire.exit_code == 2 and "hijacked" not in fire.output and "no such setup file" in fire.output
    assert runner.invoke(main, ["matrix", "check", "seti"]).exit_code == 0

    listing = runner.invoke(main, ["plugins", "--json"])
    assert listing.exit_code == 1
    listed = {p["name"]: p for p in json.loads(listing.output)}
    assert (listed["cs-hello"]["hooks"], listed["cs-hello"]["errors"]) == (["register_commands"], [])
    assert listed["cs-cmd-bug"]["errors"] == ["register_commands: RuntimeError: the plugin's own bug"]
    assert listed["cs-takes-fire"]["errors"] == [
        "register_commands: command 'fire' is already taken, so none of this plugin's commands are added; "
        "rename it"]


class BrokenObserver:
    @hookimpl
    def update_delivered(self, record: Any) -> None:
        raise RuntimeError("observer bug")

    @hookimpl
    def update_parked(self, reason: str) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
def observers(fresh_plugins: None) -> Any:
    watch, broken = Hooks(), BrokenObserver()
    plugins.pm.register(broken, name="broken-observer")
    plugins.pm.register(watch, name="observer")
    yield watch
    plugins.pm.unregister(name="observer")
    plugins.pm.unregister(name="broken-observer")


async def test_hook_update_delivered_and_update_parked_hear_the_controller(
        engine: StatusEngine, simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport,
        observers: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    simulator.accept_unknown = False
    numbers = add_orders(engine, 2)
    simulator.add_order(f"C{numbers[0]}")  # the cart knows the first order only: the second is refused
    engine.fire("Order Shipped", numbers)
    stats = await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)
    # A broken observer is logged; the other observer and the controller carry on.
    assert (stats.delivered, stats.parked) == (1, 1)
    assert [(n, type(o).__name__) for n, o in observers.delivered] == [(numbers[0], "Delivered")]
    assert observers.parked == [(numbers[1], f"the cart refused the update: Order C{numbers[1]} could not be found")]
    assert caplog.text.count("raised in update_") == 2


def test_hook_update_parked_observer_receives_only_its_arguments(observers: Hooks) -> None:
    class Record:
        order_number = "1001"

    plugins.notify_parked(Record(), "a reason")
    plugins.notify_delivered(Record(), object())
    assert observers.parked == [("1001", "a reason")]
    assert [(n, type(o).__name__) for n, o in observers.delivered] == [("1001", "object")]
