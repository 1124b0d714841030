"""How a stack controller learns that records were queued at once, rather than at its next look.

Each way is the cheapest its case allows:

* records queued by this very process (the engine fired here): :meth:`Stack.subscribe`, no database involved;
* PostgreSQL: ``LISTEN``; the transaction that queues records notifies the stack's channel, delivered at its
  commit (:meth:`Stack.notifications`);
* SQLite, which has no notifications between processes: a thread reads ``PRAGMA data_version`` (one read of
  the WAL's shared memory) every :data:`WATCH_SECONDS` and wakes the controller only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from .stack import Stack

log = logging.getLogger("cartstatus.controller")

#: How often SQLite's change counter is read: half of it on average is added to fire-to-cart latency; 5 ms
#: costs about 1% of a core (a thread's wake-up costs more than the read).
WATCH_SECONDS = 0.005
#: How long to wait before listening or watching again after the database failed.
RETRY_SECONDS = 1.0


class Wakeups:
    """Calls ``wake`` (it must be thread-safe) whenever records may have been queued, while :meth:`run` runs."""

    def __init__(self, stack: Stack, wake: Callable[[], None]) -> None:
        self.stack = stack
        self.wake = wake

    async def run(self) -> None:
        """Until cancelled."""
        unsubscribe = self.stack.subscribe(self.wake)
        try:
            await (self._listen() if self.stack.postgres else self._watch())
        finally:
            unsubscribe()

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in self.stack.notifications():
                    self.wake()  # the first on (re)connecting: what was queued meanwhile is looked at
            except Exception as exc:  # the server restarted, the connection dropped: listen again
                log.warning("listening for new records failed (%s); listening again in %g s",
                            type(exc).__name__, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)

    async def _watch(self) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._poll, args=(stop,), name="cartstatus-watch", daemon=True)
        thread.start()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, thread.join)

    def _poll(self, stop: threading.Event) -> None:
        """The watching thread: its own connection, in autocommit (it never holds a lock)."""
        while not stop.is_set():
            try:
                conn = self.stack.watch_connection()
                try:
                    last = self.stack.data_version(conn)
                    self.wake()  # (re)started: what was queued meanwhile is looked at
                    while not stop.wait(WATCH_SECONDS):
                        version = self.stack.data_version(conn)
                        if version != last:
                            last = version
                            self.wake()
                finally:
                    conn.close()
            except Exception as exc:
                log.warning("watching the stack for new records failed (%s); again in %g s",
                            type(exc).__name__, RETRY_SECONDS)
                stop.wait(RETRY_SECONDS)
