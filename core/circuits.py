"""A circuit breaker per destination (a store and its connector): one cart that keeps failing is probed
gently while the others are served at full speed.

*closed*: sends go as usual. After :data:`OPEN_AFTER` transient failures in a row (no reply, a timeout, a
5xx without ``Retry-After``: a ``RetryLater`` without a delay) the circuit *opens*: none of the store's
records is claimed or sent for a pause. When it ends the circuit is *half-open*: one record is sent as a
probe, one at a time; its success closes the circuit, its failure opens it again for twice the pause (up to
:data:`LONGEST_PAUSE`). A reply that refuses the update (``Failed``) or asks for a delay is the cart
speaking, so it counts as the cart being there. Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from .outcomes import Outcome, RetryLater

OPEN_AFTER = 3
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 60.0

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def is_failure(outcome: Outcome) -> bool:
    """Whether an outcome says the cart could not be reached or did not answer in time."""
    return isinstance(outcome, RetryLater) and outcome.delay is None


@dataclass
class Circuit:
    """The breaker of one store and destination."""

    store_id: str
    destination: str
    #: Transient failures in a row.
    failures: int = 0
    #: The current pause between probes (0 while closed).
    pause: float = 0.0
    #: When the next probe may start (monotonic); meaningful while not closed.
    probe_at: float = 0.0
    #: A probe is in flight.
    probing: bool = False
    #: Wall-clock time the circuit opened, and the reason of the failure that opened it (already masked).
    opened_at: float | None = None
    last_error: str | None = None

    @property
    def state(self) -> str:
        if not self.pause:
            return CLOSED
        return HALF_OPEN if self.probing or time.monotonic() >= self.probe_at else OPEN

    @property
    def closed(self) -> bool:
        return not self.pause

    def may_probe(self, now: float) -> bool:
        """Whether the one probe may start now (only while not closed)."""
        return bool(self.pause) and not self.probing and now >= self.probe_at

    def finished(self, outcomes: Iterable[Outcome], reason: str | None, now: float, probe: bool) -> bool:
        """Count a send's outcomes (a batch's: one reply); ``probe``: it was the probe. True when the state
        changed (opened or closed)."""
        if probe:
            self.probing = False
        failed = all(is_failure(o) for o in outcomes)
        if not failed:
            was_open = bool(self.pause)
            self.failures, self.pause, self.probing, self.opened_at, self.last_error = 0, 0.0, False, None, None
            return was_open
        self.failures += 1
        self.last_error = reason
        if not self.pause:
            if self.failures < OPEN_AFTER:
                return False
            self.pause, self.probing, self.opened_at = FIRST_PAUSE, False, time.time()
            self.probe_at = now + self.pause
            return True
        if probe:  # the probe failed: a longer pause
            self.pause = min(LONGEST_PAUSE, self.pause * 2)
            self.probe_at = now + self.pause
        return False

    def nothing_to_probe(self, now: float) -> None:
        """No record of the store was due to probe with: look again after the same pause."""
        self.probing = False
        self.probe_at = now + self.pause

    def as_dict(self) -> dict[str, object]:
        return {"store": self.store_id, "destination": self.destination, "state": self.state,
                "failures": self.failures, "pause_seconds": self.pause, "opened_at": self.opened_at,
                "last_error": self.last_error}
