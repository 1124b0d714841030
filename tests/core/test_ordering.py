"""Issue 8, findings 1, 2 and 4: order by construction, retry that never overtakes, faults kept in their store.

Each test is named after the finding it reproduces; on the code before the
fix each one failed (a stale send reversed an order, a retried record landed
after a newer one, a broken connector stopped the controller).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from cartstatus import Connector, StackController, StatusEngine, StatusUpdate
from cartstatus.cli import main
from cartstatus.config import ControllerSettings
from cartstatus.controller import backoff_delay
from cartstatus.outcomes import Delivered, Outcome, RetryLater
from cartstatus.stack import Stack
from cartstatus.storage import stack as stack_table
from click.testing import CliRunner

from ..conftest import SHOP_PASSWORD, add_orders
from .conftest import run_until

#: A short lease: 2 s, of which a send may use at most 1.5 s.
SHORT_LEASE = {"lease_seconds": 2, "backoff_base": 0.01, "backoff_cap": 0.05}


def seti_store(store_id: str, timeout: float = 1) -> dict[str, Any]:
    return {"id": store_id, "cart": "seti",
            "connector": {"url": f"http://{store_id}.test/seom.php", "user": "om",
                          "password": {"$env": "SHOP_PASSWORD"}, "code": store_id, "timeout": timeout}}


@dataclass
class Cart:
    """What a cart shows per order, and every status it applied, in the order it applied them."""

    shows: dict[str, str] = field(default_factory=dict)
    applied: list[tuple[str, str]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)

    def apply(self, update: StatusUpdate) -> Delivered:
        self.shows[update.order_number] = update.status
        self.applied.append((update.order_number, update.status))
        return Delivered()

    def statuses(self, order: str) -> list[str]:
        return [s for o, s in self.applied if o == order]


class CartConnector(Connector):
    """A connector whose cart answers each send through ``answer`` (an async function of the update)."""

    name = "test-cart"

    def __init__(self, answer: Callable[[StatusUpdate], Any], timeout: float = 1.0) -> None:
        super().__init__({"timeout": timeout})
        self.answer = answer

    async def send(self, update: StatusUpdate) -> Outcome:
        result: Outcome = await self.answer(update)
        return result


def records(engine: StatusEngine) -> list[dict[str, Any]]:
    with engine.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(stack_table).order_by(stack_table.c.id))]


# -- finding 1: a slow cart cannot reverse an order's statuses -----------------

async def test_finding_1_a_reply_slower_than_the_lease_cannot_reverse_an_orders_statuses(
    make_engine: Callable[..., StatusEngine],
) -> None:
    """The issue's repro: Shipped's first reply takes 8 s against a 2 s lease, Cancelled queued behind it.

    Two controllers drain the stack together. Before the fix the first send
    stayed open past its lease, the record was claimed and sent again, Cancelled
    was delivered, and the stale Shipped landed last: the cart showed Shipped.
    """
    engine = make_engine(controller=SHORT_LEASE, stores=[seti_store("main")])
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    engine.fire("Order Cancelled", [order])
    cart = Cart()
    first = True

    async def answer(update: StatusUpdate) -> Outcome:
        nonlocal first
        if update.status == "Shipped" and first:
            first = False
            await asyncio.sleep(8)  # applied when the reply finally goes out, if the send is still open
        return cart.apply(update)

    connector = CartConnector(answer)
    started = time.monotonic()
    controllers = [StackController(engine.config, engine.stack, connector_factory=lambda r: connector,
                                   worker_id=f"controller-{i}") for i in (1, 2)]
    stats = await asyncio.gather(*(c.run(drain=True) for c in controllers))
    await asyncio.sleep(0)

    assert cart.statuses(order) == ["Shipped", "Cancelled"]
    assert cart.shows[order] == engine.show_order(order)["status"] == "Cancelled"
    assert engine.stack.count() == 0
    assert sum(s.delivered for s in stats) == 2
    assert time.monotonic() - started < 8  # the 8 s send was cut at its deadline, not waited out


async def test_finding_1_a_trickling_cart_is_cut_at_one_total_deadline(
    make_engine: Callable[..., StatusEngine],
) -> None:
    """A seti send with ``timeout: 3`` against a cart trickling a byte every 2 s took 34 s; now 3 s at most."""
    trickled = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
            while True:
                writer.write(b".")
                await writer.drain()
                trickled.set()
                await asyncio.sleep(2)

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = seti_store("main", timeout=3)
    store["connector"]["url"] = f"http://127.0.0.1:{port}/seom.php"
    engine = make_engine(stores=[store], controller={"lease_seconds": 10, "backoff_base": 1000, "backoff_cap": 1000})
    engine.fire("Order Shipped", add_orders(engine, 1))
    controller = StackController(engine.config, engine.stack)
    started = time.monotonic()
    try:
        await run_until(controller, lambda: bool(engine.stack.records(states=["waiting"])), deadline=30)
    finally:
        server.close()
    took = time.monotonic() - started

    assert trickled.is_set()
    (record,) = engine.stack.records()
    assert record.last_error == "no complete reply within the send's deadline of 3 s"
    assert took < 6, f"the send took {took:.1f} s against a total deadline of 3 s"


def test_finding_1_only_the_holder_of_the_current_lease_settles_renews_or_releases(engine: StatusEngine) -> None:
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    engine.fire("Order Cancelled", [order])
    stack = engine.stack
    t = time.time()
    (stale,) = stack.claim("controller-a", 10, lease_seconds=1, now=t)
    (current,) = stack.claim("controller-b", 10, lease_seconds=60, now=t + 2)  # a's lease ran out
    assert current.id == stale.id and current.lease_token != stale.lease_token

    # The late reply to the stale send: it may not delete the record (nor unblock Cancelled behind it).
    assert stack.settle(delete=[stale]) == {stale.id}
    assert stack.renew([stale], 60) == []
    stack.release([stale])
    assert stack.settle(reschedule=[(stale, t + 60, "late")], park=[]) == {stale.id}
    assert next((r["id"], r["leased_by"], r["attempts"], r["last_error"]) for r in records(engine)) == (
        current.id, current.lease_token, 2, None)
    assert stack.claim("controller-c", 10, lease_seconds=60) == []  # Cancelled still waits behind Shipped

    assert stack.settle(delete=[current]) == set()
    (cancelled,) = stack.claim("controller-c", 10, lease_seconds=60)
    assert cancelled.update.status == "Cancelled"
    history = engine.show_order(order)["history"]
    assert [h["outcome"] for h in history if h["to"] == "Shipped"] == ["delivered"]


async def test_finding_1_a_send_that_runs_past_its_deadline_keeps_its_lease_renewed(
    make_engine: Callable[..., StatusEngine],
) -> None:
    """A connector that ignores cancellation runs on; its lease is renewed so nobody else sends the record."""
    engine = make_engine(controller=SHORT_LEASE, stores=[seti_store("main")])
    (order,) = add_orders(engine, 1)
    engine.fire("Order Shipped", [order])
    engine.fire("Order Cancelled", [order])
    cart = Cart()
    stubborn = asyncio.Event()
    others_claims: list[int] = []

    async def answer(update: StatusUpdate) -> Outcome:
        if update.status == "Shipped" and not stubborn.is_set():
            stubborn.set()
            end = time.monotonic() + 5  # two and a half leases
            while time.monotonic() < end:
                with contextlib.suppress(asyncio.CancelledError):  # a connector that will not be stopped
                    await asyncio.sleep(end - time.monotonic())
        return cart.apply(update)

    async def another_controller() -> None:
        await stubborn.wait()
        for _ in range(40):
            others_claims.extend(r.id for r in engine.stack.claim("intruder", 10, 60))
            await asyncio.sleep(0.1)

    connector = CartConnector(answer)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)
    intruder = asyncio.create_task(another_controller())
    await controller.run(drain=True)
    await intruder

    assert others_claims == []  # the lease was never free while the send ran on
    assert cart.statuses(order) == ["Shipped", "Cancelled"]
    assert engine.stack.count() == 0


# -- finding 2: stack retry never puts an older status after a newer one ------

def _park_shipped(engine: StatusEngine, order: str) -> int:
    engine.fire("Order Shipped", [order])
    (shipped,) = engine.stack.claim("w", 10, 60)
    engine.stack.settle(park=[(shipped, "the cart said no")])
    return shipped.id


@pytest.mark.parametrize("later_state", ["in flight", "queued", "parked, not retried", "delivered"])
def test_finding_2_retry_refuses_an_older_record_while_a_later_one_is_on_the_stack_or_delivered(
    engine: StatusEngine, later_state: str
) -> None:
    (order,) = add_orders(engine, 1)
    shipped = _park_shipped(engine, order)
    engine.fire("Order Cancelled", [order])
    if later_state in ("in flight", "delivered", "parked, not retried"):
        (cancelled,) = engine.stack.claim("w", 10, 60)
        if later_state == "delivered":
            engine.stack.settle(delete=[cancelled])
        if later_state == "parked, not retried":
            engine.stack.settle(park=[(cancelled, "no")])
    config = str(engine.config.path)

    wanted = ["--all-failed"] if later_state != "parked, not retried" else [str(shipped)]
    result = CliRunner().invoke(main, ["--config", config, "stack", "retry", *wanted])
    output = " ".join(result.output.split())
    assert "0 parked records queued again" in output
    assert f"not retried: {shipped} - a later update of the same order is on the stack or was delivered" in output
    assert next(r.id for r in engine.stack.records(states=["parked"])) == shipped

    forced = CliRunner().invoke(main, ["--config", config, "stack", "retry", str(shipped), "--force"])
    assert "1 parked records queued again" in forced.output


def test_finding_2_records_retried_together_go_out_oldest_first(engine: StatusEngine) -> None:
    (order,) = add_orders(engine, 1)
    shipped = _park_shipped(engine, order)
    engine.fire("Order Cancelled", [order])
    (cancelled,) = engine.stack.claim("w", 10, 60)
    engine.stack.settle(park=[(cancelled, "no")])

    result = engine.stack.retry()
    assert (result.retried, result.refused) == ([shipped, cancelled.id], [])
    (first,) = engine.stack.claim("w", 10, 60)
    assert first.update.status == "Shipped"  # Cancelled waits behind it


# -- finding 4: one bad store or plugin fails only its own records ------------

async def test_finding_4_a_connector_that_cannot_start_fails_only_its_own_store(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine(stores=[seti_store("broken"), seti_store("fine")])
    add_orders(engine, 3, store="broken", prefix="B")
    fine = add_orders(engine, 3, store="fine", prefix="F")
    engine.fire("Order Shipped", [f"B{1000 + i}" for i in range(3)], store="broken")
    engine.fire("Order Shipped", fine, store="fine")
    cart = Cart()

    async def answer(update: StatusUpdate) -> Outcome:
        return cart.apply(update)

    def factory(record: Any) -> Connector:
        if record.store_id == "broken":
            raise RuntimeError(f"plugin exploded (password {SHOP_PASSWORD})")
        return CartConnector(answer)

    controller = StackController(engine.config, engine.stack, connector_factory=factory)
    await run_until(controller, lambda: len(cart.applied) == 3 and all(
        r.last_error for r in engine.stack.records()), deadline=20)

    assert sorted(o for o, _ in cart.applied) == fine
    left = engine.stack.records()
    assert {r.store_id for r in left} == {"broken"} and not any(r.parked for r in left)
    reason = left[0].last_error or ""
    assert reason.startswith("connector seti could not be set up: RuntimeError: plugin exploded (password ")
    assert SHOP_PASSWORD not in reason


async def test_finding_4_a_send_that_returns_no_outcome_is_retried_with_the_reason(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine()
    none, text, good = add_orders(engine, 3)
    engine.fire("Order Shipped", [none, text, good])
    cart = Cart()
    garbage: dict[str, Any] = {none: None, text: "OK"}

    async def answer(update: StatusUpdate) -> Any:
        return garbage[update.order_number] if update.order_number in garbage else cart.apply(update)

    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: CartConnector(answer))
    await run_until(controller, lambda: len([r for r in engine.stack.records() if r.last_error]) == 2)

    assert cart.applied == [(good, "Shipped")]
    reasons = {r.order_number: (r.state(), r.last_error) for r in engine.stack.records()}
    assert reasons[none][1] == ("connector seti returned NoneType, not an outcome "
                                "(Delivered, AlreadyDone, RetryLater or Failed)")
    assert reasons[text][1] is not None and "returned str, not an outcome" in reasons[text][1]
    assert "in flight" not in {state for state, _ in reasons.values()}


def test_finding_4_backoff_never_overflows() -> None:
    settings = ControllerSettings(backoff_base=2.0, backoff_cap=3600.0)
    for attempts in (1, 2, 12, 13, 1024, 1025, 1026, 5000, 10**9):
        assert 1800 * (attempts >= 13) <= backoff_delay(attempts, settings) <= 3600
    assert backoff_delay(10**6, settings, hint=7200.0) == 7200.0


async def test_finding_4_an_ok_settled_beside_a_record_of_1025_attempts_is_sent_once(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine(controller={"lease_seconds": 5, "backoff_base": 2.0, "backoff_cap": 3600.0})
    tired, good = add_orders(engine, 2)
    engine.fire("Order Shipped", [tired, good])
    with engine.db.begin() as conn:
        conn.execute(stack_table.update().where(stack_table.c.order_number == tired).values(attempts=1025))
    cart = Cart()
    sent: list[str] = []

    async def answer(update: StatusUpdate) -> Outcome:
        sent.append(update.order_number)
        return RetryLater("busy") if update.order_number == tired else cart.apply(update)

    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: CartConnector(answer))
    await run_until(controller, lambda: engine.stack.count() == 1 and bool(engine.stack.records(states=["waiting"])))

    assert sorted(sent) == sorted([tired, good])  # each sent once: the OK was settled, not sent again
    (left,) = engine.stack.records()
    assert (left.order_number, left.attempts, left.last_error) == (tired, 1026, "busy")


async def test_finding_4_a_record_failing_past_the_retry_horizon_is_parked_with_its_reason(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine(controller={**SHORT_LEASE, "retry_horizon_seconds": 3600}, stores=[seti_store("main")])
    old, new = add_orders(engine, 2)
    engine.fire("Order Shipped", [old, new])
    with engine.db.begin() as conn:  # ``old`` has been failing for just over the horizon
        conn.execute(stack_table.update().where(stack_table.c.order_number == old)
                     .values(failing_since=time.time() - 3601, attempts=40))

    async def answer(update: StatusUpdate) -> Outcome:
        return RetryLater("HTTP 503 from the cart")

    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: CartConnector(answer))
    await run_until(controller, lambda: bool(engine.stack.records(states=["parked"])) and all(
        r.failing_since for r in engine.stack.records()))

    by_order = {r.order_number: r for r in engine.stack.records()}
    assert by_order[old].state() == "parked"
    assert by_order[old].last_error == (
        "gave up after 60 minutes of failures (41 attempts; controller.retry_horizon_seconds is 3600): "
        "HTTP 503 from the cart")
    assert by_order[new].state() != "parked"  # its run of failures has only begun
    assert by_order[new].failing_since is not None and by_order[new].failing_since > time.time() - 60

    engine.stack.retry([by_order[old].id])  # a person retries it: its count starts again
    assert engine.stack.get(by_order[old].id).failing_since is None  # type: ignore[union-attr]


async def test_finding_4_a_hanging_store_does_not_hold_up_another(make_engine: Callable[..., StatusEngine]) -> None:
    """Every send to ``hangs`` hangs until its deadline; ``fine``'s records all go out before the first is cut."""
    engine = make_engine(stores=[seti_store("hangs"), seti_store("fine")],
                         controller={**SHORT_LEASE, "concurrency": 4})
    hanging = add_orders(engine, 10, store="hangs", prefix="H")
    fine = add_orders(engine, 10, store="fine", prefix="F")
    engine.fire("Order Shipped", hanging, store="hangs")  # claimed first: they would take every slot
    engine.fire("Order Shipped", fine, store="fine")
    cart = Cart()

    async def answer(update: StatusUpdate) -> Outcome:
        if update.store_id == "hangs":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cart.log.append(("cut", update.order_number))
                raise
        cart.log.append(("delivered", update.order_number))
        return cart.apply(update)

    connectors = {s: CartConnector(answer) for s in ("hangs", "fine")}
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connectors[r.store_id])
    await run_until(controller, lambda: len(cart.applied) == 10 and any(k == "cut" for k, _ in cart.log))

    first_cut = next(i for i, (kind, _) in enumerate(cart.log) if kind == "cut")
    assert sorted(o for kind, o in cart.log[:first_cut] if kind == "delivered") == fine
    waiting = [r for r in engine.stack.records() if r.last_error]
    assert waiting and all(r.store_id == "hangs" and "deadline" in (r.last_error or "") for r in waiting)



class FlakyStack(Stack):
    """A stack whose first settle fails, as a database that is briefly locked or gone would."""

    failures = 1

    def settle(self, *args: Any, **kwargs: Any) -> set[int]:
        if self.failures:
            self.failures -= 1
            raise sa.exc.OperationalError("UPDATE stack ...", {}, Exception("database is locked"))
        return super().settle(*args, **kwargs)


async def test_outcomes_the_database_would_not_settle_are_kept_and_settled_once_it_answers(
    make_engine: Callable[..., StatusEngine],
) -> None:
    engine = make_engine()
    numbers = add_orders(engine, 3)
    engine.fire("Order Shipped", numbers)
    cart = Cart()

    async def answer(update: StatusUpdate) -> Outcome:
        return cart.apply(update)

    stack = FlakyStack(engine.db)
    stats = await StackController(engine.config, stack, connector_factory=lambda r: CartConnector(answer)).run(
        drain=True)

    assert stack.failures == 0 and stats.delivered == 3
    assert sorted(o for o, _ in cart.applied) == numbers  # each sent once: kept, not sent again
    assert engine.stack.count() == 0
