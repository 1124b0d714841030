"""The built-in matrix agrees with the connectors that are installed, and every row is sourced."""

from __future__ import annotations

import pytest
from cartstatus.matrix import find_cart, load_matrix
from cartstatus.plugins import get_connectors
from cartstatus.routing import OSS_CONNECTOR

#: The carts the matrix must hold (issue 3), as support staff would type them.
REQUIRED = ["WooCommerce", "BigCommerce", "Shopify", "Magento 2", "Adobe Commerce", "PrestaShop", "Ecwid",
            "Shift4Shop", "3dcart", "Squarespace", "Wix", "OpenCart", "osCommerce", "Zen Cart", "X-Cart",
            "CubeCart", "Miva Merchant", "Volusion", "Yahoo Store", "AbleCommerce", "Americart", "ChannelAdvisor",
            "Amazon", "eBay", "seti"]


def test_every_named_connector_is_registered() -> None:
    connectors = get_connectors()
    missing = {r.key: r.connector for r in load_matrix() if r.connector is not None and r.connector not in connectors}
    assert missing == {}


def test_every_builtin_connector_has_a_row() -> None:
    named = {r.connector for r in load_matrix()}
    # The OSS connector sends to the Order Status System, not to a cart.
    without_row = sorted(set(get_connectors()) - named - {OSS_CONNECTOR})
    assert without_row == []


def test_row_vocabulary_equals_the_connectors() -> None:
    connectors = get_connectors()
    for r in load_matrix():
        if r.connector is None:
            continue
        cls = connectors[r.connector]
        expected = tuple(cls.status_vocabulary) if cls.status_vocabulary is not None else None
        assert r.status_vocabulary == expected, r.key


def test_rows_that_take_no_updates_name_no_connector() -> None:
    for r in load_matrix():
        if not r.takes_updates:
            assert r.connector is None, r.key


@pytest.mark.parametrize("name", REQUIRED)
def test_required_cart_is_in_the_matrix(name: str) -> None:
    look = find_cart(load_matrix(), name)
    assert look.row is not None and look.matched_by != "fuzzy", name


def test_at_least_25_rows_each_sourced_and_dated_or_flagged() -> None:
    rows = list(load_matrix())
    assert len(rows) >= 25
    for r in rows:
        assert r.sources and all(s.startswith(("http://", "https://")) for s in r.sources), r.key
        if r.verified is None:
            # an unverified row says so to support staff
            assert any("not confirmed" in c for c in r.caveats), r.key
    assert sum(r.verified is not None for r in rows) >= 20


def test_americart_takes_none_and_seti_takes_script_updates() -> None:
    m = load_matrix()
    assert m.get("americart").updates == "none"  # type: ignore[union-attr]
    seti = m.get("seti")
    assert seti is not None and (seti.updates, seti.connector) == ("installed_script", "seti")
