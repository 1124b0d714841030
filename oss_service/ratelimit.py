"""Per-key token buckets: updates per account, lookups and unauthenticated requests per client address."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    """``rate`` requests a second on average, bursts of up to ``burst``; one bucket per key.

    In memory, per server process: behind several workers each has its own
    buckets (the reverse proxy should limit too; see docs/deploying-oss.md).
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def blocked(self, key: Hashable) -> bool:
        """Whether ``key`` has no token left now (nothing is taken)."""
        now = self.clock()
        with self._lock:
            found = self._buckets.get(key)
        return found is not None and found[0] + (now - found[1]) * self.rate < 1

    def check(self, key: Hashable) -> float | None:
        """Take one token for ``key``; None when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > self.max_keys:
                    self._prune(now)
                return None
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forget it.
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) > self.max_keys:
            self._buckets.pop(next(iter(self._buckets)))
