"""A connector's default map gives the cart's own value for each standard label; a store's own map wins, and a
Notify Cart label the cart would refuse is an error of the setup file, before any request."""

from __future__ import annotations

from pathlib import Path

import pytest
from cartstatus import ConfigError, Connector
from cartstatus.config import read_config
from cartstatus.testing import make_update


class Numbered(Connector):
    name = "numbered"
    status_vocabulary = ("awaiting", "sent", "void")
    default_status_map = {"Processing": "awaiting", "Shipped": "sent", "Cancelled": "void"}


SETUP = """\
system: {UseStatusUpdates: true}
status_events:
  - {event: Invoice Printed, order_status: Processing, notify_cart: true}
  - {event: Order Shipped, order_status: Shipped, notify_cart: true}
  - {event: Order Cancelled, order_status: Cancelled, notify_cart: true}
  - {event: Backordered, order_status: Backordered, notify_cart: %s}
stores:
  - id: shop
    cart: numbered
"""


def load(tmp_path: Path, text: str) -> object:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(text)
    return read_config(setup, lambda cart: Numbered if cart == "numbered" else None)


def test_standard_labels_map_to_the_carts_values_and_the_stores_own_map_wins(tmp_path: Path) -> None:
    cfg = load(tmp_path, SETUP % "false" + "    status_map: {Shipped: awaiting}\n")
    store = cfg.stores["shop"]  # type: ignore[attr-defined]
    assert store.cart_status("Processing") == "awaiting"
    assert store.cart_status("Cancelled") == "void"
    assert store.cart_status("Shipped") == "awaiting"  # the merchant's mapping, not the default
    assert store.cart_status("Backordered") == "Backordered"  # never sent to the cart: no problem


def test_a_notify_cart_label_the_cart_would_refuse_is_an_error_naming_event_label_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, SETUP % "true")
    [problem] = caught.value.problems
    assert problem.field == "stores[0].cart" and problem.line == 9
    assert problem.message.startswith(
        "event 'Backordered' notifies the cart with label 'Backordered', which maps to 'Backordered': not one of "
        "numbered's statuses (awaiting, sent, void); map it in status_map")


def test_the_error_points_at_the_stores_status_map_when_it_has_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, SETUP % "true" + "    status_map: {Shipped: sent}\n")
    [problem] = caught.value.problems
    assert problem.field == "stores[0].status_map" and problem.line == 10


class WithPluginStatuses(Numbered):
    name = "numbered-plus"
    settings_schema = {"type": "object", "properties": {"statuses": {"type": "array", "items": {"type": "string"}}}}

    @classmethod
    def vocabulary_for(cls, settings: object) -> tuple[str, ...] | None:
        extra = settings.get("statuses", []) if isinstance(settings, dict) else []
        return (*(cls.status_vocabulary or ()), *extra)


def test_a_stores_own_statuses_count_in_check_and_before_any_request(tmp_path: Path) -> None:
    setup = tmp_path / "cartstatus.yaml"
    setup.write_text(SETUP % "true" + "    connector: {statuses: [backordered]}\n"
                                      "    status_map: {Backordered: backordered}\n")
    cfg = read_config(setup, lambda cart: WithPluginStatuses)
    connector = WithPluginStatuses(cfg.stores["shop"].connector)
    assert connector.vocabulary == ("awaiting", "sent", "void", "backordered")
    assert connector.check_status(make_update("C-1", "backordered")) is None
    refused = connector.check_status(make_update("C-1", "lost"))
    assert refused is not None and "(awaiting, sent, void, backordered)" in refused.reason
