"""The status events an order manager knows, and the default set of them.

The known events are the order manager's own, plus those carts tell apart
(delivered, partly shipped, refunded, on hold, completed). A merchant may define
more in the setup file with ``custom: true``; without it an unknown name is
taken for a typo of a known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

KNOWN_EVENTS: tuple[str, ...] = (
    "Order Received",
    "Payment Received",
    "Invoice Printed",
    "Packing List Printed",
    "Ship Date Entered",
    "Tracking Number Imported",
    "Order Shipped",
    "Order Cancelled",
    "Backordered",
    "Drop Ship Ordered",
    "Drop Ship Canceled",
    "Partially Shipped",
    "Order Delivered",
    "Order Completed",
    "Order On Hold",
    "Order Refunded",
)

#: What "Load Default Status Events" writes: (event, label, notify cart).
DEFAULT_STATUS_EVENTS: tuple[tuple[str, str, bool], ...] = (
    ("Order Received", "Received", False),
    ("Payment Received", "Payment Received", False),
    ("Invoice Printed", "Processing", True),
    ("Packing List Printed", "Processing", True),
    ("Ship Date Entered", "Ship Date Set", False),
    ("Tracking Number Imported", "Shipped", True),
    ("Order Shipped", "Shipped", True),
    ("Order Cancelled", "Cancelled", True),
    ("Backordered", "Backordered", True),
    ("Drop Ship Ordered", "Drop Shipped", True),
    ("Drop Ship Canceled", "Processing", True),
    ("Partially Shipped", "Partially Shipped", True),
    ("Order Delivered", "Delivered", True),
    ("Order Completed", "Completed", True),
    ("Order On Hold", "On Hold", True),
    ("Order Refunded", "Refunded", True),
)


def event_key(name: str) -> str:
    """How event names compare: case and spacing do not count."""
    return " ".join(name.split()).casefold()


def match_event(name: str, among: Iterable[str] = KNOWN_EVENTS) -> str | None:
    """The event of ``among`` (the known ones by default) that ``name`` means, ignoring case and spacing."""
    wanted = event_key(name)
    for event in among:
        if event_key(event) == wanted:
            return event
    return None


def nearest_events(name: str, among: Iterable[str] = KNOWN_EVENTS) -> list[str]:
    """The known events ``name`` is closest to, for a "did you mean" (a misspelling, a word left out)."""
    events = {event_key(e): e for e in among}
    return [events[k] for k in difflib.get_close_matches(event_key(name), list(events), n=3, cutoff=0.8)]
