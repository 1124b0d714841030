"""The stack controller: drains the stack through the connectors (rules 5 and 6)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from .config import Config, ControllerSettings
from .connector import Connector
from .outcomes import SUCCESS, Failed, Outcome, RetryLater
from .plugins import get_connectors, notify_delivered, notify_parked
from .routing import OSS_CONNECTOR
from .stack import HEARTBEAT_STALE_SECONDS, Stack, StackRecord
from .storage import stack as stack_table

log = logging.getLogger("cartstatus.controller")
T = TypeVar("T")

HEARTBEAT_SECONDS = HEARTBEAT_STALE_SECONDS / 3
#: How often the stack is checked for records written by other processes.
WATCH_SECONDS = 0.1


def backoff_delay(attempts: int, settings: ControllerSettings, hint: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter, never sooner than the cart asked for.

    ``attempts`` counts the attempts made so far (1 after the first failure).
    The jitter draws from the upper half of the window so that delays still grow.
    """
    draw = rng.random() if rng is not None else random.random()
    ceiling = min(settings.backoff_cap, settings.backoff_base * 2 ** max(0, attempts - 1))
    delay = ceiling * (0.5 + draw / 2)
    return max(delay, hint or 0.0)


@dataclass
class ControllerStats:
    delivered: int = 0
    rescheduled: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)


ConnectorFactory = Callable[[StackRecord], Connector]


class StackController:
    """Claims due records with a lease, sends them, settles each by its outcome."""

    def __init__(
        self,
        config: Config,
        stack: Stack,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connector_factory: ConnectorFactory | None = None,
        mode: str = "local",
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.settings = config.controller
        self.stack = stack
        self.transport = transport
        self.connector_factory = connector_factory or self._make_connector
        self.mode = mode
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self.stats = ControllerStats()
        self._connectors: dict[tuple[str, str], Connector] = {}
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cartstatus-stack")
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- connectors --------------------------------------------------------

    def _make_connector(self, record: StackRecord) -> Connector:
        store = self.config.stores.get(record.store_id)
        if store is None:
            raise LookupError(f"store {record.store_id!r} is no longer in the setup file")
        classes = get_connectors()
        cls = classes.get(record.destination)
        if cls is None:
            raise LookupError(f"connector {record.destination!r} is not installed (see `cartstatus plugins`)")
        if record.destination == OSS_CONNECTOR:
            if store.oss is None:
                raise LookupError(f"store {store.id!r} has no oss: block in the setup file")
            settings: dict[str, Any] = {"url": store.oss.url, "merchant": store.oss.merchant,
                                        "token": store.oss.token}
        else:
            settings = store.connector
        return cls(settings, transport=self.transport)

    def connector_for(self, record: StackRecord) -> Connector:
        key = (record.store_id, record.destination)
        if key not in self._connectors:
            self._connectors[key] = self.connector_factory(record)
        return self._connectors[key]

    # -- waking ------------------------------------------------------------

    def wake(self) -> None:
        """Tell the controller new records are on the stack (safe from any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    async def _db_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def _change_marker(self, conn: Any) -> Any:
        if self.stack.postgres:
            cur = conn.cursor()
            cur.execute("SELECT max(id) FROM stack")
            value = cur.fetchone()[0]
            cur.close()
            conn.rollback()
            return value
        # data_version changes whenever another connection commits.
        return conn.execute("PRAGMA data_version").fetchone()[0]

    async def _watch(self) -> None:
        """Wake when another process writes to the stack (not only on a timer)."""
        # A raw DB-API connection in autocommit: it must never hold a lock.
        conn = await self._db_call(self.stack.engine.raw_connection)
        try:
            last = await self._db_call(self._change_marker, conn)
            while not self._stopping:
                await asyncio.sleep(WATCH_SECONDS)
                marker = await self._db_call(self._change_marker, conn)
                if marker != last:
                    last = marker
                    assert self._wake is not None
                    self._wake.set()
        finally:
            await self._db_call(conn.close)

    # -- sending -----------------------------------------------------------

    async def _send(self, record: StackRecord, limit: asyncio.Semaphore) -> Outcome:
        async with limit:
            try:
                connector = self.connector_for(record)
            except LookupError as exc:
                return Failed(str(exc))
            try:
                return await connector.send(record.update)
            except httpx.HTTPError as exc:
                return RetryLater(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a connector bug must not kill the controller
                log.exception("connector %s raised", record.destination)
                return RetryLater(f"connector {record.destination} raised {type(exc).__name__}: {exc}")

    async def _process(self, batch: list[StackRecord]) -> None:
        limit = asyncio.Semaphore(self.settings.concurrency)
        outcomes = await asyncio.gather(*(self._send(r, limit) for r in batch))
        now = time.time()
        delete: list[int] = []
        reschedule: list[tuple[int, float, str]] = []
        park: list[tuple[int, str]] = []
        for record, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, SUCCESS):
                delete.append(record.id)
            elif isinstance(outcome, RetryLater):
                if self.settings.max_attempts and record.attempts >= self.settings.max_attempts:
                    park.append((record.id, f"gave up after {record.attempts} attempts: {outcome.reason}"))
                else:
                    delay = backoff_delay(record.attempts, self.settings, outcome.delay, self.rng)
                    reschedule.append((record.id, now + delay, outcome.reason))
            else:
                park.append((record.id, outcome.reason))
        await self._db_call(self.stack.settle, delete, reschedule, park, now)
        self.stats.delivered += len(delete)
        self.stats.rescheduled += len(reschedule)
        self.stats.parked += len(park)
        by_id = {r.id: r for r in batch}
        for record, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, SUCCESS):
                notify_delivered(record, outcome)
        for rid, reason in park:
            log.warning("parked record %s (order %s): %s", rid, by_id[rid].order_number, reason)
            notify_parked(by_id[rid], reason)

    # -- the loop ----------------------------------------------------------

    async def run(self, *, drain: bool = False,
                  progress: Callable[[ControllerStats, int], None] | None = None) -> ControllerStats:
        """Run until :meth:`stop` (or, with ``drain``, until nothing but parked records remain)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        started = time.time()
        watcher = asyncio.create_task(self._watch())
        last_beat = 0.0
        try:
            while not self._stopping:
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    await self._db_call(self.stack.beat, self.worker_id, self.mode, self.stats.delivered, started)
                    last_beat = time.monotonic()
                self._wake.clear()
                batch = await self._db_call(self.stack.claim, self.worker_id, self.settings.batch_size,
                                            self.settings.lease_seconds)
                if batch:
                    await self._process(batch)
                    if progress is not None:
                        progress(self.stats, await self._db_call(self._unparked))
                    continue
                next_due = await self._db_call(self.stack.next_due)
                if drain and next_due is None:
                    break
                timeout = HEARTBEAT_SECONDS
                if next_due is not None:
                    timeout = max(0.005, min(HEARTBEAT_SECONDS, next_due - time.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            self._stopping = True
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            for connector in self._connectors.values():
                await connector.aclose()
            self._connectors.clear()
            await self._db_call(self.stack.sign_off, self.worker_id)
        return self.stats

    def _unparked(self) -> int:
        with self.stack.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(stack_table)
                                    .where(stack_table.c.parked == sa.false())).scalar_one())
