"""Rule 1: native when the cart takes updates and its connector is installed; else the OSS; else none."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cartstatus import StatusEngine, load_config
from cartstatus.config import OssSettings, Store
from cartstatus.connector import Connector
from cartstatus.matrix import load_matrix
from cartstatus.routing import cart_matrix, connector_class_for_cart, decide_route, route_for_store
from cartstatus.secrets import Secret

from ..conftest import add_orders, base_setup
from .conftest import row

TODAY = dt.date(2026, 11, 27)


def oss(expires: dt.date) -> OssSettings:
    return OssSettings("https://oss.test", "acme", Secret("t0ken", "inline"), expires)


def store(cart: str, subscription: dt.date | None = None) -> Store:
    return Store(id="s1", cart=cart, oss=oss(subscription) if subscription else None)


def test_cart_with_installed_connector_is_native() -> None:
    route = route_for_store(store("seti"), TODAY)
    assert (route.kind, route.connector) == ("native", "seti")
    assert "Stone Edge script" in route.reason


def test_an_alias_of_a_script_cart_is_native_through_seti() -> None:
    route = route_for_store(store("oscommerce"), TODAY)
    assert (route.kind, route.connector) == ("native", "seti")


def test_api_cart_without_connector_goes_to_active_oss(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("squarespace", TODAY + dt.timedelta(days=30)), TODAY)
    assert (route.kind, route.connector) == ("oss", "oss")
    assert "no cartstatus connector for it is installed" in route.reason
    assert "active until 2026-12-27" in route.reason


def test_subscription_is_active_through_its_last_day(fake_oss: type[Connector]) -> None:
    assert route_for_store(store("americart", TODAY), TODAY).kind == "oss"


def test_cart_taking_none_goes_to_oss(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("americart", TODAY), TODAY)
    assert route.kind == "oss" and "Americart cannot take status updates" in route.reason


def test_batch_file_cart_goes_to_oss(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("yahoo", TODAY), TODAY)
    assert route.kind == "oss" and "batch file" in route.reason


def test_no_subscription_routes_none(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("americart"), TODAY)
    assert (route.kind, route.connector) == ("none", None)
    assert "has no OSS subscription" in route.reason


def test_lapsed_subscription_routes_none(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("squarespace", TODAY - dt.timedelta(days=1)), TODAY)
    assert route.kind == "none"
    assert "lapsed on 2026-11-26" in route.reason and "renew" in route.reason


def test_active_subscription_without_oss_connector_routes_none() -> None:
    route = decide_route(store("americart", TODAY), load_matrix(installed={"seti"}), TODAY)
    assert route.kind == "none" and "OSS connector 'oss' is not installed" in route.reason


def test_cart_absent_from_matrix_routes_none_even_with_oss(fake_oss: type[Connector]) -> None:
    route = route_for_store(store("mystery-cart", TODAY), TODAY)
    assert route.kind == "none"
    assert "'mystery-cart'" in route.reason and "not in the shopping-cart matrix" in route.reason


def test_row_naming_an_uninstalled_connector_goes_to_oss(fake_oss: type[Connector],
                                                         write_matrix: Callable[..., Path]) -> None:
    extra = write_matrix([row(key="magiccart", name="Magic", aliases=[], updates="native_api", connector="magic")])
    route = route_for_store(store("magiccart", TODAY), TODAY, matrix_extra=extra)
    assert route.kind == "oss" and "connector 'magic' is not installed" in route.reason


def test_unusable_extra_matrix_routes_none(tmp_path: Path) -> None:
    route = route_for_store(store("seti"), TODAY, matrix_extra=tmp_path / "missing.yaml")
    assert route.kind == "none" and "missing.yaml" in route.reason


def test_route_for_store_delegates_to_the_matrix_decision(fake_oss: type[Connector]) -> None:
    matrix = cart_matrix()
    for cart in ("seti", "woocommerce", "squarespace", "americart", "nowhere"):
        for sub in (None, TODAY, TODAY - dt.timedelta(days=3)):
            assert route_for_store(store(cart, sub), TODAY) == decide_route(store(cart, sub), matrix, TODAY)


def test_connector_class_for_cart_follows_the_matrix() -> None:
    assert connector_class_for_cart("seti").name == "seti"  # type: ignore[union-attr]
    assert connector_class_for_cart("zen cart").name == "seti"  # type: ignore[union-attr]
    assert connector_class_for_cart("woocommerce").name == "woocommerce"  # type: ignore[union-attr]
    assert connector_class_for_cart("squarespace") is None
    assert connector_class_for_cart("not-a-cart") is None


def _setup(write_setup: Callable[..., Path], **store_fields: Any) -> Path:
    data = base_setup()
    data["stores"] = [{"id": "main", **store_fields}]
    return write_setup(data)


def test_setup_file_with_unknown_cart_loads_and_records_the_reason(write_setup: Callable[..., Path]) -> None:
    cfg = load_config(_setup(write_setup, cart="mystery-cart"))
    engine = StatusEngine(cfg)
    try:
        (number,) = add_orders(engine, 1)
        result = engine.fire_event(number, "Order Shipped")
        assert result.changed and not result.queued and result.route == "none"
        history = engine.show_order(number)["history"]
        assert "not in the shopping-cart matrix" in history[-1]["reason"]
        assert engine.stack.count() == 0
    finally:
        engine.db.dispose()


@pytest.mark.parametrize(("expires", "kind"), [("2999-01-01", "oss"), ("2000-01-01", "none")])
def test_engine_queues_to_the_oss_only_while_subscribed(expires: str, kind: str, fake_oss: type[Connector],
                                                        write_setup: Callable[..., Path]) -> None:
    cfg = load_config(_setup(write_setup, cart="squarespace",
                             oss={"url": "https://oss.test", "merchant": "acme", "token": "t",
                                  "subscription_expires": expires}))
    engine = StatusEngine(cfg)
    try:
        (number,) = add_orders(engine, 1)
        result = engine.fire_event(number, "Order Shipped")
        assert result.route == kind
        assert engine.stack.count() == (1 if kind == "oss" else 0)
        if kind == "oss":
            assert engine.stack.records()[0].destination == "oss"
    finally:
        engine.db.dispose()


def test_engine_uses_the_setup_files_extra_matrix(write_setup: Callable[..., Path],
                                                  write_matrix: Callable[..., Path]) -> None:
    extra = write_matrix([row(key="housecart", name="House Cart", aliases=[])])
    data = base_setup(matrix={"extra": extra.name})
    data["stores"][0]["cart"] = "housecart"
    cfg = load_config(write_setup(data))
    assert cfg.matrix_extra is not None and cfg.matrix_extra.name == extra.name
    engine = StatusEngine(cfg)
    try:
        (number,) = add_orders(engine, 1)
        result = engine.fire_event(number, "Order Shipped")
        assert (result.route, result.destination) == ("native", "seti")
    finally:
        engine.db.dispose()
