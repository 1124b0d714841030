"""Fixtures for the core tests.

Plugins: fake installed plugins, real pip installs, a clean plugin manager.
Delivery: engines on custom setups, scripted connectors, a live script cart.
"""

from __future__ import annotations

import asyncio
import importlib
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cartstatus import Connector, StackController, StatusEngine, StatusUpdate, hookimpl, load_config, plugins
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Delivered, Outcome
from cartstatus.serve import serve_in_thread

from ..conftest import SHOP_PASSWORD, base_setup

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin manager with only the built-ins, before and after the test."""
    monkeypatch.delenv(plugins.LOAD_ENV, raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


def _forget_modules(prefixes: list[str]) -> None:
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            del sys.modules[name]


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> Iterator[Callable[..., None]]:
    """Install plugin modules as a distribution with a ``cartstatus`` entry point, on sys.path.

    ``fake_plugins("cs-good", {"cs_good": "source"}, entry_points={"good": "cs_good"})``
    writes the modules and a ``.dist-info`` folder that importlib.metadata finds
    exactly as it finds a pip-installed plugin.
    """
    site = tmp_path / "fake-site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(dist: str, sources: dict[str, str], entry_points: dict[str, str], version: str = "1.0") -> None:
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[cartstatus]\n{lines}")
        importlib.invalidate_caches()

    yield install
    plugins.reset_plugins()
    _forget_modules(modules)


def pip_install(source: Path, site: Path, work: Path) -> None:
    """``pip install`` a plugin package into ``site`` (no network, no build isolation: the venv's setuptools)."""
    copy = work / source.name
    # Build from a copy so that pip's build/ and egg-info never land in the source tree.
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(copy)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip install {source.name} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def acmecart_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin ``examples/cartstatus-acmecart``, pip-installed into its own site folder."""
    work = tmp_path_factory.mktemp("acmecart-build")
    site = tmp_path_factory.mktemp("acmecart-site")
    pip_install(ROOT / "examples" / "cartstatus-acmecart", site, work)
    assert (site / "cartstatus_acmecart").is_dir()
    assert list(site.glob("cartstatus_acmecart-*.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def acmecart_installed(acmecart_site: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> Iterator[Path]:
    """The example plugin on sys.path of this process, discovered afresh; gone again afterwards."""
    monkeypatch.syspath_prepend(str(acmecart_site))
    importlib.invalidate_caches()
    plugins.reset_plugins()
    yield acmecart_site
    plugins.reset_plugins()
    _forget_modules(["cartstatus_acmecart"])


# -- delivery: engines, scripted connectors, a live script cart ---------------

#: Four successive label changes, every one with Notify Cart: an order walks through them in order.
WALK = [
    {"event": "Order Received", "order_status": "Received", "notify_cart": True},
    {"event": "Payment Received", "order_status": "Paid", "notify_cart": True},
    {"event": "Invoice Printed", "order_status": "Invoiced", "notify_cart": True},
    {"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True},
]


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., StatusEngine]]:
    """Build a StatusEngine from ``base_setup(**overrides)`` written to its own setup file."""
    made: list[StatusEngine] = []

    def make(name: str = "cartstatus.yaml", **overrides: Any) -> StatusEngine:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(base_setup(**overrides), sort_keys=False))
        eng = StatusEngine(load_config(path))
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.db.dispose()


class ScriptedConnector(Connector):
    """A connector answering from a script of outcomes (then Delivered); it records every update."""

    name = "scripted"

    def __init__(self, outcomes: Sequence[Outcome] = (), on_send: Callable[[StatusUpdate], None] | None = None):
        super().__init__({})
        self.script = list(outcomes)
        self.sent: list[StatusUpdate] = []
        self.on_send = on_send

    async def send(self, update: StatusUpdate) -> Outcome:
        self.sent.append(update)
        if self.on_send is not None:
            self.on_send(update)
        return self.script.pop(0) if self.script else Delivered()


@contextmanager
def connector_registered(cls: type[Connector], name: str) -> Iterator[None]:
    """``cls`` registered as a connector plugin (through register_connectors), unregistered afterwards."""

    class _Plugin:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            register(cls)

    plugins.load_plugins()
    plugin = _Plugin()
    plugins.pm.register(plugin, name=name)
    try:
        yield
    finally:
        plugins.pm.unregister(plugin)


class Hooks:
    """Captures the update_delivered / update_parked hook calls: (order number, outcome or reason)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, Any]] = []
        self.parked: list[tuple[str, str]] = []

    @hookimpl
    def update_delivered(self, record: Any, outcome: Any) -> None:
        self.delivered.append((record.order_number, outcome))

    @hookimpl
    def update_parked(self, record: Any, reason: str) -> None:
        self.parked.append((record.order_number, reason))


class Answers(ScriptedConnector):
    """Answers each update with the outcome its key (its status label, unless told) is given."""

    def __init__(self, outcomes: dict[str, Outcome], key: Callable[[StatusUpdate], str] = lambda u: u.status) -> None:
        super().__init__()
        self.outcomes = outcomes
        self.key = key

    async def send(self, update: StatusUpdate) -> Outcome:
        return self.outcomes[self.key(update)]


@dataclass
class LiveCart:
    """The script simulator served by uvicorn on 127.0.0.1, with a slow reply when asked."""

    simulator: SetiSimulator
    url: str
    reply_delay: float = 0.0


class _SlowReplies:
    """ASGI middleware: the request is handled (and recorded) at once, the reply leaves late."""

    def __init__(self, app: Any, cart: LiveCart) -> None:
        self.app = app
        self.cart = cart

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.cart.reply_delay:
            await self.app(scope, receive, send)
            return

        async def late_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.cart.reply_delay)
            await send(message)

        await self.app(scope, receive, late_send)


@pytest.fixture
def live_cart() -> Iterator[LiveCart]:
    """A real HTTP script cart on a free port of 127.0.0.1, in a thread of the test process."""
    sim = SetiSimulator(user="om", password=SHOP_PASSWORD, code="main", accept_unknown=True)
    cart = LiveCart(sim, "")
    with serve_in_thread(_SlowReplies(sim.app(), cart)) as url:
        cart.url = f"{url}/seom.php"
        yield cart


def live_setup(cart: LiveCart, **overrides: Any) -> dict[str, Any]:
    """``base_setup`` with the store pointed at the live cart."""
    data = base_setup(**overrides)
    data["stores"][0]["connector"]["url"] = cart.url
    return data


async def run_until(controller: StackController, done: Callable[[], bool], deadline: float = 30.0) -> None:
    """Run the controller until ``done()`` holds, then stop it and wait for it to sign off."""
    task = asyncio.create_task(controller.run())
    try:
        give_up = time.monotonic() + deadline
        while not done():
            if task.done():
                await task  # raises what the controller raised
                raise AssertionError("the controller stopped by itself")
            if time.monotonic() > give_up:
                raise AssertionError(f"condition not reached within {deadline}s")
            await asyncio.sleep(0.02)
    finally:
        controller.stop()
        await task
