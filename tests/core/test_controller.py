"""The stack controller: delete on success only, backoff, parking, per-order order, leases, heartbeat."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cartstatus import StackController, StatusEngine, StatusUpdate
from cartstatus.cli import main
from cartstatus.config import ControllerSettings
from cartstatus.connector import retry_after_seconds
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.controller import backoff_delay
from cartstatus.outcomes import AlreadyDone, Delivered, Failed, Outcome, RetryLater
from cartstatus.plugins import load_plugins, pm
from cartstatus.storage import stack as stack_table
from click.testing import CliRunner

from ..conftest import add_orders
from .conftest import WALK, Hooks, ScriptedConnector, run_until

#: Retries far in the future: a record that failed stays visibly on the stack.
SLOW_RETRY = {"backoff_base": 1000.0, "backoff_cap": 1000.0, "lease_seconds": 5}


def make_due(engine: StatusEngine) -> None:
    """Move every waiting record's next attempt to now, as if its delay had passed."""
    with engine.db.begin() as conn:
        conn.execute(stack_table.update().where(stack_table.c.parked == sa.false()).values(next_attempt_at=0))


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    load_plugins()
    plugin = Hooks()
    pm.register(plugin, name="test-controller-hooks")
    yield plugin
    pm.unregister(plugin)


# -- delete on success only --------------------------------------------------

class ByOrder(ScriptedConnector):
    """Answers each order with its own outcome (or raises it); stops the controller after ``stop_after`` sends."""

    def __init__(self, answers: dict[str, Outcome | Exception], stop_after: int, controller: Callable[[], Any]):
        super().__init__()
        self.answers = answers
        self.stop_after = stop_after
        self.controller = controller

    async def send(self, update: StatusUpdate) -> Outcome:
        self.sent.append(update)
        if len(self.sent) == self.stop_after:
            self.controller().stop()  # the batch in hand is still settled
        answer = self.answers[update.order_number]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_record_is_deleted_on_success_only(make_engine: Callable[..., StatusEngine], hooks: Hooks) -> None:
    engine = make_engine(controller=SLOW_RETRY)
    delivered, already, transient, permanent, broken = add_orders(engine, 5)
    engine.fire("Order Shipped", [delivered, already, transient, permanent, broken])
    connector = ByOrder({
        delivered: Delivered("OK"),
        already: AlreadyDone("had it"),
        transient: RetryLater("cart busy"),
        permanent: Failed("order unknown to the cart"),
        broken: RuntimeError("connector bug"),
    }, stop_after=5, controller=lambda: controller)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)

    stats = await controller.run()

    assert (stats.delivered, stats.rescheduled, stats.parked) == (2, 2, 1)
    left = {r.order_number: r for r in engine.stack.records()}
    assert set(left) == {transient, permanent, broken}
    assert (left[transient].state(), left[transient].last_error, left[transient].attempts) == (
        "waiting", "cart busy", 1)
    assert (left[permanent].state(), left[permanent].last_error) == ("parked", "order unknown to the cart")
    # A connector that raises is a transient fault, not the controller's death.
    assert left[broken].state() == "waiting"
    assert "RuntimeError: connector bug" in (left[broken].last_error or "")
    assert sorted(n for n, _ in hooks.delivered) == sorted([delivered, already])
    assert hooks.parked == [(permanent, "order unknown to the cart")]


# -- transient: rescheduled with a growing, jittered, capped delay -------------

def test_backoff_delay_grows_is_jittered_capped_and_honours_retry_after() -> None:
    settings = ControllerSettings(backoff_base=2.0, backoff_cap=60.0)
    rng = random.Random(3)
    for attempts in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempts - 1))
        draws = [backoff_delay(attempts, settings, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws), attempts
        assert len(set(draws)) == len(draws)  # jitter: no two the same
    # Growth: the lowest possible delay of attempt n+1 is the highest of attempt n, until the cap.
    assert backoff_delay(1, settings, rng=random.Random(0)) < backoff_delay(3, settings, rng=random.Random(0))
    assert backoff_delay(50, settings) <= 60.0
    # Retry-After wins when it asks for longer, even beyond the cap; never sooner than backoff.
    assert backoff_delay(1, settings, hint=300.0) == 300.0
    assert 1.0 <= backoff_delay(1, settings, hint=0.0) <= 2.0


def test_retry_after_header_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "120"})) == 120.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": date}), now=now) == pytest.approx(90, abs=1)
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Response(503)) is None


async def test_transient_failure_is_rescheduled_with_growing_delay(make_engine: Callable[..., StatusEngine]) -> None:
    base, cap = 10.0, 40.0
    engine = make_engine(controller={"backoff_base": base, "backoff_cap": cap, "lease_seconds": 5})
    [number] = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")
    [record] = engine.stack.records()
    connector = ScriptedConnector([RetryLater(f"busy {i}") for i in range(1, 5)],
                                  on_send=lambda u: controller.stop())
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector,
                                 rng=random.Random(7))
    twin = random.Random(7)  # draws what the controller draws

    delays = []
    for attempt in range(1, 5):
        make_due(engine)
        t0 = time.time()
        await controller.run()
        t1 = time.time()
        now = engine.stack.get(record.id)
        assert now is not None
        assert (now.attempts, now.last_error, now.state()) == (attempt, f"busy {attempt}", "waiting")
        # The delay the controller chose lies between next_attempt_at - t1 and next_attempt_at - t0.
        low, high = now.next_attempt_at - t1, now.next_attempt_at - t0
        ceiling = min(cap, base * 2 ** (attempt - 1))
        assert ceiling / 2 <= high and low <= ceiling, (attempt, low, high)
        expected = backoff_delay(attempt, engine.config.controller, rng=twin)
        assert low - 1e-6 <= expected <= high + 1e-6
        delays.append(expected)
    assert delays[0] < delays[1] < delays[2]  # grows
    assert delays[3] <= cap  # capped

    make_due(engine)
    await controller.run(drain=True)
    assert engine.stack.count() == 0
    assert [u.status for u in connector.sent] == ["Shipped"] * 5


async def test_jitter_spreads_the_retries_of_a_batch(make_engine: Callable[..., StatusEngine]) -> None:
    base = 10.0
    engine = make_engine(controller={"backoff_base": base, "backoff_cap": 100.0, "lease_seconds": 5})
    numbers = add_orders(engine, 20)
    engine.fire("Order Shipped", numbers)
    connector = ByOrder({n: RetryLater("busy") for n in numbers}, stop_after=20, controller=lambda: controller)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)

    t0 = time.time()
    await controller.run()
    t1 = time.time()

    due = [r.next_attempt_at for r in engine.stack.records()]
    assert len(due) == 20
    assert len(set(due)) == 20  # not one thundering herd
    assert all(t0 + base / 2 <= d <= t1 + base for d in due)


@pytest.mark.parametrize("fault", ["http_429", "http_503"])
async def test_retry_after_is_honoured(
    fault: str, engine: StatusEngine, simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    # base_setup's backoff is tiny (0.01 s, capped 0.05 s): only Retry-After can push the retry 30 s out.
    simulator.retry_after = 30
    simulator.fail_next(fault)
    [number] = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")
    controller = StackController(engine.config, engine.stack, transport=sim_transport)

    t0 = time.time()
    await run_until(controller, lambda: any(r.last_error for r in engine.stack.records()))

    [record] = engine.stack.records()
    assert record.state() == "waiting"
    assert record.next_attempt_at >= t0 + 30
    assert f"HTTP {fault[-3:]}" in (record.last_error or "")
    assert simulator.received == []


# -- permanent: parked with the reason ---------------------------------------

@pytest.mark.parametrize(("setup", "reason"), [
    (lambda sim: sim.fail_next("refuse"), "the cart refused the update: Status change not allowed"),
    (lambda sim: sim.fail_next("seti_error"), "the cart script reported an error: Database connection failed"),
    (lambda sim: sim.fail_next("xml_error"), "the cart script reported an error: Login failed"),
    (lambda sim: setattr(sim, "accept_unknown", False), "could not be found"),
    (lambda sim: setattr(sim, "password", "rotated"), "Invalid user name or password"),
], ids=["refusal", "SETIError", "XML ResponseCode 3", "unknown order", "wrong password"])
async def test_permanent_failure_is_parked_with_the_reason(
    setup: Callable[[SetiSimulator], None], reason: str, engine: StatusEngine, hooks: Hooks,
    simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport,
) -> None:
    setup(simulator)
    [number] = add_orders(engine, 1)
    engine.fire_event(number, "Order Shipped")

    stats = await StackController(engine.config, engine.stack, transport=sim_transport).run(drain=True)

    assert (stats.delivered, stats.rescheduled, stats.parked) == (0, 0, 1)
    [record] = engine.stack.records()
    assert record.state() == "parked"
    assert reason in (record.last_error or "")
    assert simulator.requests == 1  # parked at once, not retried
    assert [(n, r) for n, r in hooks.parked] == [(number, record.last_error)]
    assert engine.stack.status().parked == 1


# -- per-order order under concurrency, with faults --------------------------

async def test_updates_of_one_order_arrive_in_order_under_concurrency_and_faults(
    make_engine: Callable[..., StatusEngine], simulator: SetiSimulator
) -> None:
    engine = make_engine(status_events=WALK, controller={
        "concurrency": 8, "batch_size": 30, "backoff_base": 0.005, "backoff_cap": 0.02, "lease_seconds": 30})
    numbers = add_orders(engine, 80)
    for step in WALK:
        assert all(r.queued for r in engine.fire(step["event"], numbers))
    simulator.retry_after = 0
    app = simulator.app()
    rng = random.Random(11)
    kinds = ["http_500", "http_503", "http_429", "garbled", "empty"]
    injected = 0
    active = peak = 0

    async def faulty(scope: Any, receive: Any, send: Any) -> None:
        nonlocal injected, active, peak
        if scope["type"] == "http" and rng.random() < 0.25:
            simulator.fail_next(rng.choice(kinds))
            injected += 1
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0)  # let the other requests in flight interleave
            await app(scope, receive, send)
        finally:
            active -= 1

    controller = StackController(engine.config, engine.stack, transport=httpx.ASGITransport(app=faulty))
    stats = await controller.run(drain=True)

    assert injected > 40
    assert peak > 1  # requests really were concurrent
    assert (stats.delivered, stats.rescheduled, stats.parked) == (320, injected, 0)
    assert engine.stack.count() == 0
    per_order: dict[str, list[str]] = {}
    for r in simulator.received:
        per_order.setdefault(r.refnumber, []).append(r.orderstatus)
    walk = [s["order_status"] for s in WALK]
    assert per_order == {n: walk for n in numbers}


# -- leases ------------------------------------------------------------------

def test_an_expired_lease_is_reclaimed_by_another_worker(engine: StatusEngine) -> None:
    a, b = add_orders(engine, 2)
    engine.fire("Order Shipped", [a, b])
    engine.fire("Order Cancelled", [a])
    stack = engine.stack

    t = time.time()
    first = stack.claim("worker-1", 10, lease_seconds=0.5, now=t)
    # The oldest record of each order; a's second record waits behind its first.
    assert [(r.order_number, r.update.status, r.attempts) for r in first] == [(a, "Shipped", 1), (b, "Shipped", 1)]
    assert {r.state(t + 0.1) for r in stack.records()} == {"in flight", "queued"}
    # Leased and not settled: no other worker gets them (nor a's next update) while the lease lasts.
    assert stack.claim("worker-2", 10, lease_seconds=60, now=t + 0.4) == []
    # worker-1 died; once the lease has run out another worker takes them over.
    again = stack.claim("worker-2", 10, lease_seconds=60, now=t + 0.6)
    assert [(r.id, r.attempts) for r in again] == [(r.id, 2) for r in first]


async def test_the_controller_reclaims_records_a_dead_worker_leased(
    make_engine: Callable[..., StatusEngine], simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    engine = make_engine(controller={"lease_seconds": 30, "backoff_base": 0.01, "backoff_cap": 0.05})
    a, b = add_orders(engine, 2)
    engine.fire("Order Shipped", [a, b])
    engine.fire("Order Cancelled", [a])
    dead = engine.stack.claim("dead-worker", 10, lease_seconds=0.3)
    assert len(dead) == 2

    stats = await StackController(engine.config, engine.stack, transport=sim_transport,
                                  worker_id="rescuer").run(drain=True)

    assert stats.delivered == 3
    assert engine.stack.count() == 0
    assert [(r.refnumber, r.orderstatus) for r in simulator.received if r.refnumber == a] == [
        (a, "Shipped"), (a, "Cancelled")]
    assert [(r.refnumber, r.orderstatus) for r in simulator.received if r.refnumber == b] == [(b, "Shipped")]


# -- retry and purge ---------------------------------------------------------

async def test_stack_retry_and_purge_failed(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(controller=SLOW_RETRY)
    p1, p2, p3, waiting = add_orders(engine, 4)
    engine.fire("Order Shipped", [p1, p2, p3, waiting])
    connector = ByOrder({p1: Failed("no such order"), p2: Failed("no such order"), p3: Failed("no such order"),
                         waiting: RetryLater("busy")}, stop_after=4, controller=lambda: controller)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)
    await controller.run()
    stack = engine.stack
    parked = {r.order_number: r.id for r in stack.records(states=["parked"])}
    assert set(parked) == {p1, p2, p3}

    assert stack.retry([parked[p1]]).retried == [parked[p1]]
    retried = stack.get(parked[p1])
    assert retried is not None and (retried.state(), retried.attempts) == ("queued", 0)
    assert stack.retry([parked[p1]]).retried == []  # no longer parked
    assert stack.purge_failed() == 2  # p2 and p3 only
    assert {r.order_number: r.state() for r in stack.records()} == {p1: "queued", waiting: "waiting"}

    (again,) = stack.claim("w", 10, 60)
    stack.settle(park=[(again, "again")])
    assert stack.retry().retried == [parked[p1]]  # all failed
    assert stack.status().parked == 0


# -- heartbeat ---------------------------------------------------------------

async def test_heartbeat_makes_stack_status_say_a_controller_is_running(
    engine: StatusEngine, sim_transport: httpx.AsyncBaseTransport
) -> None:
    runner = CliRunner()
    args = ["--config", str(engine.config.path), "stack", "status"]
    before = runner.invoke(main, args)
    assert before.exit_code == 0, before.output
    assert "no stack controller is running" in before.output

    controller = StackController(engine.config, engine.stack, transport=sim_transport, mode="shared")
    seen: list[Any] = []

    def running() -> bool:
        if not engine.stack.status().controller_running:
            return False
        seen.append(runner.invoke(main, args))
        seen.append(runner.invoke(main, [*args, "--json"]))
        return True

    await run_until(controller, running)
    text, as_json = seen
    assert "stack controller running: shared" in text.output
    status = json.loads(as_json.output)
    assert status["controller_running"] is True
    assert [c["id"] for c in status["controllers"]] == [controller.worker_id]

    after = runner.invoke(main, args)
    assert "no stack controller is running" in after.output
