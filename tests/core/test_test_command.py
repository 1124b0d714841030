"""``cartstatus test``: Test Settings against the script-cart simulator and a local OSS (good, revoked, lapsed)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cartstatus.cli import main
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.oss.app import create_app
from cartstatus.oss.service import OssStore
from cartstatus.oss.storage import open_oss_database
from cartstatus.serve import local_socket, serve_in_thread
from click.testing import CliRunner, Result

from ..conftest import SHOP_PASSWORD

#: The environment variables the setup file names, each holding the token the OSS gave that merchant.
TOKENS: dict[str, str] = {}
WRONG_PASSWORD = "not-the-Pass-42"


@pytest.fixture
def cart() -> SetiSimulator:
    return SetiSimulator(user="om", password=SHOP_PASSWORD, code="main")


@pytest.fixture
def cart_url(cart: SetiSimulator) -> Iterator[str]:
    with serve_in_thread(cart.app()) as url:
        yield url


@pytest.fixture
def oss_url(tmp_path: Path) -> Iterator[str]:
    """The real OSS server, with a good, a revoked, a lapsed and another merchant's account."""
    store = OssStore(open_oss_database(f"sqlite:///{tmp_path / 'oss.db'}"))
    for name, merchant, expires in (("GOOD_TOKEN", "outlet", dt.date(2099, 12, 31)),
                                    ("REVOKED_TOKEN", "revoked", dt.date(2099, 12, 31)),
                                    ("LAPSED_TOKEN", "old-shop", dt.date(2020, 1, 31)),
                                    ("OTHER_TOKEN", "someone-else", dt.date(2099, 12, 31))):
        TOKENS[name] = store.create_account(merchant, expires)[1]
    store.revoke("revoked")
    try:
        with serve_in_thread(create_app(store)) as url:
            yield url
    finally:
        store.engine.dispose()


@pytest.fixture
def setup(tmp_path: Path, cart_url: str, oss_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WRONG_PASSWORD", WRONG_PASSWORD)
    with local_socket() as closed:  # a port nothing answers on once closed
        nowhere = f"http://{closed.getsockname()[0]}:{closed.getsockname()[1]}"

    def seti(store: str, password: str, url: str = cart_url) -> str:
        return (f"  - id: {store}\n    cart: seti\n    connector: {{url: \"{url}/seom.php\", user: om, "
                f"password: {{$env: {password}}}, code: main, timeout: 5}}\n")

    def oss(store: str, merchant: str, token: str, expires: str = "2099-12-31") -> str:
        return (f"  - id: {store}\n    cart: americart\n    oss: {{url: \"{oss_url}\", merchant: {merchant}, "
                f"token: {{$env: {token}}}, subscription_expires: {expires}}}\n")

    path = tmp_path / "cartstatus.yaml"
    path.write_text("system: {UseStatusUpdates: true}\nstores:\n"
                    + seti("main", "SHOP_PASSWORD") + seti("wrong-password", "WRONG_PASSWORD")
                    + seti("cart-down", "SHOP_PASSWORD", nowhere)
                    + oss("outlet", "outlet", "GOOD_TOKEN") + oss("revoked", "revoked", "REVOKED_TOKEN")
                    + oss("lapsed", "old-shop", "LAPSED_TOKEN")
                    + oss("lapsed-here", "old-shop", "LAPSED_TOKEN", "2020-01-31")
                    + oss("stale-date", "outlet", "GOOD_TOKEN", "2098-01-01")
                    + oss("wrong-merchant", "outlet", "OTHER_TOKEN")
                    + "  - id: paper-only\n    cart: americart\n")
    return path


def run(setup: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(setup), "test", *args])


def by_store(setup: Path, *stores: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = run(setup, "--json", *stores)
    return result.exit_code, {row["store"]: row for row in json.loads(result.output)}


def test_good_settings_pass_and_exit_0(setup: Path) -> None:
    code, rows = by_store(setup, "main", "outlet")
    assert code == 0
    assert rows["main"] == {"store": "main", "target": "seti", "ok": True, "detail": "script version 1.000"}
    assert rows["outlet"] == {"store": "outlet", "target": "oss", "ok": True,
                              "detail": "merchant outlet, subscription until 2099-12-31"}


@pytest.mark.parametrize(("store", "target", "said"), [
    ("wrong-password", "seti", "Invalid user name or password"),
    ("cart-down", "seti", "network error: ConnectError"),
    ("revoked", "oss", "the OSS refused the token of merchant revoked (unknown or revoked): ask the OSS operator for "
                       "a new token"),
    ("lapsed", "oss", "the OSS subscription of merchant old-shop lapsed (ended 2020-01-31): renew it with the OSS "
                      "operator, then set the store's oss.subscription_expires to the new end date"),
    ("lapsed-here", "oss", "merchant old-shop lapsed (ended 2020-01-31)"),
    ("stale-date", "oss", "the OSS has merchant outlet's subscription until 2099-12-31, the setup file says "
                          "2098-01-01: set the store's oss.subscription_expires: 2099-12-31"),
    ("wrong-merchant", "oss", "the token belongs to merchant someone-else, not outlet"),
    ("paper-only", "-", "store 'paper-only' has no OSS subscription"),
])
def test_a_refused_store_says_why_and_exit_1(setup: Path, store: str, target: str, said: str) -> None:
    code, rows = by_store(setup, "main", store)
    assert code == 1
    assert rows["main"]["ok"] is True
    assert (rows[store]["target"], rows[store]["ok"]) == (target, False)
    assert said in str(rows[store]["detail"])


def test_every_store_is_tested_in_a_table_without_a_secret(setup: Path) -> None:
    result = run(setup)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    for store in ("main", "wrong-password", "cart-down", "outlet", "revoked", "lapsed", "stale-date", "paper-only"):
        row = next(line for line in lines if f" {store} " in line)
        assert ("OK" in row) == (store in ("main", "outlet")), row
    for secret in (SHOP_PASSWORD, WRONG_PASSWORD, *TOKENS.values()):
        assert secret not in result.output


def test_an_unknown_store_is_refused_with_exit_2(setup: Path) -> None:
    result = run(setup, "main", "mian")
    assert result.exit_code == 2
    assert "no store mian in" in result.output and "its stores: main, wrong-password" in result.output


def test_a_secret_in_the_reason_is_masked(setup: Path, cart: SetiSimulator, cart_url: str) -> None:
    # The script's address holds the password (a path the merchant chose): the connector's reason names it.
    setup.write_text(setup.read_text().replace(f'"{cart_url}/seom.php", user: om, password: {{$env: WRONG_PASSWORD}}',
                                               f'"{cart_url}/{WRONG_PASSWORD}.php", user: om, '
                                               'password: {$env: WRONG_PASSWORD}'))
    cart.fail_next("http_404")
    code, rows = by_store(setup, "wrong-password")
    assert code == 1
    assert rows["wrong-password"]["detail"] == f"HTTP 404 from {cart_url}/********.php"
