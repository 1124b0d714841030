"""Shared fixtures: a setup file, an engine on a fresh SQLite stack, the script simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cartstatus import StatusEngine, load_config
from cartstatus.config import Config
from cartstatus.connectors.seti.simulator import SetiSimulator

SHOP_PASSWORD = "s3cret-Shop-Pass"


def base_setup(**overrides: Any) -> dict[str, Any]:
    """A valid setup file's data: one script cart store ``main``."""
    data: dict[str, Any] = {
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": event, "order_status": label, "notify_cart": notify} for event, label, notify in (
            ("Order Shipped", "Shipped", True), ("Order Cancelled", "Cancelled", True),
            ("Invoice Printed", "Printed", False))],
        "stores": [
            {"id": "main", "cart": "seti",
             "connector": {"url": "http://cart.test/seom.php", "user": "om",
                           "password": {"$env": "SHOP_PASSWORD"}, "code": "main",
                           "timeout": 3}},  # a send must fit inside the 5 s lease below (less its margin)
        ],
        "stack": {"url": "sqlite:///stack.db"},
        "controller": {"backoff_base": 0.01, "backoff_cap": 0.05, "lease_seconds": 5},
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _shop_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PASSWORD", SHOP_PASSWORD)


@pytest.fixture
def write_setup(tmp_path: Path) -> Callable[..., Path]:
    """Write a setup file (data or text) into tmp_path and return its path."""

    def write(data: dict[str, Any] | str | None = None, name: str = "cartstatus.yaml") -> Path:
        path = tmp_path / name
        if data is None:
            data = base_setup()
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def config(write_setup: Callable[..., Path]) -> Config:
    return load_config(write_setup())


@pytest.fixture
def engine(config: Config) -> Iterator[StatusEngine]:
    eng = StatusEngine(config)
    yield eng
    eng.db.dispose()


def add_orders(engine: StatusEngine, count: int, store: str = "main", status: str | None = "New",
               prefix: str = "") -> list[str]:
    numbers = [f"{prefix}{1000 + i}" for i in range(count)]
    engine.upsert_orders([{"order_number": n, "store": store, "status": status, "cart_order_ref": f"C{n}",
                           "email": f"shopper{n}@example.com", "zip": "12345"} for n in numbers])
    return numbers


@pytest.fixture
def simulator() -> SetiSimulator:
    return SetiSimulator(user="om", password=SHOP_PASSWORD, code="main", accept_unknown=True)


@pytest.fixture
def sim_transport(simulator: SetiSimulator) -> httpx.AsyncBaseTransport:
    """The simulator as an httpx transport: no sockets, no patching."""
    return httpx.ASGITransport(app=simulator.app())
