"""Matrix fixtures: a fake ``oss`` connector plugin, plugin rows, matrix files written on the fly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cartstatus.connector import Connector, StatusUpdate
from cartstatus.hookspecs import hookimpl
from cartstatus.outcomes import Delivered, Outcome
from cartstatus.plugins import load_plugins, pm


class FakeOssConnector(Connector):
    """Stands in for the OSS connector another engineer is building."""

    name = "oss"

    async def send(self, update: StatusUpdate) -> Outcome:
        return Delivered("fake OSS")


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., None]]:
    """Register a pluggy plugin for one test; it is unregistered afterwards."""
    load_plugins()
    names: list[str] = []

    def register(name: str, **hooks: Any) -> None:
        plugin = SimpleNamespace(**{k: hookimpl(v) for k, v in hooks.items()})
        pm.register(plugin, name=name)
        names.append(name)

    yield register
    for name in names:
        pm.unregister(name=name)


@pytest.fixture
def fake_oss(register_plugin: Callable[..., None]) -> type[Connector]:
    def register_connectors(register: Any) -> None:
        register(FakeOssConnector)

    register_plugin("test-fake-oss", register_connectors=register_connectors)
    return FakeOssConnector


def row(**overrides: Any) -> dict[str, Any]:
    """A valid matrix row."""
    data: dict[str, Any] = {
        "key": "mycart",
        "name": "My Cart",
        "aliases": ["my shop cart"],
        "updates": "installed_script",
        "api": "the script",
        "connector": "seti",
        "capabilities": {"tracking_numbers": True, "inventory": False},
        "status_vocabulary": None,
        "caveats": ["the label must match exactly"],
        "rate_limit": None,
        "sources": ["https://example.com/docs"],
        "verified": "2026-11-27",
    }
    data.update(overrides)
    return data


@pytest.fixture
def write_matrix(tmp_path: Path) -> Callable[..., Path]:
    """Write a matrix file (rows, or raw text) into tmp_path."""

    def write(content: list[dict[str, Any]] | str, name: str = "extra-matrix.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump({"carts": content}, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write
