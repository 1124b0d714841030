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

from .circuits import Circuit
from .config import Config, ControllerSettings
from .connector import Connector, RateLimit, outcome_for_transport_error, reason_text
from .outcomes import SUCCESS, Failed, Outcome, RetryLater, outcome_detail
from .plugins import get_connectors, notify_delivered, notify_parked
from .ratelimits import REQUEST_WAITED, Pacer
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
#: The longest link of a success (Delivered.link) the history keeps; a longer one is dropped.
MAX_LINK_LENGTH = 2000


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
Key = tuple[str, str]  # a destination: (store id, connector name)

#: A database step (claim, settle) that failed is tried again after this long; after this many in a row, give up.
DB_RETRY_SECONDS = 1.0
DB_FAILURES_TOLERATED = 30
#: A destination whose sends fill its window and none of which ended for this long is taken for stuck: its
#: claimed records no longer count as work in hand, so the claims that feed the other carts go on.
STALLED_SECONDS = 0.25


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
        #: Each destination's circuit breaker (store, connector), made at its first send.
        self.circuits: dict[tuple[str, str], Circuit] = {}
        from .metrics import ControllerMetrics  # prometheus-client: loaded by a controller, never by `fire`

        self.metrics = ControllerMetrics(stack, lambda: [c.as_dict() for c in list(self.circuits.values())])
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
            settings = store.oss.connector_settings()
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
                # Waiting for the store's turn (its rate limit) moves the deadline on: the lease is renewed
                # for a send running long, and a reply cut short after the cart applied it is a duplicate.
                REQUEST_WAITED.set(lambda waited: scope.reschedule((scope.when() or 0.0) + waited))
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
        if isinstance(outcome, SUCCESS):  # its detail is kept in the history: masked, one line; a link only http(s)
            detail = outcome.detail if isinstance(outcome.detail, str) else str(outcome.detail)
            link = outcome.link if isinstance(outcome.link, str) and outcome.link.startswith(
                ("https://", "http://")) and len(outcome.link) <= MAX_LINK_LENGTH else None
            return type(outcome)(self._scrub(record, detail) if detail else detail, link)
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
        delete: list[tuple[StackRecord, str, str | None]] = []
        reschedule: list[tuple[StackRecord, float, str]] = []
        park: list[tuple[StackRecord, str]] = []
        parked_reason: dict[int, str] = {}
        for record, outcome in done:
            if isinstance(outcome, SUCCESS):
                delete.append((record, outcome_detail(outcome), outcome.link))
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
        metrics = self.metrics
        for counter, records in ((metrics.delivered, [r for r, _, _ in delete]),
                                 (metrics.retried, [r for r, _, _ in reschedule]),
                                 (metrics.parked, [r for r, _ in park])):
            counts = collections.Counter((r.store_id, r.destination) for r in records if r.id not in stale)
            for (store_id, destination), count in counts.items():
                counter.labels(store_id, destination).inc(count)
        self.stats.delivered += sum(1 for r, _, _ in delete if r.id not in stale)
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

        A pipeline rather than batch by batch (:class:`Pipeline`): up to ``concurrency``
        requests are in flight at all times; the next batch is claimed (leased, committed)
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
        self._stopping = False
        pipeline = Pipeline(self, drain)
        self._changed = pipeline.changed
        stats = await pipeline.run(progress)
        if progress is not None:
            progress(self.stats, await self._db_call(self.stack.count, parked=False))
        return stats

    def _claim(self, limit: int, skip: list[Key], probes: list[Key]) -> tuple[list[StackRecord], set[Key]]:
        """Claim (in the database thread): up to ``limit`` records of the destinations not in ``skip`` (none
        when ``limit`` is 0), and one record of each destination in ``probes``; and the probes that got one."""
        settings = self.settings
        records = self.stack.claim(self.worker_id, limit, settings.lease_seconds, skip=skip) if limit else []
        probed: set[Key] = set()
        for key in probes:
            got = self.stack.claim(self.worker_id, 1, settings.lease_seconds, only=key)
            if got:
                probed.add(key)
                records.extend(got)
        return records, probed


class Pipeline:
    """One run of a :class:`StackController`: named steps over the records in hand.

    Each pass of :meth:`run` beats the heartbeat, then *claims* ahead (in the database thread), *fills* the
    window of sends, *renews* leases running short, *settles* finished outcomes (in the database thread),
    and either *idles* (nothing in hand) or *waits* for the next thing to happen and *collects* it. A
    database step runs one at a time of each kind and reports through :attr:`changed`; a failed one is tried
    again after :data:`DB_RETRY_SECONDS`.
    """

    def __init__(self, controller: StackController, drain: bool) -> None:
        self.ctl = controller
        self.settings = settings = controller.settings
        self.drain = drain
        self.loop = asyncio.get_running_loop()
        # Set whenever something the loop waits for happens: a send, the claim or
        # the settle finished, or new records arrived. One event rather than
        # asyncio.wait() over every task: that costs a callback per task per turn.
        self.changed = asyncio.Event()
        self.started = time.time()
        # Claim the next batch once fewer than this many claimed records wait to be sent.
        self.low_water = max(settings.concurrency, settings.batch_size // 2)
        self.settle_batch = max(1, settings.batch_size // 4)
        # How often leases are looked over: records sent or settled late are renewed well before they end.
        self.lease_check = min(1.0, settings.lease_seconds / 8)
        # Claimed records waiting to be sent, by destination: each connector has its own cap on requests in
        # flight (Connector.max_in_flight), and each destination its circuit (controller.circuits).
        self.pending: dict[Key, collections.deque[StackRecord]] = {}
        self.waiting = 0  # records in ``pending``
        self.in_flight: dict[Key, int] = {}
        self.caps: dict[Key, int] = {}
        self.deadlines: dict[Key, float] = {}  # a send's total deadline, per destination
        self.batch_limits: dict[Key, int] = {}
        # When a send of the destination last ended: a destination whose window is full and has not moved
        # for STALLED_SECONDS (or not at all yet) holds none of the claims back.
        self.moved: dict[Key, float] = {}
        # Each store's pace (Connector.rate_limit and the cart's hints, controller._pacer): a record waits for
        # room in it in ``pending``, before its send's deadline starts and before its lease is looked at;
        # each request of the send then takes its place (the connector's client waits on the same pacer).
        self.paced_until = 0.0  # monotonic time a paced store may send again (0: none waits)
        self.expiring: list[StackRecord] = []  # claimed, not to be sent: given back
        # Each send in flight and its records: one, or a batch for a connector with a real batch call.
        self.sending: dict[asyncio.Task[list[Outcome]], list[StackRecord]] = {}
        self.send_started: dict[asyncio.Task[list[Outcome]], float] = {}  # monotonic
        self.probes: set[asyncio.Task[list[Outcome]]] = set()  # the sends that probe an open circuit
        self.probe_ready: set[Key] = set()  # destinations whose probe record was claimed, not yet sent
        self.done: list[tuple[StackRecord, Outcome]] = []
        self.lease_end: dict[int, float] = {}  # the current end of each held record's lease
        self.claiming: asyncio.Future[tuple[list[StackRecord], set[Key]]] | None = None
        self.probing: list[Key] = []  # the probes the claim in progress looks for
        self.claim_limit = 0  # the records the claim in progress may take besides probes
        self.settling: asyncio.Future[list[tuple[StackRecord, Outcome, str | None]]] | None = None
        self.settled: list[tuple[StackRecord, Outcome]] = []
        self.renewing: asyncio.Future[list[StackRecord]] | None = None
        self.renew_asked: list[StackRecord] = []
        self.beating: asyncio.Future[None] | None = None
        self.more = True  # whether a claim may find something (false after a short claim until woken)
        self.db_failures = 0
        self.db_paused_until = 0.0
        self.last_beat = self.last_progress = self.last_settle = self.last_lease_check = 0.0

    @property
    def stopping(self) -> bool:
        return self.ctl._stopping

    @property
    def circuits(self) -> dict[Key, Circuit]:
        return self.ctl.circuits

    # -- the loop ------------------------------------------------------------

    async def run(self, progress: Callable[[ControllerStats, int], None] | None) -> ControllerStats:
        watcher = asyncio.create_task(Wakeups(self.ctl.stack, self.ctl.wake).run())
        wake = self.ctl._wake
        assert wake is not None
        try:
            while True:
                if wake.is_set():
                    wake.clear()
                    self.more = True
                if self.stopping and not self.busy():
                    break
                self.claim()
                self.heartbeat()
                self.fill()
                await self.give_back()
                self.renew()
                self.settle()
                if not self.busy() and not self.waiting:
                    if self.stopping or not await self.idle():
                        break
                    continue
                await self.wait()
                if await self.collect() and progress is not None \
                        and time.monotonic() - self.last_progress >= 0.2:
                    self.last_progress = time.monotonic()
                    progress(self.ctl.stats, await self.ctl._db_call(self.ctl.stack.count, parked=False))
        finally:
            await self.shut_down(watcher)
        return self.ctl.stats

    def busy(self) -> bool:
        """Anything in hand besides records waiting to be sent."""
        return bool(self.sending or self.claiming is not None or self.settling is not None
                    or self.renewing is not None or self.beating is not None or self.done)

    @property
    def db_ready(self) -> bool:
        return time.monotonic() >= self.db_paused_until

    def db_failed(self, what: str, exc: BaseException) -> None:
        self.db_failures += 1
        self.db_paused_until = time.monotonic() + DB_RETRY_SECONDS
        log.error("the stack's database failed to %s (%d in a row): %s: %s", what, self.db_failures,
                  type(exc).__name__, reason_text(self.ctl.config.secret_mask(str(exc))))
        if self.db_failures > DB_FAILURES_TOLERATED:
            raise exc

    def db_result(self, future: asyncio.Future[T], what: str) -> T | None:
        """The database step's result, or None when it failed (logged; tried again after a pause)."""
        try:
            result = future.result()
        except Exception as exc:
            self.db_failed(what, exc)
            return None
        self.db_failures = 0
        return result

    def in_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``fn`` started in the database thread; :attr:`changed` is set when it ends."""
        future = self.loop.run_in_executor(self.ctl._db, lambda: fn(*args, **kwargs))
        future.add_done_callback(lambda _: self.changed.set())
        return future

    # -- the steps -------------------------------------------------------------

    def heartbeat(self) -> None:
        """Write the heartbeat (with the circuits not closed), in the database thread after any claim
        started before it: a fire-to-cart wake-up never waits for it."""
        if self.beating is not None or time.monotonic() - self.last_beat < HEARTBEAT_SECONDS:
            return
        ctl = self.ctl
        circuits = [c.as_dict() for c in self.circuits.values() if not c.closed]
        self.beating = self.in_db(ctl.stack.beat, ctl.worker_id, ctl.mode, ctl.stats.delivered, self.started,
                                  circuits)
        self.last_beat = time.monotonic()

    def ready(self) -> int:
        """Claimed records waiting for a destination that can take them: what the claims keep topped up.

        Not those of a destination whose circuit is open (they are given back), nor of one whose window
        is full and none of whose sends ended yet or for :data:`STALLED_SECONDS` (a cart that hangs: its
        records must not hold back the claims that feed the others).
        """
        clock = time.monotonic()
        count = 0
        for key, queue in self.pending.items():
            circuit = self.circuits.get(key)
            if circuit is not None and not circuit.closed:
                continue
            if self.in_flight.get(key, 0) >= self.caps.get(key, 1) \
                    and clock - self.moved.get(key, -math.inf) > STALLED_SECONDS:
                continue
            count += len(queue)
        return count

    def claim(self) -> None:
        """Claim ahead while the window still has records to send, and the probes of circuits due for one."""
        if self.claiming is not None or not self.db_ready or self.stopping:
            return
        clock = time.monotonic()
        skip = [key for key, c in self.circuits.items() if not c.closed]
        probes = [key for key in skip if self.circuits[key].may_probe(clock) and key not in self.probe_ready]
        limit = self.settings.batch_size if self.more and self.ready() < self.low_water else 0
        if not limit and not probes:
            return
        for key in probes:
            self.circuits[key].probing = True
        self.probing = probes
        self.claim_limit = limit
        self.claiming = self.in_db(self.ctl._claim, limit, skip, probes)

    def fill(self) -> None:
        """Keep the window full, each destination to its fair share of it (and its cap, pace and circuit)."""
        settings = self.settings
        if self.stopping or len(self.sending) >= settings.concurrency:
            return
        now = time.time()
        clock = time.monotonic()
        busy = sum(1 for k, q in self.pending.items() if q or self.in_flight.get(k))
        share = max(1, settings.concurrency // max(1, busy))
        self.paced_until = 0.0
        for key, queue in self.pending.items():
            if not queue:
                continue
            circuit = self.circuits.get(key)
            if circuit is None or circuit.closed:
                self.probe_ready.discard(key)  # closed meanwhile: its probe record goes as any other
            else:
                # Open: the probe alone is sent, the rest given back at once (not an attempt).
                if key in self.probe_ready:
                    self.probe_ready.discard(key)
                    deadline = self.deadline(key)
                    task = self.send(key, [queue.popleft()], deadline, now)
                    if task is None:
                        circuit.nothing_to_probe(clock)
                    else:
                        self.probes.add(task)
                self.expiring.extend(queue)
                for record in queue:
                    self.lease_end.pop(record.id, None)
                self.waiting -= len(queue)
                queue.clear()
                continue
            cap = self.caps.get(key) or self.caps.setdefault(key, self.ctl._cap(queue[0]))
            pacer = self.ctl._pacer(queue[0])
            limit = min(cap, share)
            deadline = self.deadline(key)
            while queue and len(self.sending) < settings.concurrency and self.in_flight.get(key, 0) < limit:
                # The store's limit is reached (room for one more request beside one for each send
                # in flight): its records wait here, before the lease left is read.
                wait = pacer.wait(clock)
                if not wait and pacer.room(clock) <= self.in_flight.get(key, 0):
                    wait = pacer.until_more_room(clock) or math.inf  # or a send in flight ends
                if wait > 0:
                    if math.isfinite(wait):
                        self.paced_until = min(self.paced_until or math.inf, clock + wait)
                    break
                batch_limit = self.batch_limits.get(key) or self.batch_limits.setdefault(
                    key, self.ctl._batch_limit(queue[0]))
                records = [queue.popleft() for _ in range(min(batch_limit, len(queue)))]
                self.send(key, records, deadline, now)

    def deadline(self, key: Key) -> float:
        queue = self.pending[key]
        return self.deadlines.get(key) or self.deadlines.setdefault(key, self.ctl._deadline_for(queue[0]))

    def send(self, key: Key, records: list[StackRecord], deadline: float,
             now: float) -> asyncio.Task[list[Outcome]] | None:
        """Start one send of ``records`` (taken from ``pending``) to ``key``; None when none was left to send.

        The send must end inside the lease, less the margin: its deadline is cut to what is left, and with
        less than half of it left a record is given back rather than sent with a deadline too short to be
        useful.
        """
        self.waiting -= len(records)
        margin = self.settings.lease_margin
        sendable: list[StackRecord] = []
        shortest = deadline
        for record in records:
            left = self.lease_end.get(record.id, 0.0) - now - margin
            if left < deadline / 2:
                self.expiring.append(record)
                self.lease_end.pop(record.id, None)
                continue
            sendable.append(record)
            shortest = min(shortest, left)
        if not sendable:
            return None
        task = asyncio.ensure_future(self.ctl._send_batch(sendable, shortest))
        self.sending[task] = sendable
        self.send_started[task] = time.monotonic()
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        task.add_done_callback(self.sent)
        return task

    def sent(self, task: asyncio.Task[list[Outcome]]) -> None:
        """A send ended: its outcomes wait for the next settle; its circuit counts them."""
        records = self.sending.pop(task)
        key = (records[0].store_id, records[0].destination)
        self.in_flight[key] -= 1
        self.moved[key] = clock = time.monotonic()
        self.ctl.metrics.send_seconds.labels(*key).observe(clock - self.send_started.pop(task))
        probe = task in self.probes
        self.probes.discard(task)
        circuit = self.circuits.get(key) or self.circuits.setdefault(key, Circuit(*key))
        if task.cancelled():
            for record in records:
                self.lease_end.pop(record.id, None)
            if probe:
                circuit.nothing_to_probe(time.monotonic())
        else:
            outcomes = task.result()
            self.done.extend(zip(records, outcomes, strict=True))
            reason = next((o.reason for o in outcomes if isinstance(o, RetryLater)), None)
            if circuit.finished(outcomes, reason, time.monotonic(), probe):
                self.circuit_changed(circuit)
        self.changed.set()

    def circuit_changed(self, circuit: Circuit) -> None:
        if circuit.closed:
            log.warning("store %s (%s) answers again: its circuit is closed", circuit.store_id,
                        circuit.destination)
        else:
            log.warning("store %s (%s) failed %d times in a row: its circuit is open, probed every %g s at "
                        "first (last reason: %s)", circuit.store_id, circuit.destination, circuit.failures,
                        circuit.pause, circuit.last_error)
        self.last_beat = 0.0  # shown in `stack status` at once

    async def give_back(self) -> None:
        """Release records claimed and not to be sent (attempt not counted): they can be claimed again."""
        if not self.expiring or self.claiming is not None or not self.db_ready:
            return
        try:
            await self.ctl._db_call(self.ctl.stack.release, self.expiring)
        except Exception as exc:
            self.db_failed("give back records", exc)
        self.expiring = []

    def renew(self) -> None:
        """Renew the leases of records still being sent or settled late."""
        if self.renewing is not None or not self.db_ready \
                or time.monotonic() - self.last_lease_check < self.lease_check:
            return
        self.last_lease_check = time.monotonic()
        soon = time.time() + self.settings.lease_seconds / 2
        self.renew_asked = [r for r in (*(r for rs in self.sending.values() for r in rs), *(r for r, _ in self.done))
                            if self.lease_end.get(r.id, 0.0) < soon]
        if self.renew_asked:
            self.renewing = self.in_db(self.ctl.stack.renew, self.renew_asked, self.settings.lease_seconds)

    def settle(self) -> None:
        """Settle whatever finished, in one transaction: at once when nothing else waits, else now and then."""
        if self.settling is not None or not self.done or not self.db_ready:
            return
        if not (not self.waiting or self.stopping or len(self.done) >= self.settle_batch
                or time.monotonic() - self.last_settle >= SETTLE_SECONDS):
            return
        self.last_settle = time.monotonic()
        self.settled = self.done[:]
        self.done.clear()
        self.settling = self.in_db(self.ctl._settle, self.settled)

    async def idle(self) -> bool:
        """Nothing in hand: asleep until the next record is due, a probe is, or new ones arrive.
        False when draining and nothing is left to send."""
        skip = [key for key, c in self.circuits.items() if not c.closed]
        try:
            next_due = await self.ctl._db_call(self.ctl.stack.next_due, skip)
        except Exception as exc:
            self.db_failed("read the stack", exc)
            next_due = time.time() + DB_RETRY_SECONDS
        if self.drain and next_due is None and (
                not skip or await self.ctl._db_call(self.ctl.stack.next_due) is None):
            return False  # nothing left to send, open circuits or not
        timeout = HEARTBEAT_SECONDS
        if next_due is not None:
            timeout = max(0.005, min(timeout, next_due - time.time()))
        timeout = min(timeout, self.next_probe())
        wake = self.ctl._wake
        assert wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=timeout)
        self.more = True
        return True

    def next_probe(self) -> float:
        """Seconds until a circuit may send its next probe (inf: none is waiting for one)."""
        clock = time.monotonic()
        waits = [c.probe_at - clock for c in self.circuits.values() if not c.closed and not c.probing]
        return max(0.005, min(waits)) if waits else math.inf

    def next_stall(self) -> float:
        """Seconds until a claim may go because a destination with a full window is taken for stuck
        (0: one may go now; inf: none will for that reason)."""
        if self.claiming is not None or not self.more or self.stopping or not self.db_ready:
            return math.inf
        ready = self.ready()
        if ready < self.low_water:
            return 0.0
        clock = time.monotonic()
        stalls = [(self.moved[key] + STALLED_SECONDS - clock, len(queue)) for key, queue in self.pending.items()
                  if queue and self.in_flight.get(key, 0) >= self.caps.get(key, 1) and key in self.moved
                  and self.moved[key] + STALLED_SECONDS > clock]
        if not stalls or ready - sum(n for _, n in stalls) >= self.low_water:
            return math.inf
        return max(0.005, min(left for left, _ in stalls))

    async def wait(self) -> None:
        """Wait for the next thing to happen (sends report through :meth:`sent`)."""
        if not self.changed.is_set():
            clock = time.monotonic()
            timeout = min(HEARTBEAT_SECONDS, self.lease_check, self.next_probe(), self.next_stall())
            if self.done and self.settling is None:  # outcomes waiting for the next settle
                timeout = max(0.0, min(timeout, self.last_settle + SETTLE_SECONDS - clock))
            if not self.db_ready:
                timeout = max(0.0, min(timeout, self.db_paused_until - clock))
            if self.paced_until > clock:  # a paced store may send again then
                timeout = min(timeout, self.paced_until - clock)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait()
        self.changed.clear()

    async def collect(self) -> bool:
        """Take in what the database steps finished. True when a settle was applied."""
        settled = False
        if self.beating is not None and self.beating.done():
            future_beat, self.beating = self.beating, None
            self.db_result(future_beat, "write the heartbeat")
        if self.claiming is not None and self.claiming.done():
            future, self.claiming = self.claiming, None
            claimed = self.db_result(future, "claim records")
            batch, probed = claimed or ([], set())
            clock = time.monotonic()
            for key in self.probing:
                if key not in probed:
                    self.circuits[key].nothing_to_probe(clock)
            self.probe_ready |= probed
            self.probing = []
            general = 0
            for record in batch:
                key = (record.store_id, record.destination)
                self.lease_end[record.id] = record.lease_until or 0.0
                self.pending.setdefault(key, collections.deque()).append(record)
                general += key not in probed
            self.waiting += len(batch)
            if claimed is not None and self.claim_limit:  # a short claim: nothing more until woken
                self.more = general >= self.claim_limit
        if self.renewing is not None and self.renewing.done():
            future_renew, self.renewing = self.renewing, None
            still_held = self.db_result(future_renew, "renew leases")
            if still_held is not None:
                self.ctl.metrics.lease_renewals.inc(len(still_held))
                renewed = {r.id: r.lease_until or 0.0 for r in still_held}
                self.lease_end.update((i, until) for i, until in renewed.items() if i in self.lease_end)
                lost = {r.id for r in self.renew_asked} - set(renewed)
                for task, records in list(self.sending.items()):
                    if any(r.id in lost for r in records):  # another holder has it now: stop this send
                        task.cancel()
            self.renew_asked = []
        if self.settling is not None and self.settling.done():
            future_settle, self.settling = self.settling, None
            applied = self.db_result(future_settle, "settle outcomes")
            if applied is None:
                self.done[:0] = self.settled  # kept, and settled again once the database answers
            else:
                for record, _ in self.settled:
                    self.lease_end.pop(record.id, None)
                self.ctl._after_settle(applied)
                self.more = True  # deletes unblock the next record of those orders
                settled = True
            self.settled = []
        return settled

    async def shut_down(self, watcher: asyncio.Task[None]) -> None:
        """Stopped or failed: settle what came back, give back what was not sent, sign off."""
        ctl = self.ctl
        ctl._stopping = True
        for send in list(self.sending):  # interrupted: these stay leased and go again after the lease
            send.cancel()
        # The database calls run on in their thread whatever happens here: wait for them.
        unsent = [*self.expiring, *(r for queue in self.pending.values() for r in queue)]
        with contextlib.suppress(Exception):
            if self.claiming is not None:
                unsent.extend((await self.claiming)[0])
        with contextlib.suppress(Exception):
            if self.renewing is not None:
                await self.renewing
        with contextlib.suppress(Exception):
            if self.beating is not None:
                await self.beating
        with contextlib.suppress(Exception):
            if self.settling is not None:
                ctl._after_settle(await self.settling)
        with contextlib.suppress(Exception):
            if self.done:  # replies already in: record them, so they are not sent again
                ctl._after_settle(await ctl._db_call(ctl._settle, self.done[:]))
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        for connector in ctl._connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
        ctl._connectors.clear()
        ctl._pacers.clear()
        if unsent:  # claimed but never sent: give them back at once rather than at lease expiry
            with contextlib.suppress(Exception):
                await ctl._db_call(ctl.stack.release, unsent)
        with contextlib.suppress(Exception):
            await ctl._db_call(ctl.stack.sign_off, ctl.worker_id)
