"""The ``cartstatus`` command: help everywhere, JSON that parses, and each command doing its job."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from cartstatus import StatusEngine, load_config
from cartstatus.cli import main
from cartstatus.events import KNOWN_EVENTS
from cartstatus.outcomes import Failed
from click.testing import CliRunner, Result

from ..conftest import SHOP_PASSWORD, add_orders, base_setup
from .conftest import LiveCart, live_setup
from .test_crash import cartstatus_command


def all_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(all_commands())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "cartstatus" for p, _ in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help text"


def test_the_commands_the_issue_asks_for_exist() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"check", "events list", "events load-defaults", "orders import", "orders show", "fire",
            "stack status", "stack list", "stack retry", "stack purge-failed", "controller"} <= names


@pytest.fixture
def cli(write_setup: Callable[..., Path]) -> Callable[..., Result]:
    """Run cartstatus against the default setup file; check the exit status."""
    setup = write_setup()

    def run(*args: str, code: int = 0, input: str | None = None) -> Result:
        result = CliRunner().invoke(main, ["--config", str(setup), *args], input=input)
        assert result.exit_code == code, result.output
        return result

    return run


@pytest.fixture
def stocked(engine: StatusEngine) -> list[str]:
    return add_orders(engine, 3)


def test_version_and_config_from_the_environment(write_setup: Callable[..., Path]) -> None:
    assert "0.1.0" in CliRunner().invoke(main, ["--version"]).output
    setup = write_setup()
    result = CliRunner().invoke(main, ["check"], env={"CARTSTATUS_CONFIG": str(setup)})
    assert result.exit_code == 0, result.output
    assert "OK. UseStatusUpdates=True, 3 status events, 1 stores." in result.output


def test_events_list(cli: Callable[..., Result]) -> None:
    rows = json.loads(cli("events", "list", "--json").output)
    assert [r["event"] for r in rows] == list(KNOWN_EVENTS)
    shipped = next(r for r in rows if r["event"] == "Order Shipped")
    assert (shipped["defined"], shipped["order_status"], shipped["notify_cart"]) == (True, "Shipped", True)
    assert next(r for r in rows if r["event"] == "Backordered")["defined"] is False
    text = cli("events", "list").output
    assert "Order Shipped" in text and "(not defined)" in text


def test_events_load_defaults(write_setup: Callable[..., Path]) -> None:
    data = base_setup()
    del data["status_events"]
    setup = write_setup(data)
    runner = CliRunner()

    first = runner.invoke(main, ["--config", str(setup), "events", "load-defaults"])
    assert first.exit_code == 0, first.output
    config = load_config(setup)
    assert set(config.status_events) == set(KNOWN_EVENTS)
    assert config.status_events["Order Shipped"].notify_cart
    assert not config.status_events["Order Received"].notify_cart
    # The rest of the file is kept, the secret as a reference, never its value.
    assert config.stores["main"].connector["password"].reveal() == SHOP_PASSWORD
    assert SHOP_PASSWORD not in setup.read_text()
    assert yaml.safe_load(setup.read_text())["stores"][0]["connector"]["password"] == {"$env": "SHOP_PASSWORD"}

    again = runner.invoke(main, ["--config", str(setup), "events", "load-defaults"])
    assert again.exit_code == 1
    assert f"already defines {len(KNOWN_EVENTS)} status events; pass --force" in again.output
    forced = runner.invoke(main, ["--config", str(setup), "events", "load-defaults", "--force"])
    assert forced.exit_code == 0, forced.output


def test_events_load_defaults_makes_a_new_setup_file(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    result = CliRunner().invoke(main, ["--config", str(setup), "events", "load-defaults"])
    assert result.exit_code == 0, result.output
    config = load_config(setup)
    assert config.use_status_updates and len(config.status_events) == len(KNOWN_EVENTS)


def test_orders_show(cli: Callable[..., Result], engine: StatusEngine, stocked: list[str]) -> None:
    engine.fire_event(stocked[0], "Order Shipped", tracking=["UPS:1Z999"])
    info = json.loads(cli("orders", "show", stocked[0], "--json").output)
    assert (info["order_number"], info["store"], info["status"], info["cart_order_ref"]) == (
        stocked[0], "main", "Shipped", f"C{stocked[0]}")
    assert [(h["event"], h["from"], h["to"], h["route"]) for h in info["history"]] == [
        (None, None, "New", "imported"), ("Order Shipped", "New", "Shipped", "native")]
    [pending] = info["pending"]
    assert (pending["destination"], pending["status"], pending["state"], pending["attempts"]) == (
        "seti", "Shipped", "queued", 0)
    text = cli("orders", "show", stocked[0]).output
    assert "pending update" in text and "Shipped" in text
    assert "no update pending" in cli("orders", "show", stocked[1]).output
    assert "order 424242 is not known" in cli("orders", "show", "424242", code=1).output


def test_fire(cli: Callable[..., Result], engine: StatusEngine, stocked: list[str]) -> None:
    results = json.loads(cli("fire", "Order Shipped", *stocked, "--tracking", "UPS:1Z1", "--tracking",
                             "FedEx:7712", "--note", "two boxes", "--json").output)
    assert [(r["order_number"], r["changed"], r["route"], r["to_status"]) for r in results] == [
        (n, True, "native", "Shipped") for n in stocked]
    assert all(r["idempotency_key"] for r in results)
    [record, *_] = engine.stack.records()
    assert [(t.carrier, t.number) for t in record.update.tracking] == [("UPS", "1Z1"), ("FedEx", "7712")]
    assert record.update.note == "two boxes"

    text = cli("fire", "Order Shipped", stocked[0]).output
    assert "no change" in text and "nothing changed, nothing queued (rule 4)" in text
    assert "1 orders: 0 changed, 0 updates queued" in text
    unknown = cli("fire", "Order Cancelled", stocked[0], "31337", code=1).output
    assert "order 31337 is not known" in unknown
    assert "2 orders: 1 changed, 1 updates queued" in unknown
    assert "must be CARRIER:NUMBER" in cli("fire", "Order Shipped", stocked[1], "--tracking", "1Z1", code=2).output
    assert "not a known status event" in cli("fire", "Order Teleported", stocked[1], code=2).output


def test_fire_at_many_orders_shows_progress(cli: Callable[..., Result], engine: StatusEngine) -> None:
    numbers = add_orders(engine, 2000)
    result = cli("fire", "Order Shipped", *numbers)
    assert "firing" in result.output
    assert "2000 orders: 2000 changed, 2000 updates queued on the stack" in result.output
    assert engine.stack.count() == 2000


def _park(engine: StatusEngine, numbers: list[str]) -> list[int]:
    engine.fire("Order Shipped", numbers)
    claimed = engine.stack.claim("test", 100, 60)
    engine.stack.settle(park=[(r, Failed("cart said no").reason) for r in claimed])
    return [r.id for r in claimed]


def test_stack_status_and_list(cli: Callable[..., Result], engine: StatusEngine, stocked: list[str]) -> None:
    empty = json.loads(cli("stack", "status", "--json").output)
    assert (empty["records"], empty["controller_running"], empty["oldest_age_seconds"]) == (0, False, None)
    assert "the stack is empty" in cli("stack", "list").output

    [parked] = _park(engine, stocked[:1])
    engine.fire("Order Shipped", stocked[1:])
    status = json.loads(cli("stack", "status", "--json").output)
    assert (status["records"], status["queued"], status["parked"], status["failures"]) == (3, 2, 1, 1)
    assert status["oldest_age_seconds"] >= 0
    text = cli("stack", "status").output
    assert "3 records on the stack (2 queued, 0 waiting to retry, 0 in flight, 1 failed and parked)" in text
    assert "no stack controller is running" in text and "1 failures" in text

    listed = json.loads(cli("stack", "list", "--json").output)
    assert [(r["order"], r["state"], r["attempts"], r["last_error"]) for r in listed] == [
        (stocked[0], "parked", 1, "cart said no"), (stocked[1], "queued", 0, None), (stocked[2], "queued", 0, None)]
    only_parked = json.loads(cli("stack", "list", "--state", "parked", "--json").output)
    assert [r["id"] for r in only_parked] == [parked]
    text = cli("stack", "list").output  # a table: a long cell may wrap onto two lines
    assert "parked" in text and "said no" in text
    assert len(json.loads(cli("stack", "list", "--limit", "1", "--json").output)) == 1


def test_stack_retry_and_purge_failed(cli: Callable[..., Result], engine: StatusEngine, stocked: list[str]) -> None:
    ids = _park(engine, stocked)
    assert "give record IDs or --all-failed" in cli("stack", "retry", code=2).output
    assert "give record IDs or --all-failed" in cli("stack", "retry", str(ids[0]), "--all-failed", code=2).output

    assert "1 parked records queued again" in cli("stack", "retry", str(ids[0])).output
    assert f"not parked records: {ids[0]}" in cli("stack", "retry", str(ids[0]), code=1).output
    assert engine.stack.status().parked == 2

    declined = cli("stack", "purge-failed", input="n\n", code=1)
    assert "delete 2 parked records?" in declined.output
    assert engine.stack.status().parked == 2
    assert "2 parked records deleted" in cli("stack", "purge-failed", "--yes").output
    assert [r.id for r in engine.stack.records()] == [ids[0]]

    (again,) = engine.stack.claim("test", 100, 60)
    engine.stack.settle(park=[(again, "again")])
    assert "1 parked records queued again" in cli("stack", "retry", "--all-failed").output


def test_controller_drain_delivers_everything(tmp_path: Path, live_cart: LiveCart) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(yaml.safe_dump(live_setup(live_cart), sort_keys=False))
    engine = StatusEngine(load_config(setup))
    try:
        numbers = add_orders(engine, 5)
        engine.fire("Order Shipped", numbers, tracking=["UPS:1Z1", "USPS:9400"])
        result = CliRunner().invoke(main, ["--config", str(setup), "controller", "--drain"])
        assert result.exit_code == 0, result.output
        assert "delivered 5, rescheduled 0, parked 0" in result.output
        assert engine.stack.count() == 0
        assert not engine.stack.status().controller_running
    finally:
        engine.db.dispose()
    received = live_cart.simulator.received
    assert sorted(r.refnumber for r in received) == numbers
    assert received[0].tracking == [("UPS", "1Z1", ""), ("USPS", "9400", "")]
    assert received[0].fields["trackcount"] == "2"


def test_controller_runs_until_stopped(tmp_path: Path, live_cart: LiveCart) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(yaml.safe_dump(live_setup(live_cart), sort_keys=False))
    engine = StatusEngine(load_config(setup))
    proc = subprocess.Popen([*cartstatus_command(), "--config", str(setup), "controller"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        give_up = time.monotonic() + 30
        while not engine.stack.status().controller_running:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < give_up, "no heartbeat"
            time.sleep(0.05)
        # Records fired while it runs are picked up without restarting it.
        numbers = add_orders(engine, 3)
        engine.fire("Order Shipped", numbers)
        while engine.stack.count():
            assert time.monotonic() < give_up, "not delivered"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        assert proc.returncode == 0, output
        assert "delivered 3, rescheduled 0, parked 0" in output
        assert not engine.stack.status().controller_running  # signed off
        assert sorted(r.refnumber for r in live_cart.simulator.received) == numbers
    finally:
        engine.db.dispose()
