"""The example third-party plugin, pip-installed: discovered, listed, in the matrix, routed to, delivered to."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cartstatus import StackController, StatusEngine, load_config, plugins, route_for_store
from cartstatus.cli import main
from cartstatus.routing import cart_matrix
from cartstatus.testing import ConnectorConformance
from click.testing import CliRunner

from ..conftest import base_setup
from .conftest import ROOT

ACME_PASSWORD = "acme-Live-Pass-4242"


def acme_setup() -> dict[str, Any]:
    data = base_setup()
    data["stores"].append({
        "id": "acme", "cart": "acmecart",
        "connector": {"base_url": "http://acme.test/api/v1", "username": "om-admin",
                      "password": {"$env": "ACME_PASSWORD"}, "timeout": 3},
        "status_map": {"Shipped": "shipped", "Cancelled": "cancelled"},
    })
    return data


def test_the_example_is_discovered_through_its_entry_point(acmecart_installed: Path) -> None:
    from cartstatus_acmecart import AcmeCartConnector

    assert plugins.get_connectors()["acmecart"] is AcmeCartConnector
    assert ("cartstatus-acmecart", AcmeCartConnector) in plugins.get_connector_plugins()
    assert plugins.state.errors == []


def test_the_example_is_listed_by_cartstatus_plugins(acmecart_installed: Path) -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.output)}
    assert listed["cartstatus-acmecart"] == {
        "name": "cartstatus-acmecart", "entry_point": "acmecart", "version": "0.4.0", "builtin": False,
        "loaded": True, "hooks": ["register_connectors", "register_matrix_rows"], "connectors": ["acmecart"],
        "matrix_rows": ["acmecart"], "errors": []}


def test_the_example_registers_its_matrix_row(acmecart_installed: Path) -> None:
    rows = {row["key"]: (plugin, row) for plugin, row in plugins.get_matrix_rows()}
    plugin, row = rows["acmecart"]
    assert plugin == "cartstatus-acmecart"
    assert (row["connector"], row["updates"]) == ("acmecart", "native_api")
    # The matrix takes it: valid against matrix/schema.json, no collision, and support can look it up.
    matrix = cart_matrix()
    assert [p for p in matrix.problems if "acmecart" in str(p.path)] == []
    cart = matrix.get("acmecart")
    assert cart is not None and cart.connector == "acmecart"
    assert cart.status_vocabulary is not None
    assert list(cart.status_vocabulary) == ["pending", "processing", "shipped", "delivered", "cancelled"]
    check = CliRunner().invoke(main, ["matrix", "check", "acme commerce"], env={"COLUMNS": "300"})
    assert check.exit_code == 0, check.output  # 0: takes updates directly
    assert "AcmeCart" in check.output


def test_the_example_is_left_out_by_cartstatus_load_plugins(acmecart_installed: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.LOAD_ENV, "")
    assert "acmecart" not in plugins.get_connectors()
    plugins.reset_plugins()
    monkeypatch.setenv(plugins.LOAD_ENV, "cartstatus-acmecart")
    assert "acmecart" in plugins.get_connectors()


async def test_an_update_is_routed_to_the_example_and_delivered(
        acmecart_installed: Path, write_setup: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from cartstatus_acmecart import AcmeCartSimulator

    monkeypatch.setenv("ACME_PASSWORD", ACME_PASSWORD)
    config = load_config(write_setup(acme_setup()))
    route = route_for_store(config.stores["acme"])
    assert (route.kind, route.connector) == ("native", "acmecart")

    engine = StatusEngine(config)
    try:
        engine.upsert_orders([{"order_number": n, "store": "acme", "status": "New", "cart_order_ref": f"A{n}"}
                              for n in ("501", "502")])
        results = engine.fire("Order Shipped", ["501", "502"], tracking=["UPS:1Z999AA10123456784"], store="acme")
        assert all(r.queued for r in results)
        assert [r.destination for r in engine.stack.records()] == ["acmecart", "acmecart"]

        cart = AcmeCartSimulator(password=ACME_PASSWORD)
        cart.add_order("A501")
        cart.add_order("A502")
        cart.fail_next("http_503")  # one transient fault on the way (the first login): retried, then delivered
        controller = StackController(config, engine.stack, transport=httpx.ASGITransport(app=cart.app()))
        stats = await controller.run(drain=True)
    finally:
        engine.db.dispose()
    assert (stats.delivered, stats.parked, stats.rescheduled) == (2, 0, 1)
    assert engine.stack.count() == 0
    # One connector for the store for the controller's run: after the 503, one login served both records.
    assert cart.logins == 1
    for ref in ("A501", "A502"):
        assert cart.order_state(ref) == {
            "status": "shipped",
            "shipments": [{"carrier": "UPS", "tracking_number": "1Z999AA10123456784", "ship_date": None}]}


def test_the_examples_own_tests_pass_against_the_installed_package(acmecart_site: Path, tmp_path: Path) -> None:
    """Its kit line and plugin tests, in a fresh interpreter that finds it only through the pip install."""
    # The tests alone, away from the source tree, so that only the installed package can be imported.
    shutil.copytree(ROOT / "examples" / "cartstatus-acmecart" / "tests", tmp_path / "tests")
    env = {**os.environ, "PYTHONPATH": str(acmecart_site)}
    env.pop(plugins.LOAD_ENV, None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every check of the kit (the login and partial-delivery checks included) and its two plugin tests.
    checks = [name for name in dir(ConnectorConformance) if name.startswith("test_")]
    assert re.search(rf"\b{len(checks) + 2} passed", result.stdout), result.stdout


def test_a_fresh_process_lists_the_example(acmecart_site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(acmecart_site), "COLUMNS": "300"}
    env.pop(plugins.LOAD_ENV, None)
    result = subprocess.run([str(Path(sys.executable).parent / "cartstatus"), "plugins"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cartstatus-acmecart" in result.stdout and "acmecart" in result.stdout
