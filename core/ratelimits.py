"""How the stack controller keeps to a cart's request limit, per store and destination.

A sliding window of send starts rather than aiolimiter's leaky bucket: the
bucket lets up to twice the declared number through in one window (a full
bucket's burst, then the drip), which a cart counting per window answers with
429s; and the controller needs "how long until the next send may start"
without awaiting (a send's deadline starts only once it may go), which the
bucket gives only from its private state. The cart's own word (remaining
calls, reset time, ``Retry-After``: :meth:`Connector.limit_hint`) narrows it further.
"""

from __future__ import annotations

import collections
import math

from .connector import LimitHint, RateLimit

#: How long a store is held when the cart says "none left" without saying until when.
DEFAULT_HOLD_SECONDS = 1.0


class Pacer:
    """When the next send to one store may start: at most ``requests`` starts in any ``per_seconds``.

    Times are ``time.monotonic()`` seconds. Without a declared limit only the cart's hints apply.
    """

    def __init__(self, limit: RateLimit | None) -> None:
        usable = limit is not None and limit.requests >= 1 and math.isfinite(limit.per_seconds) \
            and limit.per_seconds > 0
        self.limit = limit if usable else None
        self._starts: collections.deque[float] | None = (
            collections.deque(maxlen=limit.requests) if usable and limit is not None else None)
        self._held_until = 0.0
        # What the cart said is left until its window resets: (calls left, until when).
        self._budget: tuple[int, float] | None = None

    def wait(self, now: float) -> float:
        """Seconds before the next send may start; 0 when it may start now."""
        wait = self._held_until - now
        if self._budget is not None:
            left, until = self._budget
            if now >= until:
                self._budget = None
            elif left <= 0:
                wait = max(wait, until - now)
        starts = self._starts
        if starts is not None and self.limit is not None and len(starts) == starts.maxlen:
            wait = max(wait, starts[0] + self.limit.per_seconds - now)
        return max(0.0, wait)

    def took(self, now: float) -> None:
        """A send started at ``now``."""
        if self._starts is not None:
            self._starts.append(now)
        if self._budget is not None:
            left, until = self._budget
            self._budget = (left - 1, until)

    def hint(self, hint: LimitHint) -> None:
        """The cart's own word on its limit, read from a reply's headers."""
        reset_in = hint.reset_in
        if reset_in is None or not math.isfinite(reset_in) or reset_in < 0:
            reset_in = None
        if hint.remaining is not None and hint.remaining <= 0:
            hold = reset_in if reset_in is not None else (
                self.limit.per_seconds if self.limit is not None else DEFAULT_HOLD_SECONDS)
            self._held_until = max(self._held_until, hint.at + hold)
            self._budget = None
        elif hint.remaining is not None and reset_in is not None:
            self._budget = (hint.remaining, hint.at + reset_in)
