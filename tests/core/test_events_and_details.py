"""Issue 15: the events carts tell apart, events of the merchant's own, and what a cart said beyond OK."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cartstatus import ConfigError, StackController, StatusEngine, load_config
from cartstatus.cli import main
from cartstatus.diagnose import diagnose
from cartstatus.events import DEFAULT_STATUS_EVENTS, KNOWN_EVENTS
from cartstatus.outcomes import AlreadyDone, Delivered
from click.testing import CliRunner

from ..conftest import SHOP_PASSWORD, add_orders, base_setup
from .conftest import Answers

OWN = {"event": "Gift Wrapped", "order_status": "Wrapped", "notify_cart": True, "custom": True}


def setup_with(events: list[dict[str, Any]]) -> dict[str, Any]:
    data = base_setup()
    data["status_events"] = [*data["status_events"], *events]
    return data


def test_the_events_carts_tell_apart_are_known_and_in_the_defaults() -> None:
    for event in ("Order Delivered", "Partially Shipped", "Order Refunded", "Order On Hold", "Order Completed"):
        assert event in KNOWN_EVENTS
    defaults = {event: (label, notify) for event, label, notify in DEFAULT_STATUS_EVENTS}
    assert defaults["Order Delivered"] == ("Delivered", True)
    assert [e for e, _, _ in DEFAULT_STATUS_EVENTS] == list(KNOWN_EVENTS)


def test_an_event_of_the_merchants_own_is_accepted_fired_and_listed(
    write_setup: Callable[..., Path],
) -> None:
    path = write_setup(setup_with([OWN]))
    config = load_config(path)
    assert config.status_events["Gift Wrapped"].custom
    engine = StatusEngine(config)
    try:
        (order,) = add_orders(engine, 1)
        (result,) = engine.fire("gift  WRAPPED", [order])  # matched as known events are: case and spacing aside
        assert result.queued and engine.show_order(order)["status"] == "Wrapped"
    finally:
        engine.db.dispose()

    listed = json.loads(CliRunner().invoke(main, ["--config", str(path), "events", "list", "--json"]).output)
    kinds = {r["event"]: (r["kind"], r["defined"]) for r in listed}
    assert kinds["Gift Wrapped"] == ("merchant-defined", True)
    assert kinds["Order Shipped"] == ("known", True) and kinds["Order Delivered"] == ("known", False)
    table = CliRunner().invoke(main, ["--config", str(path), "events", "list"]).output
    assert "merchant-defined" in table and "Gift Wrapped" in table


@pytest.mark.parametrize(("event", "message"), [
    ({"event": "Order Shiped", "order_status": "Shipped"},
     "'Order Shiped' is not a known status event; did you mean 'Order Shipped'? "
     "(an event of your own needs custom: true)"),
    ({"event": "Gift Wrapped", "order_status": "Wrapped"},
     "'Gift Wrapped' is not a known status event; expected one of: Order Received"),
    ({"event": "order delivered", "order_status": "Delivered", "custom": True},
     "'Order Delivered' is a known status event: leave out custom: true"),
    ({**OWN, "event": "gift wrapped"}, "'gift wrapped' is defined twice; keep one"),
])
def test_a_misspelt_or_doubled_event_is_refused_with_what_to_do(
    write_setup: Callable[..., Path], event: dict[str, Any], message: str
) -> None:
    events = [OWN, event] if event.get("event") == "gift wrapped" else [event]
    with pytest.raises(ConfigError) as caught:
        load_config(write_setup(setup_with(events)))
    assert any(message in p.message for p in caught.value.problems), caught.value.problems


def test_load_defaults_keeps_the_merchants_own_events_as_custom(write_setup: Callable[..., Path]) -> None:
    path = write_setup(setup_with([OWN]))
    result = CliRunner().invoke(main, ["--config", str(path), "events", "load-defaults", "--force"])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(path.read_text())["status_events"]
    assert [e["event"] for e in written] == list(KNOWN_EVENTS)  # --force replaces the section with the defaults


async def test_what_the_cart_said_beyond_ok_is_kept_and_shown(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine()
    partial, repeat, plain = add_orders(engine, 3)
    engine.fire("Order Shipped", [partial, repeat, plain], tracking=["UPS:1Z1", "UPS:1Z2"])
    connector = Answers({
        partial: Delivered(f"second tracking number not recorded by the cart (password={SHOP_PASSWORD})"),
        repeat: AlreadyDone("shipment 7 exists"),
        plain: Delivered(),
    }, key=lambda u: u.order_number)
    await StackController(engine.config, engine.stack, connector_factory=lambda r: connector).run(drain=True)

    def last(order: str) -> dict[str, Any]:
        shown = json.loads(CliRunner().invoke(
            main, ["--config", str(engine.config.path), "orders", "show", order, "--json"]).output)
        return shown["history"][-1]  # type: ignore[no-any-return]

    assert (last(partial)["outcome"], last(partial)["detail"]) == (
        "delivered", "second tracking number not recorded by the cart (password=********)")
    assert last(repeat)["detail"] == "the cart already had it: shipment 7 exists"
    assert last(plain)["detail"] is None

    table = CliRunner().invoke(main, ["--config", str(engine.config.path), "orders", "show", partial]).output
    assert {"tracking", "recorded"} <= set(table.split()) and SHOP_PASSWORD not in table  # a narrow table wraps
    rule6 = next(c for c in diagnose(engine.config, engine, partial).checks if c.rule == 6)
    assert rule6.status == "pass" and rule6.detail.endswith(
        "; the cart said: second tracking number not recorded by the cart (password=********)")
