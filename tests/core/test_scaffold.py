"""``cartstatus new-connector``: the package it writes installs with pip and passes the kit unchanged."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cartstatus import plugins
from cartstatus.cli import main
from cartstatus.scaffold import Names, ScaffoldError, generate
from cartstatus.testing import ConnectorConformance
from click.testing import CliRunner

from .conftest import ROOT, pip_install


def test_names_come_from_the_key() -> None:
    names = Names.from_key("acme_shop")
    assert (names.key, names.dist, names.module, names.Class, names.title) == (
        "acme_shop", "cartstatus-acme-shop", "cartstatus_acme_shop", "AcmeShop", "Acme Shop")


@pytest.mark.parametrize("bad", ["MyCart", "9cart", "my cart", "my-cart", "", "cart!", "c" * 65])
def test_a_bad_name_is_refused_with_what_to_do(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-connector", bad, "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "must be the cart's matrix key: lowercase letters, digits and '_'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    generate("mycart", tmp_path)
    (tmp_path / "cartstatus-mycart" / "pyproject.toml").write_text("mine")
    with pytest.raises(ScaffoldError, match="already exists"):
        generate("mycart", tmp_path)
    assert (tmp_path / "cartstatus-mycart" / "pyproject.toml").read_text() == "mine"


def test_the_package_has_its_entry_point_connector_simulator_row_and_tests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-connector", "shopzilla", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "cartstatus-shopzilla"
    assert f"wrote {root}" in result.output
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "cartstatus_shopzilla/__init__.py", "cartstatus_shopzilla/connector.py",
                     "cartstatus_shopzilla/plugin.py", "cartstatus_shopzilla/simulator.py", "pyproject.toml",
                     "tests/test_conformance.py", "tests/test_plugin.py"]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == "cartstatus-shopzilla"
    assert project["project"]["entry-points"]["cartstatus"] == {"shopzilla": "cartstatus_shopzilla.plugin"}
    kit_line = (root / "tests" / "test_conformance.py").read_text()
    assert ("TestShopzilla = connector_test_class(ShopzillaConnector, settings=SETTINGS, "
            "simulator=ShopzillaSimulator)") in kit_line
    assert "register_matrix_rows" in (root / "cartstatus_shopzilla" / "plugin.py").read_text()
    assert "{$env: SHOPZILLA_API_KEY}" in (root / "README.md").read_text()


STYLES = [("api-key", 422), ("basic", 409), ("login", 500)]


@pytest.mark.parametrize(("auth", "refusal"), STYLES)
def test_the_generated_code_is_lint_clean(auth: str, refusal: int, tmp_path: Path) -> None:
    root = generate("lintcart", tmp_path, auth=auth, refusal_status=refusal)
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--isolated", "--line-length", "120", "--select", "E,F,W,B,UP,I",
                             str(root)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("auth", "settings", "auth_code", "readme"), [
    ("api-key", ["base_url", "api_key"], 'HeaderAuth("Authorization", self.secret("api_key"), scheme="Bearer")',
     "api_key: {$env: AUTHCART_API_KEY}"),
    ("basic", ["base_url", "username", "password"], 'httpx.BasicAuth(str(self.settings["username"]), '
     'self.secret("password"))', "password: {$env: AUTHCART_PASSWORD}"),
    ("login", ["base_url", "username", "password"], "TokenLogin(self._login, lambda reply: "
     'Token.from_jwt(reply.json()["token"]),', "password: {$env: AUTHCART_PASSWORD}"),
])
def test_the_auth_style_gives_its_settings_and_auth_code(auth: str, settings: list[str], auth_code: str,
                                                         readme: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-connector", "authcart", "--dir", str(tmp_path), "--auth", auth,
                                       "--refusal-status", "503"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "cartstatus-authcart"
    connector = (root / "cartstatus_authcart" / "connector.py").read_text()
    assert f'"required": {json.dumps(settings)},' in connector.replace("'", '"')
    assert auth_code in connector
    assert "REFUSAL_STATUS = 503" in connector and "${" not in connector
    assert readme in (root / "README.md").read_text()
    assert f"--auth {auth} --refusal-status 503" in (root / "README.md").read_text()
    simulator = (root / "cartstatus_authcart" / "simulator.py").read_text()
    assert ("def expire_tokens" in simulator) is (auth == "login")


@pytest.mark.parametrize(("args", "message"), [
    (["--auth", "oauth"], "Invalid value for '--auth': 'oauth' is not one of 'api-key', 'basic', 'login'"),
    (["--refusal-status", "200"], "Invalid value for '--refusal-status': 200 is not in the range 400<=x<=599"),
    (["--refusal-status", "many"], "Invalid value for '--refusal-status': 'many' is not a valid integer"),
])
def test_a_bad_auth_style_or_refusal_status_is_refused(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-connector", "mycart", "--dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_generate_refuses_what_the_command_line_would(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="use one of api-key, basic, login"):
        generate("mycart", tmp_path, auth="oauth")
    with pytest.raises(ScaffoldError, match="must be an HTTP error status, 400 to 599"):
        generate("mycart", tmp_path, refusal_status=302)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("auth", "refusal"), STYLES)
def test_the_generated_package_installs_and_passes_the_kit_unchanged(auth: str, refusal: int,
                                                                     tmp_path: Path) -> None:
    root = generate("mycart", tmp_path / "src", auth=auth, refusal_status=refusal)
    site = tmp_path / "site"
    pip_install(root, site, tmp_path)
    assert (site / "cartstatus_mycart").is_dir()
    # The generated tests, run away from the source so that only the installed package can be imported.
    shutil.copytree(root / "tests", tmp_path / "run" / "tests")
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "300"}
    env.pop(plugins.LOAD_ENV, None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests"],
                            cwd=tmp_path / "run", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"\b(\d+) passed", result.stdout)
    # Every check of the kit (the login check only for a cart with a login) and the two plugin tests.
    checks = [name for name in dir(ConnectorConformance) if name.startswith("test_")]
    expected = len(checks) - (0 if auth == "login" else 1) + 2
    assert passed and int(passed.group(1)) == expected, result.stdout
    assert "skipped" not in result.stdout
    listing = subprocess.run([str(Path(sys.executable).parent / "cartstatus"), "plugins"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "cartstatus-mycart" in listing.stdout


def test_the_quickest_start_in_the_docs_runs_as_written(tmp_path: Path) -> None:
    """The page's first shell block, run by bash with HOME in a temporary folder: the path of its `pip install`
    must expand (a quoted `~` does not). pip is played by a function that installs into a site folder, so that
    the project's environment is left alone."""
    page = (ROOT / "docs" / "writing-connectors.md").read_text()
    block = re.search(r"```sh\n(.*?)```", page, flags=re.DOTALL)
    assert block and "cartstatus new-connector mycart" in block.group(1)
    site = tmp_path / "site"
    bin_dir = Path(sys.executable).parent
    pip = (f'pip() {{ [ "$1 $2" = "install -e" ] && [ -d "${{3%\\[*}}" ] || {{ echo "pip: no such project: $3" >&2; '
           f'return 1; }}; "{sys.executable}" -m pip install --quiet --no-deps --no-build-isolation --no-index '
           f'--disable-pip-version-check --target "{site}" "${{3%\\[*}}"; }}\n')
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(site), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop(plugins.LOAD_ENV, None)
    script = pip + block.group(1).replace("pytest ", "pytest -q -p no:cacheprovider ")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cartstatus-mycart" in result.stdout and re.search(r"\b\d+ passed", result.stdout), result.stdout
