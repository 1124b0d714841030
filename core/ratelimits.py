"""How the stack controller keeps to a cart's request limit, per store and destination.

Every request counts, not every send: a connector whose send reads the order,
adds a shipment and sets the status makes three of the cart's calls. The
controller starts a send only while its store's window has room, and each
request of the connector's client takes its place in the window as it goes
(:meth:`Pacer.acquire`, through an httpx request hook), waiting when the send's
own earlier requests filled it.

A sliding window of send starts rather than aiolimiter's leaky bucket: the
bucket lets up to twice the declared number through in one window (a full
bucket's burst, then the drip), which a cart counting per window answers with
429s; and the controller needs "how long until the next send may start"
without awaiting (a send's deadline starts only once it may go), which the
bucket gives only from its private state. The cart's own word (remaining
calls, reset time, ``Retry-After``: :meth:`Connector.limit_hint`) narrows it further.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import math
import time
from collections.abc import Callable

from .connector import LimitHint, RateLimit

#: How long a store is held when the cart says "none left" without saying until when.
DEFAULT_HOLD_SECONDS = 1.0
#: Set by the stack controller around a send: told how long a request of it will wait for its turn, so that
#: the wait does not eat into the send's deadline (a reply cut short after the cart applied it is sent twice).
REQUEST_WAITED: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar(
    "cartstatus_request_waited", default=None)

#: A start leaves the window this part of it late (at most a second): the cart counts a request when it
#: arrives, and one sent earlier may arrive later than the next (measured: bench/ratelimits.py, issue 10).
WINDOW_MARGIN = 0.05


class Pacer:
    """When the next request to one store may start: at most ``requests`` starts in any ``per_seconds``.

    Times are ``time.monotonic()`` seconds. Without a declared limit only the cart's hints apply.
    """

    def __init__(self, limit: RateLimit | None) -> None:
        usable = limit is not None and limit.requests >= 1 and math.isfinite(limit.per_seconds) \
            and limit.per_seconds > 0
        self.limit = limit if usable else None
        self._starts: collections.deque[float] | None = (
            collections.deque(maxlen=limit.requests) if usable and limit is not None else None)
        #: How long a start counts: the window and its margin.
        self.window = limit.per_seconds + min(1.0, WINDOW_MARGIN * limit.per_seconds) if usable and limit else 0.0
        self._held_until = 0.0
        # What the cart said is left until its window resets: (calls left, until when).
        self._budget: tuple[int, float] | None = None

    def wait(self, now: float) -> float:
        """Seconds before the next request may start; 0 when it may start now."""
        wait = self._held_until - now
        if self._budget is not None:
            left, until = self._budget
            if now >= until:
                self._budget = None
            elif left <= 0:
                wait = max(wait, until - now)
        starts = self._starts
        if starts is not None and self.limit is not None and len(starts) == starts.maxlen:
            wait = max(wait, starts[0] + self.window - now)
        return max(0.0, wait)

    def room(self, now: float) -> float:
        """How many requests may start now (``math.inf`` when nothing limits them)."""
        if self._held_until > now:
            return 0
        room = math.inf
        if self._budget is not None and now < self._budget[1]:
            room = max(0, self._budget[0])
        starts = self._starts
        if starts is not None and self.limit is not None:
            gone = sum(1 for t in starts if t <= now - self.window)  # starts that left the window
            room = min(room, gone + self.limit.requests - len(starts))
        return room

    def until_more_room(self, now: float) -> float:
        """Seconds until :meth:`room` next grows on its own (a start leaves the window, a hold or budget ends)."""
        if self._held_until > now:  # nothing grows before the hold ends
            return self._held_until - now
        if self._budget is not None and self._budget[1] > now and self._budget[0] <= 0:
            return self._budget[1] - now
        later = [t + self.window - now for t in self._starts or () if t + self.window > now]
        if self._budget is not None and self._budget[1] > now:
            later.append(self._budget[1] - now)
        return min(later) if later else 0.0

    async def acquire(self) -> None:
        """Wait until a request may start, then count it (a connector's client calls this before each request)."""
        while (wait := self.wait(time.monotonic())) > 0:
            waiting = REQUEST_WAITED.get()
            if waiting is not None:  # told before the wait: the send's deadline must not end inside it
                waiting(wait)
            await asyncio.sleep(wait)
        self.took(time.monotonic())

    def took(self, now: float) -> None:
        """A request started at ``now``."""
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
