"""Where an order is on its way: the merchant's status label placed on a short path of steps.

The path is fixed (ordered, processing, shipped, delivered); a cancelled or
backordered order is off the path and shown as such. Which place a label takes
comes from the merchant's own mapping (``cartstatus-oss accounts update
--step LABEL=PLACE``), else from the default labels of cartstatus's status
events, else from words in the label; a label nothing recognises is "processing".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: The path, in order.
STEPS = ("ordered", "processing", "shipped", "delivered")
#: Places off the path: shown as a notice, not as a step.
STATES = ("cancelled", "backordered")
PLACES = STEPS + STATES

#: The labels of cartstatus's default status events (core's DEFAULT_STATUS_EVENTS), by label key.
DEFAULT_PLACES = {
    "received": "ordered", "payment received": "ordered",
    "processing": "processing", "ship date set": "processing", "on hold": "processing",
    "shipped": "shipped", "drop shipped": "shipped", "partially shipped": "shipped",
    "delivered": "delivered", "completed": "delivered",
    "cancelled": "cancelled", "refunded": "cancelled",
    "backordered": "backordered",
}
#: Words of other labels, first match wins ("out for delivery" is on its way, not delivered).
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backordered", ("backorder", "back order", "back-order", "out of stock")),
    ("cancelled", ("cancel", "refund", "void")),
    ("shipped", ("out for delivery", "in transit")),
    ("delivered", ("deliver", "complete", "picked up", "collected")),
    ("shipped", ("ship", "dispatch", "transit")),
    ("processing", ("process", "print", "pack", "prepar", "hold")),
    ("ordered", ("receiv", "placed", "new", "pending", "payment", "ordered", "confirm")),
)


def label_key(label: str) -> str:
    """How labels compare: case and spacing do not count."""
    return " ".join(label.split()).casefold()


def place_of(label: str, mapping: Mapping[str, str] | None = None) -> str:
    """The place of ``label``: the merchant's mapping, then the defaults, then its words, else processing."""
    key = label_key(label)
    if mapping and key in mapping:
        return mapping[key]
    if key in DEFAULT_PLACES:
        return DEFAULT_PLACES[key]
    for place, words in KEYWORDS:
        if any(word in key for word in words):
            return place
    return "processing"


def parse_step(text: str) -> tuple[str, str]:
    """``LABEL=PLACE`` (the ``--step`` option) as (label key, place); ValueError says what is wrong."""
    label, sep, place = text.rpartition("=")
    place = place.strip().casefold()
    if not sep or not label.strip():
        raise ValueError(f"{text!r} is not LABEL=PLACE (e.g. 'Out for delivery=shipped')")
    if place not in PLACES:
        raise ValueError(f"{place!r} (in {text!r}) is not a place: use one of {', '.join(PLACES)}")
    return label_key(label), place


@dataclass(frozen=True)
class Step:
    name: str
    state: Literal["done", "current", "todo"]


@dataclass(frozen=True)
class Progress:
    """The path with the order's step marked current, or the state that takes it off the path."""

    steps: tuple[Step, ...]
    off_path: str | None = None

    @property
    def current(self) -> str | None:
        return next((s.name for s in self.steps if s.state == "current"), None)


def progress(label: str, mapping: Mapping[str, str] | None = None) -> Progress:
    place = place_of(label, mapping)
    if place in STATES:
        return Progress((), place)
    at = STEPS.index(place)
    return Progress(tuple(Step(name, "done" if i < at else "current" if i == at else "todo")
                          for i, name in enumerate(STEPS)))
