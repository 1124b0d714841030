"""``diagnose``: for one order, which of the six rules fails, and how to fix it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.cli import main
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.diagnose import Diagnosis, diagnose
from cartstatus.engine import OrderError
from click.testing import CliRunner

from ..conftest import add_orders, base_setup


def _engine(write_setup: Callable[..., Path], **overrides: object) -> StatusEngine:
    return StatusEngine(load_config(write_setup(base_setup(**overrides))))


def statuses(engine: StatusEngine, number: str) -> list[str]:
    return [c.status for c in diagnose(engine.config, engine, number).checks]


async def test_delivered_update_passes_every_rule(engine: StatusEngine,
                                                  sim_transport: httpx.AsyncBaseTransport) -> None:
    (number,) = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")
    await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)
    found = diagnose(engine.config, engine, number)
    assert [c.status for c in found.checks] == ["pass"] * 6
    assert found.failing is None and found.summary.startswith("All six rules hold")
    assert "delivered" in found.checks[5].detail



def failing_at(engine: StatusEngine, number: str, rule: int, detail: str = "", fix: str = "") -> Diagnosis:
    """Diagnose ``number``: the first failing rule is ``rule``, saying ``detail`` and telling ``fix``."""
    found = diagnose(engine.config, engine, number)
    assert found.failing is not None and found.failing.rule == rule, found.checks
    assert detail in found.failing.detail and fix in (found.failing.fix or "")
    return found


def test_rule_1_cart_without_route(write_setup: Callable[..., Path]) -> None:
    engine = _engine(write_setup, stores=[{"id": "main", "cart": "americart"}])
    try:
        (number,) = add_orders(engine, 1)
        engine.fire_event(number, "Order Shipped")
        found = failing_at(engine, number, 1, "Americart cannot take status updates", "subscribe the store to the OSS")
        assert found.checks[4].status == "fail" and "rule 1 at the time" in found.checks[4].detail
        assert found.summary.startswith("Rule 1 fails:")
    finally:
        engine.db.dispose()


def test_rule_1_unknown_cart_says_so(write_setup: Callable[..., Path]) -> None:
    engine = _engine(write_setup, stores=[{"id": "main", "cart": "woocomerce"}])
    try:
        (number,) = add_orders(engine, 1)
        failing_at(engine, number, 1, "not in the shopping-cart matrix", "matrix check")
    finally:
        engine.db.dispose()


def test_rule_2_use_status_updates_off(write_setup: Callable[..., Path]) -> None:
    engine = _engine(write_setup, system={"UseStatusUpdates": False})
    try:
        (number,) = add_orders(engine, 1)
        engine.fire_event(number, "Order Shipped")
        found = diagnose(engine.config, engine, number)
        assert found.failing is not None and found.failing.rule == 2
        assert "UseStatusUpdates: true" in (found.failing.fix or "")
    finally:
        engine.db.dispose()


def test_rule_3_event_without_notify_cart(engine: StatusEngine) -> None:
    (number,) = add_orders(engine, 1)
    engine.fire_event(number, "Invoice Printed")  # sets Printed, Notify Cart unchecked
    found = diagnose(engine.config, engine, number)
    assert found.failing is not None and found.failing.rule == 3
    assert "'Invoice Printed' sets 'Printed' but does not have Notify Cart checked" in found.failing.detail
    assert "rule 3 at the time" in found.checks[4].detail


def test_rule_3_no_event_sets_the_label(engine: StatusEngine) -> None:
    (number,) = add_orders(engine, 1, status="On Hold")
    found = diagnose(engine.config, engine, number)
    assert found.failing is not None and found.failing.rule == 3
    assert "no status event sets the label 'On Hold'" in found.failing.detail


def test_rule_4_label_imported_not_changed(engine: StatusEngine) -> None:
    (number,) = add_orders(engine, 1, status="Shipped")
    engine.fire_event(number, "Order Shipped")  # same label: nothing changes, nothing queued
    found = diagnose(engine.config, engine, number)
    assert found.failing is not None and found.failing.rule == 4
    assert statuses(engine, number)[:3] == ["pass", "pass", "pass"]
    assert statuses(engine, number)[4:] == ["skip", "skip"]


def test_rule_5_no_controller_then_a_heartbeat(engine: StatusEngine) -> None:
    (number,) = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")
    failing_at(engine, number, 5, "no stack controller is running", "cartstatus controller")
    engine.stack.beat("test-worker", "local", 0, time.time())
    found = diagnose(engine.config, engine, number)
    assert found.failing is None
    assert [c.status for c in found.checks] == ["pass"] * 5 + ["wait"]
    assert "test-worker" in found.checks[4].detail and "not arrived" in found.summary


async def test_rule_6_refused_update_is_parked_with_its_error(engine: StatusEngine, simulator: SetiSimulator,
                                                              sim_transport: httpx.AsyncBaseTransport) -> None:
    (number,) = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")
    simulator.fail_next("refuse")
    await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)
    found = diagnose(engine.config, engine, number)
    assert found.failing is not None and found.failing.rule == 6
    record_id = engine.stack.records()[0].id
    assert "parked" in found.failing.detail and "refused" in found.failing.detail
    assert f"cartstatus stack retry {record_id}" in (found.failing.fix or "")


def test_unknown_and_ambiguous_orders(engine: StatusEngine) -> None:
    with pytest.raises(OrderError, match="not known"):
        diagnose(engine.config, engine, "99999")


def test_cli_diagnose(write_setup: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_setup()
    monkeypatch.chdir(path.parent)
    engine = StatusEngine(load_config(path))
    (number,) = add_orders(engine, 1)
    engine.fire_event(number, "Invoice Printed")
    engine.db.dispose()
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(path), "diagnose", number])
    assert result.exit_code == 1, result.output
    assert "FAIL rule 3" in result.output and "Rule 3 fails" in result.output
    data = json.loads(runner.invoke(main, ["--config", str(path), "diagnose", number, "--json"]).output)
    assert data["failing_rule"] == 3 and [c["rule"] for c in data["checks"]] == [1, 2, 3, 4, 5, 6]
    result = runner.invoke(main, ["--config", str(path), "diagnose", "424242"])
    assert result.exit_code == 2 and "not known" in result.output
