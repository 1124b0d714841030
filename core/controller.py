"""The stack controller: drains the stack through the connectors (rules 5 and 6)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import random
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from .config import Config, ControllerSettings
from .connector import Connector, RateLimit, outcome_for_transport_error, reason_text
from .outcomes import SUCCESS, Failed, Outcome, RetryLater, outcome_detail
from .plugins import get_connectors, notify_delivered, notify_parked
from .ratelimits import Pacer
from .routing import OSS_CONNECTOR
from .stack import HEARTBEAT_STALE_SECONDS, Stack, StackRecord
from .wakeups import Wakeups

log = logging.getLogger("cartstatus.controller")
T = TypeVar("T")

HEARTBEAT_SECONDS = HEARTBEAT_STALE_SECONDS / 3
#: Outcomes are settled (one transaction, one fsync) at most this often while
#: the window is busy, or once a quarter batch is in; at once when nothing else
#: is left to send. Each settle has a fixed cost (a transaction, four prepared
#: statements, an fsync): every 50 ms it was about half the settling CPU per
#: update at a few hundred updates a second.
SETTLE_SECONDS = 0.2


def backoff_delay(attempts: int, settings: ControllerSettings, hint: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter, never sooner than the cart asked for.

    ``attempts`` counts the attempts made so far (1 after the first failure).
    The jitter draws from the upper half of the window so that delays still grow.
    The exponent stops growing once the cap is reached, so no count of attempts overflows.
    """
    draw = rng.random() if rng is not None else random.random()
    doublings = max(0, attempts - 1)
    ceiling = settings.backoff_cap
    if settings.backoff_base * 2.0 ** min(doublings, 1023) < ceiling:
        ceiling = settings.backoff_base * 2.0 ** doublings
    delay = ceiling * (0.5 + draw / 2)
    return max(delay, hint or 0.0)


def _for_people(seconds: float) -> str:
    """How long a horizon or a run of failures is, in its largest sensible unit ("3 days", "60 minutes", "12 s")."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


@dataclass
class ControllerStats:
    delivered: int = 0
    rescheduled: int = 0
    parked: int = 0
    #: Outcomes not applied: the record's lease had passed to another holder by then.
    stale: int = 0
    errors: list[str] = field(default_factory=list)


ConnectorFactory = Callable[[StackRecord], Connector]

#: A database step (claim, settle) that failed is tried again after this long; after this many in a row, give up.
DB_RETRY_SECONDS = 1.0
DB_FAILURES_TOLERATED = 30


class StackController:
    """Claims due records with a lease, sends them, settles each by its outcome.

    Order holds by construction: a send runs under one total deadline that ends
    inside its lease (less :attr:`ControllerSettings.lease_margin`); a record whose
    send or settlement runs long has its lease renewed; an outcome is applied
    only by the holder of the record's current lease (its fencing token), so a
    late reply can neither settle a record another controller took over nor
    unblock the next update of its order.
    """

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
        self._pacers: dict[tuple[str, str], Pacer] = {}  # each store's pace, shared with its connector
        self._broken: set[tuple[str, str]] = set()  # connectors that failed to start (logged once)
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
        except Exception:
            cap = None  # the send fails at once with the reason
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            cap = None
        return min(cap or self.settings.concurrency, self.settings.concurrency)

    def _batch_limit(self, record: StackRecord) -> int:
        """Records sent together to the record's store: a batch for a connector with a real batch call
        (``supports_batch``), else one; the connector splits a batch into the cart's own request sizes."""
        try:
            batches = getattr(self.connector_for(record), "supports_batch", False) is True
        except Exception:
            batches = False  # the send fails at once with the reason
        return self.settings.batch_size if batches else 1

    def _pacer(self, record: StackRecord) -> Pacer:
        """The pace of requests to the record's store and destination: its connector's ``rate_limit``,
        narrowed by what the cart says (:meth:`Connector.limit_hint`)."""
        key = (record.store_id, record.destination)
        if key not in self._pacers:
            try:
                self.connector_for(record)  # makes the pacer, given to the connector
            except Exception:
                self._pacers[key] = Pacer(None)  # the send fails at once with the reason
        return self._pacers[key]

    def connector_for(self, record: StackRecord) -> Connector:
        key = (record.store_id, record.destination)
        if key not in self._connectors:
            connector = self.connector_factory(record)
            limit = getattr(connector, "rate_limit", None)
            pacer = self._pacers[key] = Pacer(limit if isinstance(limit, RateLimit) else None)
            if isinstance(connector, Connector):
                connector.pace_with(pacer)
            self._connectors[key] = connector
        return self._connectors[key]

    def _deadline_for(self, record: StackRecord) -> float:
        """The total deadline of one send of ``record``: its connector's timeout, within what a lease allows."""
        longest = self.settings.longest_send
        try:
            connector = self.connector_for(record)
            timeout = float(connector.timeout_for(connector.settings))
        except Exception:  # no connector (the send fails at once, with the reason) or no timeout declared
            return longest
        return min(timeout, longest) if math.isfinite(timeout) and timeout > 0 else longest

    def _scrub(self, record: StackRecord, text: str) -> str:
        """``text`` as it may be stored and shown: the store's secrets masked, then cut."""
        connector = self._connectors.get((record.store_id, record.destination))
        if connector is not None:
            text = connector.scrub(text)
        # And every secret of the setup file: a connector that could not start has none to mask with.
        return reason_text(self.config.secret_mask(text))

    # -- waking ------------------------------------------------------------

    def wake(self) -> None:
        """Tell the controller new records are on the stack (safe from any thread)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
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

    # -- sending -----------------------------------------------------------

    async def _send(self, record: StackRecord, deadline: float) -> Outcome:
        """One send, whatever the connector does: an outcome always comes back, within ``deadline``."""
        key = (record.store_id, record.destination)
        try:
            connector = self.connector_for(record)
        except LookupError as exc:
            return Failed(self._scrub(record, str(exc)))
        except Exception as exc:  # a broken plugin or store fails its own records only
            reason = self._scrub(record, f"connector {record.destination} could not be set up: "
                                         f"{type(exc).__name__}: {exc}")
            if key not in self._broken:
                self._broken.add(key)
                log.error("store %s: %s", record.store_id, reason)
            return RetryLater(reason)
        return self._checked(record, await self._outcome_of(record, connector, connector.send(record.update), deadline))

    async def _send_batch(self, records: list[StackRecord], deadline: float) -> list[Outcome]:
        """One ``send_batch`` of a store's records (its connector has a real batch call): one outcome each."""
        if len(records) == 1:
            return [await self._send(records[0], deadline)]
        first = records[0]
        try:
            connector = self.connector_for(first)
        except Exception:  # the reason, logged once, comes back for each record
            return [await self._send(record, deadline) for record in records]
        outcomes = await self._outcome_of(first, connector, connector.send_batch([r.update for r in records]),
                                          deadline)
        if isinstance(outcomes, RetryLater):  # the whole batch timed out or raised
            return [self._checked(record, outcomes) for record in records]
        if not isinstance(outcomes, list | tuple) or len(outcomes) != len(records):
            wrong = RetryLater(f"connector {first.destination} send_batch() gave "
                               f"{len(outcomes) if isinstance(outcomes, list | tuple) else type(outcomes).__name__}"
                               f" outcomes for {len(records)} updates; it must give one per update, in order")
            return [self._checked(record, wrong) for record in records]
        return [self._checked(record, outcome) for record, outcome in zip(records, outcomes, strict=True)]

    async def _outcome_of(self, record: StackRecord, connector: Connector, sending: Awaitable[Any],
                          deadline: float) -> Any:
        """What ``sending`` (a connector's send) gave within ``deadline``; a timeout's, an error's or a bug's
        RetryLater otherwise."""
        outcome: Any
        try:
            async with asyncio.timeout(deadline) as scope:
                outcome = await sending
        except TimeoutError:
            if not scope.expired():
                outcome = RetryLater("timed out: TimeoutError")
            else:  # connect, write and read together took too long: a trickling cart ends here too
                outcome = RetryLater(f"no complete reply within the send's deadline of {deadline:.3g} s")
        except httpx.HTTPError as exc:  # escaped the connector: a failed login keeps its own outcome
            outcome = outcome_for_transport_error(exc)
            if isinstance(outcome, RetryLater) and str(exc):
                outcome = RetryLater(f"{outcome.reason}: {exc}", outcome.delay)
        except Exception as exc:  # a connector bug must not kill the controller
            text = "".join(traceback.format_exception(exc))
            log.error("connector %s raised:\n%s", record.destination, connector.scrub(text))
            outcome = RetryLater(f"connector {record.destination} raised {type(exc).__name__}: {exc}")
        return outcome

    def _checked(self, record: StackRecord, outcome: Any) -> Outcome:
        """``outcome`` as it may be stored and shown: an outcome, its reason with no secret in any encoding."""
        if isinstance(outcome, RetryLater):
            delay = outcome.delay
            if not isinstance(delay, int | float) or isinstance(delay, bool) or not math.isfinite(delay):
                delay = None
            return RetryLater(self._scrub(record, str(outcome.reason)), delay)
        if isinstance(outcome, Failed):
            return Failed(self._scrub(record, str(outcome.reason)))
        if isinstance(outcome, SUCCESS):  # its detail is kept in the history: masked, one line
            detail = outcome.detail if isinstance(outcome.detail, str) else str(outcome.detail)
            return type(outcome)(self._scrub(record, detail)) if detail else outcome
        return RetryLater(self._scrub(record, f"connector {record.destination} returned {type(outcome).__name__}, "
                                              "not an outcome (Delivered, AlreadyDone, RetryLater or Failed)"))

    def _settle(self, done: list[tuple[StackRecord, Outcome]]) -> list[tuple[StackRecord, Outcome, str | None]]:
        """Settle sent records in one transaction (runs in the database thread).

        Returns what was applied: each record with its outcome and, when it was
        parked, the reason. Records whose lease had passed to another holder are
        left out (and counted as stale).
        """
        now = time.time()
        settings = self.settings
        delete: list[tuple[StackRecord, str]] = []
        reschedule: list[tuple[StackRecord, float, str]] = []
        park: list[tuple[StackRecord, str]] = []
        parked_reason: dict[int, str] = {}
        for record, outcome in done:
            if isinstance(outcome, SUCCESS):
                delete.append((record, outcome_detail(outcome)))
            elif isinstance(outcome, RetryLater):
                since = record.failing_since if record.failing_since is not None else now
                if settings.max_attempts and record.attempts >= settings.max_attempts:
                    park.append((record, f"gave up after {record.attempts} attempts: {outcome.reason}"))
                elif now - since >= settings.retry_horizon_seconds:
                    park.append((record, f"gave up after {_for_people(now - since)} of failures "
                                         f"({record.attempts} attempts; controller.retry_horizon_seconds is "
                                         f"{settings.retry_horizon_seconds:g}): {outcome.reason}"))
                else:
                    delay = backoff_delay(record.attempts, settings, outcome.delay, self.rng)
                    reschedule.append((record, now + delay, outcome.reason))
            else:
                park.append((record, outcome.reason))
        parked_reason = {r.id: reason for r, reason in park}
        stale = self.stack.settle(delete, reschedule, park, now)
        applied = [(r, o, parked_reason.get(r.id)) for r, o in done if r.id not in stale]
        self.stats.delivered += sum(1 for r, _ in delete if r.id not in stale)
        self.stats.rescheduled += sum(1 for r, _, _ in reschedule if r.id not in stale)
        self.stats.parked += sum(1 for r, _ in park if r.id not in stale)
        self.stats.stale += len(stale)
        if stale:
            log.info("%d outcomes came after their lease passed to another holder; left to it: %s",
                     len(stale), sorted(stale))
        return applied

    def _after_settle(self, applied: list[tuple[StackRecord, Outcome, str | None]]) -> None:
        for record, outcome, parked in applied:
            if parked is not None:
                log.warning("parked record %s (order %s): %s", record.id, record.order_number, parked)
                notify_parked(record, parked)
            elif isinstance(outcome, SUCCESS):
                notify_delivered(record, outcome)

    # -- the loop ----------------------------------------------------------

    async def run(self, *, drain: bool = False,
                  progress: Callable[[ControllerStats, int], None] | None = None) -> ControllerStats:
        """Run until :meth:`stop` (or, with ``drain``, until nothing but parked records remain).

        A pipeline rather than batch by batch: up to ``concurrency`` requests are
        in flight at all times; the next batch is claimed (leased, committed)
        while the current one is still being sent; outcomes are settled in one
        transaction for whatever finished while the previous settle ran. The
        guarantees are the database's, not the timing's: a record is sent only
        under a committed lease that outlasts the send's deadline, settled only
        by the holder of its current lease, deleted only after its success reply,
        and a later record of an order cannot be claimed while an earlier one is
        on the stack (in flight and awaiting settlement included).
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        # Set whenever something the loop waits for happens: a send, the claim or
        # the settle finished, or new records arrived. One event rather than
        # asyncio.wait() over every task: that costs a callback per task per turn.
        changed = self._changed = asyncio.Event()
        self._stopping = False
        started = time.time()
        watcher = asyncio.create_task(Wakeups(self.stack, self.wake).run())
        settings = self.settings
        margin = settings.lease_margin
        # Claim the next batch once fewer than this many claimed records wait to be sent.
        low_water = max(settings.concurrency, settings.batch_size // 2)
        settle_batch = max(1, settings.batch_size // 4)
        # How often leases are looked over: records sent or settled late are renewed well before they end.
        lease_check = min(1.0, settings.lease_seconds / 8)
        # Claimed records waiting to be sent, by (store, destination): each
        # connector has its own cap on requests in flight (Connector.max_in_flight).
        pending: dict[tuple[str, str], collections.deque[StackRecord]] = {}
        waiting_count = 0
        in_flight: dict[tuple[str, str], int] = {}
        caps: dict[tuple[str, str], int] = {}
        deadlines: dict[tuple[str, str], float] = {}  # a send's total deadline, per (store, destination)
        # Each store's pace (Connector.rate_limit and the cart's hints, self._pacer): a record waits for
        # room in it in ``pending``, before its send's deadline starts and before its lease is looked at;
        # each request of the send then takes its place (the connector's client waits on the same pacer).
        paced_until = 0.0  # monotonic time a paced store may send again (0: none waits)
        expiring: list[StackRecord] = []
        # Each send in flight and its records: one, or a batch for a connector with a real batch call.
        sending: dict[asyncio.Task[list[Outcome]], list[StackRecord]] = {}
        batch_limits: dict[tuple[str, str], int] = {}
        done: list[tuple[StackRecord, Outcome]] = []
        # The current end of each held record's lease (renewal moves it).
        lease_end: dict[int, float] = {}
        claiming: asyncio.Future[list[StackRecord]] | None = None
        settling: asyncio.Future[list[tuple[StackRecord, Outcome, str | None]]] | None = None
        renewing: asyncio.Future[list[StackRecord]] | None = None
        renew_asked: list[StackRecord] = []
        settled: list[tuple[StackRecord, Outcome]] = []
        more = True  # whether a claim may find something (false after a short claim until woken)
        db_failures = 0
        db_paused_until = 0.0

        def sent(task: asyncio.Task[list[Outcome]]) -> None:
            records = sending.pop(task)
            in_flight[(records[0].store_id, records[0].destination)] -= 1
            if not task.cancelled():
                done.extend(zip(records, task.result(), strict=True))
            else:
                for record in records:
                    lease_end.pop(record.id, None)
            changed.set()

        def finished(_future: asyncio.Future[Any]) -> None:
            changed.set()

        def db_failed(what: str, exc: BaseException) -> None:
            nonlocal db_failures, db_paused_until
            db_failures += 1
            db_paused_until = time.monotonic() + DB_RETRY_SECONDS
            log.error("the stack's database failed to %s (%d in a row): %s: %s", what, db_failures,
                      type(exc).__name__, reason_text(self.config.secret_mask(str(exc))))
            if db_failures > DB_FAILURES_TOLERATED:
                raise exc

        def db_result(future: asyncio.Future[T], what: str) -> T | None:
            """The database step's result, or None when it failed (logged; tried again after a pause)."""
            nonlocal db_failures
            try:
                result = future.result()
            except Exception as exc:
                db_failed(what, exc)
                return None
            db_failures = 0
            return result

        last_beat = 0.0
        last_progress = 0.0
        last_settle = 0.0
        last_lease_check = 0.0
        try:
            while True:
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    try:
                        await self._db_call(self.stack.beat, self.worker_id, self.mode, self.stats.delivered,
                                            started)
                    except Exception as exc:
                        db_failed("write the heartbeat", exc)
                    last_beat = time.monotonic()
                if self._wake.is_set():
                    self._wake.clear()
                    more = True
                if self._stopping and not sending and claiming is None and settling is None and not done:
                    break
                db_ready = time.monotonic() >= db_paused_until
                # 1. Claim ahead, while the window still has records to send.
                if claiming is None and more and db_ready and not self._stopping and waiting_count < low_water:
                    claiming = self._loop.run_in_executor(
                        self._db, self.stack.claim, self.worker_id, settings.batch_size, settings.lease_seconds)
                    claiming.add_done_callback(finished)
                # 2. Keep the window full, each store to its fair share of it.
                now = time.time()
                if not self._stopping and len(sending) < settings.concurrency:
                    busy = sum(1 for k, q in pending.items() if q or in_flight.get(k))
                    share = max(1, settings.concurrency // max(1, busy))
                    clock = time.monotonic()
                    paced_until = 0.0
                    for key, queue in pending.items():
                        if not queue:
                            continue
                        cap = caps.get(key) or caps.setdefault(key, self._cap(queue[0]))
                        pacer = self._pacer(queue[0])
                        limit = min(cap, share)
                        deadline = deadlines.get(key) or deadlines.setdefault(key, self._deadline_for(queue[0]))
                        while queue and len(sending) < settings.concurrency and in_flight.get(key, 0) < limit:
                            # The store's limit is reached (room for one more request beside one for each send
                            # in flight): its records wait here, before the lease left is read.
                            wait = pacer.wait(clock)
                            if not wait and pacer.room(clock) <= in_flight.get(key, 0):
                                wait = pacer.until_more_room(clock) or math.inf  # or a send in flight ends
                            if wait > 0:
                                if math.isfinite(wait):
                                    paced_until = min(paced_until or math.inf, clock + wait)
                                break
                            batch_limit = batch_limits.get(key) or batch_limits.setdefault(
                                key, self._batch_limit(queue[0]))
                            records: list[StackRecord] = []
                            shortest = deadline
                            while queue and len(records) < batch_limit:
                                record = queue.popleft()
                                waiting_count -= 1
                                # The send must end inside the lease, less the margin: its deadline is
                                # cut to what is left, and with less than half of it left the record is
                                # given back rather than sent with a deadline too short to be useful.
                                left = lease_end.get(record.id, 0.0) - now - margin
                                if left < deadline / 2:
                                    expiring.append(record)
                                    lease_end.pop(record.id, None)
                                    continue
                                records.append(record)
                                shortest = min(shortest, left)
                            if not records:
                                continue
                            task = asyncio.ensure_future(self._send_batch(records, shortest))
                            sending[task] = records
                            in_flight[key] = in_flight.get(key, 0) + 1
                            task.add_done_callback(sent)
                if expiring and claiming is None and db_ready:
                    try:
                        await self._db_call(self.stack.release, expiring)
                    except Exception as exc:
                        db_failed("give back records", exc)
                    expiring = []
                # 3. Renew the leases of records still being sent or settled late.
                if renewing is None and db_ready and time.monotonic() - last_lease_check >= lease_check:
                    last_lease_check = time.monotonic()
                    soon = now + settings.lease_seconds / 2
                    renew_asked = [r for r in (*(r for rs in sending.values() for r in rs), *(r for r, _ in done))
                                   if lease_end.get(r.id, 0.0) < soon]
                    if renew_asked:
                        renewing = self._loop.run_in_executor(
                            self._db, self.stack.renew, renew_asked, settings.lease_seconds)
                        renewing.add_done_callback(finished)
                # 4. Settle whatever finished, in one transaction.
                if settling is None and done and db_ready and (
                        not waiting_count or self._stopping or len(done) >= settle_batch
                        or time.monotonic() - last_settle >= SETTLE_SECONDS):
                    last_settle = time.monotonic()
                    settled = done[:]
                    done.clear()
                    settling = self._loop.run_in_executor(self._db, self._settle, settled)
                    settling.add_done_callback(finished)
                # 5. Idle: drained, or asleep until the next record is due or new ones arrive.
                if (not sending and claiming is None and settling is None and renewing is None
                        and not waiting_count and not done):
                    if self._stopping:
                        break
                    try:
                        next_due = await self._db_call(self.stack.next_due)
                    except Exception as exc:
                        db_failed("read the stack", exc)
                        next_due = time.time() + DB_RETRY_SECONDS
                    if drain and next_due is None:
                        break
                    timeout = HEARTBEAT_SECONDS
                    if next_due is not None:
                        timeout = max(0.005, min(HEARTBEAT_SECONDS, next_due - time.time()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=timeout)
                    more = True
                    continue
                # 6. Wait for the next thing to happen (sends report through ``sent``).
                if not changed.is_set():
                    timeout = min(HEARTBEAT_SECONDS, lease_check)
                    if done and settling is None:  # outcomes waiting for the next settle
                        timeout = max(0.0, min(timeout, last_settle + SETTLE_SECONDS - time.monotonic()))
                    if not db_ready:
                        timeout = max(0.0, min(timeout, db_paused_until - time.monotonic()))
                    if paced_until > time.monotonic():  # a paced store may send again then
                        timeout = min(timeout, paced_until - time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await changed.wait()
                changed.clear()
                if claiming is not None and claiming.done():
                    future, claiming = claiming, None
                    batch = db_result(future, "claim records") or []
                    for record in batch:
                        lease_end[record.id] = record.lease_until or 0.0
                        pending.setdefault((record.store_id, record.destination), collections.deque()).append(record)
                    waiting_count += len(batch)
                    more = len(batch) >= settings.batch_size
                if renewing is not None and renewing.done():
                    future_renew, renewing = renewing, None
                    still_held = db_result(future_renew, "renew leases")
                    if still_held is not None:
                        renewed = {r.id: r.lease_until or 0.0 for r in still_held}
                        lease_end.update((i, until) for i, until in renewed.items() if i in lease_end)
                        lost = {r.id for r in renew_asked} - set(renewed)
                        for task, records in list(sending.items()):
                            if any(r.id in lost for r in records):  # another holder has it now: stop this send
                                task.cancel()
                    renew_asked = []
                if settling is not None and settling.done():
                    future_settle, settling = settling, None
                    applied = db_result(future_settle, "settle outcomes")
                    if applied is None:
                        done[:0] = settled  # kept, and settled again once the database answers
                    else:
                        for record, _ in settled:
                            lease_end.pop(record.id, None)
                        self._after_settle(applied)
                        more = True  # deletes unblock the next record of those orders
                    settled = []
                    if progress is not None and time.monotonic() - last_progress >= 0.2:
                        last_progress = time.monotonic()
                        progress(self.stats, await self._db_call(self.stack.count, parked=False))
        finally:
            self._stopping = True
            for send in list(sending):  # interrupted: these stay leased and go again after the lease
                send.cancel()
            # The database calls run on in their thread whatever happens here: wait for them.
            unsent = [*expiring, *(r for queue in pending.values() for r in queue)]
            with contextlib.suppress(Exception):
                if claiming is not None:
                    unsent.extend(await claiming)
            with contextlib.suppress(Exception):
                if renewing is not None:
                    await renewing
            with contextlib.suppress(Exception):
                if settling is not None:
                    self._after_settle(await settling)
            with contextlib.suppress(Exception):
                if done:  # replies already in: record them, so they are not sent again
                    settled = done[:]
                    self._after_settle(await self._db_call(self._settle, settled))
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            for connector in self._connectors.values():
                with contextlib.suppress(Exception):
                    await connector.aclose()
            self._connectors.clear()
            self._pacers.clear()
            if unsent:  # claimed but never sent: give them back at once rather than at lease expiry
                with contextlib.suppress(Exception):
                    await self._db_call(self.stack.release, unsent)
            with contextlib.suppress(Exception):
                await self._db_call(self.stack.sign_off, self.worker_id)
        if progress is not None:
            progress(self.stats, await self._db_call(self.stack.count, parked=False))
        return self.stats
