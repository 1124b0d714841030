"""``matrix check``: forgiving names, one-sentence answers, exit status 0 / 1 / 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cartstatus.cli import main
from cartstatus.connector import Connector
from cartstatus.matrix import EXIT_DIRECT, EXIT_NEEDS_OSS, EXIT_UNKNOWN, answer, find_cart
from cartstatus.routing import cart_matrix
from click.testing import CliRunner

#: Every cart of issue 3 as typed, with the row it must find and the exit status.
CARTS = [
    ("WooCommerce", "woocommerce", EXIT_DIRECT), ("woo commerce", "woocommerce", EXIT_DIRECT),
    ("BigCommerce", "bigcommerce", EXIT_DIRECT), ("Shopify", "shopify", EXIT_DIRECT),
    ("magento2", "magento", EXIT_DIRECT), ("Adobe Commerce", "magento", EXIT_DIRECT),
    ("PrestaShop", "prestashop", EXIT_DIRECT), ("Ecwid", "ecwid", EXIT_DIRECT),
    ("3dcart", "shift4shop", EXIT_NEEDS_OSS), ("Shift4Shop", "shift4shop", EXIT_NEEDS_OSS),
    ("Squarespace", "squarespace", EXIT_NEEDS_OSS), ("Wix", "wix", EXIT_NEEDS_OSS),
    ("OpenCart", "opencart", EXIT_NEEDS_OSS), ("osCommerce", "oscommerce", EXIT_DIRECT),
    ("Zen Cart", "zencart", EXIT_DIRECT), ("X-Cart", "xcart", EXIT_DIRECT), ("CubeCart", "cubecart", EXIT_DIRECT),
    ("Miva Merchant", "miva", EXIT_NEEDS_OSS), ("Volusion", "volusion", EXIT_NEEDS_OSS),
    ("Yahoo Store", "yahoo", EXIT_NEEDS_OSS), ("AbleCommerce", "ablecommerce", EXIT_DIRECT),
    ("Americart", "americart", EXIT_NEEDS_OSS), ("ChannelAdvisor", "channeladvisor", EXIT_NEEDS_OSS),
    ("Amazon", "amazon", EXIT_NEEDS_OSS), ("eBay", "ebay", EXIT_NEEDS_OSS), ("seti", "seti", EXIT_DIRECT),
    ("generic", "seti", EXIT_DIRECT),
]

MISSPELLINGS = [
    ("WooComerce", "woocommerce"), ("wocommerce", "woocommerce"), ("Big Comerce", "bigcommerce"),
    ("shopfy", "shopify"), ("magneto 2", "magento"), ("prestashp", "prestashop"), ("3d-kart", "shift4shop"),
    ("squarspace", "squarespace"), ("oscomerce", "oscommerce"), ("zencrat", "zencart"), ("cubcart", "cubecart"),
    ("Amercart", "americart"), ("ablecomerce", "ablecommerce"), ("Chanel Advisor", "channeladvisor"),
    ("volusoin", "volusion"),
]


@pytest.mark.parametrize(("typed", "key", "status"), CARTS)
def test_check_answers_every_cart(typed: str, key: str, status: int) -> None:
    result = answer(cart_matrix(), typed)
    row = cart_matrix().get(key)
    assert row is not None
    assert (result.lookup.row, result.exit_status) == (row, status)
    sentence = result.sentence
    assert sentence.startswith(f"{row.name} ({row.key})") and sentence.endswith(".")
    assert sentence.count(". ") == 0  # one sentence
    if status == EXIT_DIRECT:
        assert f"connector {row.connector!r}" in sentence and "installed, so the OSS is not needed" in sentence
    else:
        assert "OSS is needed" in sentence
    for caveat in row.caveats:
        assert caveat.rstrip(".") in sentence


@pytest.mark.parametrize(("typed", "key"), MISSPELLINGS)
def test_check_understands_misspellings(typed: str, key: str) -> None:
    result = answer(cart_matrix(), typed)
    assert result.lookup.matched_by == "fuzzy"
    assert result.lookup.row is not None and result.lookup.row.key == key
    assert result.sentence.startswith(f"Taking {typed!r} to mean")


def test_unknown_name_suggests_the_closest() -> None:
    result = answer(cart_matrix(), "Big")
    assert result.exit_status == EXIT_UNKNOWN
    assert result.lookup.row is None and "bigcommerce" in result.lookup.suggestions
    assert "the closest are: bigcommerce" in result.sentence


def test_nothing_close_says_so() -> None:
    result = answer(cart_matrix(), "qqqqqqqq")
    assert (result.exit_status, result.lookup.suggestions) == (EXIT_UNKNOWN, ())
    assert "matrix list" in result.sentence


def test_case_spaces_punctuation_are_ignored() -> None:
    m = cart_matrix()
    for typed in ("ZEN-CART", "  zen   cart ", "Zen_Cart", "zen.cart"):
        assert find_cart(m, typed).row is m.get("zencart")


def test_installed_oss_connector_does_not_change_a_direct_answer(fake_oss: type[Connector]) -> None:
    assert answer(cart_matrix(), "seti").exit_status == EXIT_DIRECT
    assert answer(cart_matrix(), "shopify").facts["oss_connector_installed"] is True


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no setup file here
    monkeypatch.delenv("CARTSTATUS_MATRIX", raising=False)
    monkeypatch.delenv("CARTSTATUS_CONFIG", raising=False)
    return CliRunner()


@pytest.mark.parametrize(("typed", "code"), [("seti", 0), ("woo commerce", 0), ("3dcart", 1), ("nope-nope", 3)])
def test_cli_check_exit_status(runner: CliRunner, typed: str, code: int) -> None:
    result = runner.invoke(main, ["matrix", "check", typed])
    assert result.exit_code == code, result.output
    assert result.output.strip().endswith(".")


def test_cli_check_json(runner: CliRunner) -> None:
    result = runner.invoke(main, ["matrix", "check", "magento2", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["match"] == "magento" and data["matched_by"] == "alias"
    assert data["takes_updates_directly"] is True and data["oss_needed"] is False
    assert data["connector"] == "magento" and data["exit_status"] == 0
    assert data["answer"].startswith("Magento 2 / Adobe Commerce (magento)")
    without = json.loads(runner.invoke(main, ["matrix", "check", "square space", "--json"]).output)
    assert (without["match"], without["connector"], without["oss_needed"], without["exit_status"]) == (
        "squarespace", None, True, 1)
