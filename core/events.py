"""The status events an order manager knows, and the default set of them."""

from __future__ import annotations

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
)


def match_event(name: str) -> str | None:
    """The known event ``name`` means, ignoring case and spacing."""
    wanted = " ".join(name.split()).casefold()
    for event in KNOWN_EVENTS:
        if event.casefold() == wanted:
            return event
    return None
