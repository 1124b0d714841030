"""The stack controller: drains the stack through the connectors (rules 5 and 6)."""

from __future__ import annotations

import asyncio
import collections
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
#: Outcomes are settled (one transaction, one fsync) at most this often while
#: the window is busy, or once a quarter batch is in; at once when nothing else
#: is left to send. Each settle has a fixed cost (a transaction, four prepared
#: statements, an fsync): every 50 ms it was about half the settling CPU per
#: update at a few hundred updates a second.
SETTLE_SECONDS = 0.2
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
        self._changed: asyncio.Event | None = None
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

    def _cap(self, record: StackRecord) -> int:
        """Requests in flight allowed to the record's store and destination."""
        try:
            cap = getattr(self.connector_for(record), "max_in_flight", None)
        except LookupError:
            cap = None  # the send fails at once with the reason
        return min(cap or self.settings.concurrency, self.settings.concurrency)

    def connector_for(self, record: StackRecord) -> Connector:
        key = (record.store_id, record.destination)
        if key not in self._connectors:
            self._connectors[key] = self.connector_factory(record)
        return self._connectors[key]

    # -- waking ------------------------------------------------------------

    def wake(self) -> None:
        """Tell the controller new records are on the stack (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._changed is not None:
            self._changed.set()

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
                    self._woken()
        finally:
            await self._db_call(conn.close)

    # -- sending -----------------------------------------------------------

    async def _send(self, record: StackRecord) -> Outcome:
        try:
            connector = self.connector_for(record)
        except LookupError as exc:
            return Failed(str(exc))
        try:
            outcome = await connector.send(record.update)
        except httpx.HTTPError as exc:
            outcome = RetryLater(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a connector bug must not kill the controller
            log.exception("connector %s raised", record.destination)
            outcome = RetryLater(f"connector {record.destination} raised {type(exc).__name__}: {exc}")
        # A reason is stored and shown to support: never with a secret in it.
        if isinstance(outcome, RetryLater):
            return RetryLater(connector.scrub(outcome.reason), outcome.delay)
        if isinstance(outcome, Failed):
            return Failed(connector.scrub(outcome.reason))
        return outcome

    def _settle(self, done: list[tuple[StackRecord, Outcome]]) -> list[tuple[StackRecord, str]]:
        """Settle sent records in one transaction (runs in the database thread)."""
        now = time.time()
        delete: list[int] = []
        reschedule: list[tuple[int, float, str]] = []
        park: list[tuple[StackRecord, str]] = []
        for record, outcome in done:
            if isinstance(outcome, SUCCESS):
                delete.append(record.id)
            elif isinstance(outcome, RetryLater):
                if self.settings.max_attempts and record.attempts >= self.settings.max_attempts:
                    park.append((record, f"gave up after {record.attempts} attempts: {outcome.reason}"))
                else:
                    delay = backoff_delay(record.attempts, self.settings, outcome.delay, self.rng)
                    reschedule.append((record.id, now + delay, outcome.reason))
            else:
                park.append((record, outcome.reason))
        self.stack.settle(delete, reschedule, [(r.id, reason) for r, reason in park], now)
        self.stats.delivered += len(delete)
        self.stats.rescheduled += len(reschedule)
        self.stats.parked += len(park)
        return park

    def _after_settle(self, done: list[tuple[StackRecord, Outcome]], parked: list[tuple[StackRecord, str]]) -> None:
        for record, outcome in done:
            if isinstance(outcome, SUCCESS):
                notify_delivered(record, outcome)
        for record, reason in parked:
            log.warning("parked record %s (order %s): %s", record.id, record.order_number, reason)
            notify_parked(record, reason)

    # -- the loop ----------------------------------------------------------

    async def run(self, *, drain: bool = False,
                  progress: Callable[[ControllerStats, int], None] | None = None) -> ControllerStats:
        """Run until :meth:`stop` (or, with ``drain``, until nothing but parked records remain).

        A pipeline rather than batch by batch: up to ``concurrency`` requests are
        in flight at all times; the next batch is claimed (leased, committed)
        while the current one is still being sent; outcomes are settled in one
        transaction for whatever finished while the previous settle ran. The
        guarantees are the database's, not the timing's: a record is sent only
        under a committed lease, deleted only after its success reply, and a
        later record of an order cannot be claimed while an earlier one is on
        the stack (in flight and awaiting settlement included).
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Set whenever something the loop waits for happens: a send, the claim or
        # the settle finished, or new records arrived. One event rather than
        # asyncio.wait() over every task: that costs a callback per task per turn.
        changed = self._changed = asyncio.Event()
        self._stopping = False
        started = time.time()
        watcher = asyncio.create_task(self._watch())
        settings = self.settings
        # Claim the next batch once fewer than this many claimed records wait to be sent.
        low_water = max(settings.concurrency, settings.batch_size // 2)
        settle_batch = max(1, settings.batch_size // 4)
        # Never start a send this close to the end of its lease (another controller may take it then).
        lease_margin = min(5.0, settings.lease_seconds / 4)
        # Claimed records waiting to be sent, by (store, destination): each
        # connector has its own cap on requests in flight (Connector.max_in_flight).
        pending: dict[tuple[str, str], collections.deque[StackRecord]] = {}
        waiting_count = 0
        in_flight: dict[tuple[str, str], int] = {}
        caps: dict[tuple[str, str], int] = {}
        expiring: list[int] = []
        sending: dict[asyncio.Task[Outcome], StackRecord] = {}
        done: list[tuple[StackRecord, Outcome]] = []
        claiming: asyncio.Future[list[StackRecord]] | None = None
        settling: asyncio.Future[list[tuple[StackRecord, str]]] | None = None
        settled: list[tuple[StackRecord, Outcome]] = []
        more = True  # whether a claim may find something (false after a short claim until woken)

        def sent(task: asyncio.Task[Outcome]) -> None:
            record = sending.pop(task)
            in_flight[(record.store_id, record.destination)] -= 1
            if not task.cancelled():
                done.append((record, task.result()))
            changed.set()

        def finished(_future: asyncio.Future[Any]) -> None:
            changed.set()

        last_beat = 0.0
        last_progress = 0.0
        last_settle = 0.0
        try:
            while True:
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    await self._db_call(self.stack.beat, self.worker_id, self.mode, self.stats.delivered, started)
                    last_beat = time.monotonic()
                if self._wake.is_set():
                    self._wake.clear()
                    more = True
                if self._stopping and not sending and claiming is None and settling is None and not done:
                    break
                # 1. Claim ahead, while the window still has records to send.
                if claiming is None and more and not self._stopping and waiting_count < low_water:
                    claiming = self._loop.run_in_executor(
                        self._db, self.stack.claim, self.worker_id, settings.batch_size, settings.lease_seconds)
                    claiming.add_done_callback(finished)
                # 2. Keep the window full.
                now = time.time()
                for key, queue in pending.items():
                    if self._stopping:
                        break
                    if not queue:
                        continue
                    cap = caps.get(key) or caps.setdefault(key, self._cap(queue[0]))
                    while queue and len(sending) < settings.concurrency and in_flight.get(key, 0) < cap:
                        record = queue.popleft()
                        waiting_count -= 1
                        if record.lease_until is not None and record.lease_until - now < lease_margin:
                            expiring.append(record.id)  # never sent without a lease: given back
                            continue
                        task = asyncio.ensure_future(self._send(record))
                        sending[task] = record
                        in_flight[key] = in_flight.get(key, 0) + 1
                        task.add_done_callback(sent)
                if expiring and claiming is None:
                    await self._db_call(self.stack.release, expiring, self.worker_id)
                    expiring = []
                # 3. Settle whatever finished, in one transaction.
                if settling is None and done and (
                        not waiting_count or self._stopping or len(done) >= settle_batch
                        or time.monotonic() - last_settle >= SETTLE_SECONDS):
                    last_settle = time.monotonic()
                    settled = done[:]
                    done.clear()
                    settling = self._loop.run_in_executor(self._db, self._settle, settled)
                    settling.add_done_callback(finished)
                # 4. Idle: drained, or asleep until the next record is due or new ones arrive.
                if not sending and claiming is None and settling is None and not waiting_count and not done:
                    if self._stopping:
                        break
                    next_due = await self._db_call(self.stack.next_due)
                    if drain and next_due is None:
                        break
                    timeout = HEARTBEAT_SECONDS
                    if next_due is not None:
                        timeout = max(0.005, min(HEARTBEAT_SECONDS, next_due - time.time()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                    more = True
                    continue
                # 5. Wait for the next thing to happen (sends report through ``sent``).
                if not changed.is_set():
                    timeout = HEARTBEAT_SECONDS
                    if done and settling is None:  # outcomes waiting for the next settle
                        timeout = max(0.0, last_settle + SETTLE_SECONDS - time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await changed.wait()
                changed.clear()
                if claiming is not None and claiming.done():
                    batch = claiming.result()
                    claiming = None
                    for record in batch:
                        pending.setdefault((record.store_id, record.destination), collections.deque()).append(record)
                    waiting_count += len(batch)
                    more = len(batch) >= settings.batch_size
                if settling is not None and settling.done():
                    parked = settling.result()
                    settling = None
                    self._after_settle(settled, parked)
                    settled = []
                    more = True  # deletes unblock the next record of those orders
                    if progress is not None and time.monotonic() - last_progress >= 0.2:
                        last_progress = time.monotonic()
                        progress(self.stats, await self._db_call(self._unparked))
        finally:
            self._stopping = True
            for send in list(sending):  # interrupted: these stay leased and go again after the lease
                send.cancel()
            # The database calls run on in their thread whatever happens here: wait for them.
            unsent = [*expiring, *(r.id for queue in pending.values() for r in queue)]
            with contextlib.suppress(Exception):
                if claiming is not None:
                    unsent.extend(r.id for r in await claiming)
            with contextlib.suppress(Exception):
                if settling is not None:
                    self._after_settle(settled, await settling)
            with contextlib.suppress(Exception):
                if done:  # replies already in: record them, so they are not sent again
                    settled = done[:]
                    self._after_settle(settled, await self._db_call(self._settle, settled))
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            for connector in self._connectors.values():
                await connector.aclose()
            self._connectors.clear()
            if unsent:  # claimed but never sent: give them back at once rather than at lease expiry
                with contextlib.suppress(Exception):
                    await self._db_call(self.stack.release, unsent, self.worker_id)
            await self._db_call(self.stack.sign_off, self.worker_id)
        if progress is not None:
            progress(self.stats, await self._db_call(self._unparked))
        return self.stats

    def _unparked(self) -> int:
        with self.stack.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(stack_table)
                                    .where(stack_table.c.parked == sa.false())).scalar_one())
