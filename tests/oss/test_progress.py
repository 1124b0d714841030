"""The progress path: the merchant's labels placed by its own mapping, the defaults, or their words."""

from __future__ import annotations

import pytest
from cartstatus.events import DEFAULT_STATUS_EVENTS
from cartstatus.oss.progress import DEFAULT_PLACES, PLACES, label_key, parse_step, place_of, progress


@pytest.mark.parametrize(("label", "place"), [
    ("Received", "ordered"), ("Payment Received", "ordered"), ("Processing", "processing"),
    ("Ship Date Set", "processing"), ("Shipped", "shipped"), ("Partially Shipped", "shipped"),
    ("Delivered", "delivered"), ("Completed", "delivered"), ("Cancelled", "cancelled"), ("Refunded", "cancelled"),
    ("Backordered", "backordered"),
    # Other merchants' words
    ("Out for delivery", "shipped"), ("In Transit", "shipped"), ("Dispatched", "shipped"),
    ("Order canceled by customer", "cancelled"), ("On back-order", "backordered"), ("Awaiting payment", "ordered"),
    ("Being packed", "processing"), ("  DELIVERED  ", "delivered"),
    ("Something else entirely", "processing"),
])
def test_default_places(label: str, place: str) -> None:
    assert place_of(label) == place


def test_every_default_status_label_has_a_place() -> None:
    assert {label_key(label) for _, label, _ in DEFAULT_STATUS_EVENTS} <= set(DEFAULT_PLACES)
    assert set(DEFAULT_PLACES.values()) <= set(PLACES)


def test_the_merchants_mapping_comes_first() -> None:
    mapping = dict([parse_step("Printed=shipped"), parse_step("Delivered = processing")])
    assert place_of("printed", mapping) == "shipped"
    assert place_of("DELIVERED", mapping) == "processing"
    assert place_of("Cancelled", mapping) == "cancelled"  # not mapped: the defaults


def test_the_current_step_is_marked_and_the_earlier_ones_done() -> None:
    shown = progress("Shipped")
    assert [(s.name, s.state) for s in shown.steps] == [
        ("ordered", "done"), ("processing", "done"), ("shipped", "current"), ("delivered", "todo")]
    assert shown.current == "shipped" and shown.off_path is None


@pytest.mark.parametrize("label", ["Cancelled", "Backordered"])
def test_cancelled_and_backordered_are_off_the_path(label: str) -> None:
    shown = progress(label)
    assert shown.steps == () and shown.current is None and shown.off_path == label.lower()


@pytest.mark.parametrize(("text", "message"), [
    ("Printed", "not LABEL=PLACE"), ("=shipped", "not LABEL=PLACE"), ("Printed=lost", "'lost'.*not a place"),
])
def test_a_bad_step_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_step(text)


def test_a_label_with_an_equals_sign_keeps_it() -> None:
    assert parse_step("A=B=delivered") == ("a=b", "delivered")
