"""Fixtures for the plugin tests: fake installed plugins, real pip installs, a clean plugin manager."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cartstatus import plugins

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
