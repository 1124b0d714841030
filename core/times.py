"""Instants as text: one spelling of a UTC time for everything cartstatus stores, sends or shows."""

from __future__ import annotations

import math
import time


def iso_utc(ts: float) -> str:
    """A POSIX timestamp as ISO 8601 UTC to the second (``2026-06-01T10:00:00Z``).

    The text of ``datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")``
    with ``Z`` for ``+00:00`` (rounded to the microsecond, then cut to the second,
    as datetime does), built with ``time.strftime``, which is cheaper: the OSS
    lookup writes one per history entry.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(round(ts, 6))))
