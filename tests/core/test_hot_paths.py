"""The fast paths of fire, claim and settle keep the stack's guarantees."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cartstatus import Delivered, Outcome, StackController, StatusEngine, StatusUpdate, Tracking, load_config
from cartstatus.connector import Connector
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.stack import new_keys
from cartstatus.storage import Prepared, make_engine, stack

from ..conftest import add_orders, base_setup


def test_new_keys_are_distinct_time_ordered_version_7_uuids() -> None:
    keys = new_keys(2000, now=1_700_000_000.123)
    assert len(set(keys)) == 2000
    assert keys == sorted(keys)
    for key in keys[:200]:
        parsed = uuid.UUID(key)
        assert str(parsed) == key and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == 1_700_000_000_123  # the millisecond they were made
    later = new_keys(5)
    assert min(later) > max(keys)
    # 74 random bits: two calls in the same millisecond do not repeat each other.
    assert not set(new_keys(2000, now=1_700_000_000.123)) & set(keys)


def test_payload_carries_every_field_of_a_status_update() -> None:
    update = StatusUpdate("k", "main", "1001", "C1001", "Shipped", "shipped", "New", "Order Shipped",
                          "2025-01-02T03:04:05Z", (Tracking("UPS", "1Z1", "2025-01-02"), Tracking("USPS", "94")),
                          "left at door", "a@b.example", "12345")
    payload = update.to_payload()
    assert list(payload) == [f.name for f in dataclasses.fields(StatusUpdate)]
    assert StatusUpdate.from_payload(payload) == update


def test_prepared_statement_binds_given_and_fixed_values() -> None:
    engine = make_engine("sqlite://")
    query = sa.select(stack.c.id).where(stack.c.order_number == sa.bindparam("n"), stack.c.attempts == 3)
    prepared = Prepared(query, engine.dialect)
    assert prepared.params({"n": "1001"}) == ("1001", 3)
    with pytest.raises(ValueError, match="expanding"):
        Prepared(sa.select(stack.c.id).where(stack.c.id.in_([1, 2])), engine.dialect)


def test_fire_queues_the_update_a_status_update_describes(engine: StatusEngine) -> None:
    (number,) = add_orders(engine, 1)
    result = engine.fire_event(number, "Order Shipped", tracking=["UPS:1Z9", "FEDEX:77"], note="two boxes")
    (record,) = engine.stack.records()
    assert record.update == StatusUpdate(
        idempotency_key=result.idempotency_key or "", store_id="main", order_number=number,
        cart_order_ref=f"C{number}", status="Shipped", cart_status="Shipped", previous_status="New",
        event="Order Shipped", occurred_at=record.update.occurred_at,
        tracking=(Tracking("UPS", "1Z9"), Tracking("FEDEX", "77")), note="two boxes",
        email=f"shopper{number}@example.com", zip="12345")


def test_claim_leases_only_the_oldest_record_of_each_order(engine: StatusEngine) -> None:
    first, second = add_orders(engine, 2)
    engine.fire("Order Shipped", [first, second])
    engine.fire("Order Cancelled", [first])
    claimed = engine.stack.claim("w1", 10, 30)
    assert sorted((r.order_number, r.update.status) for r in claimed) == [(first, "Shipped"), (second, "Shipped")]
    assert all(r.attempts == 1 and r.state() == "in flight" for r in claimed)
    # Leased records and the later record of a leased order are not claimable.
    assert engine.stack.claim("w2", 10, 30) == []
    engine.stack.settle(delete=[r for r in claimed if r.order_number == first])
    (later,) = engine.stack.claim("w2", 10, 30)
    assert (later.order_number, later.update.status) == (first, "Cancelled")


def test_release_gives_back_lease_and_attempt_only_to_the_holder(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 2))
    claimed = engine.stack.claim("w1", 10, 30)
    engine.stack.release([dataclasses.replace(claimed[0], lease_token="someone-else#1")])
    engine.stack.release([claimed[1]])
    states = {r.id: (r.state(), r.attempts) for r in engine.stack.records()}
    assert states == {claimed[0].id: ("in flight", 1), claimed[1].id: ("queued", 0)}


def _engine(write_setup: Callable[..., Path], **controller: float) -> StatusEngine:
    setup = base_setup()
    setup["controller"].update(controller)
    return StatusEngine(load_config(write_setup(setup)))


async def test_claiming_ahead_keeps_each_orders_updates_in_order(write_setup: Callable[..., Path]) -> None:
    engine = _engine(write_setup, batch_size=7)
    numbers = add_orders(engine, 40)
    for event in ("Order Shipped", "Order Cancelled", "Order Shipped"):
        engine.fire(event, numbers)
    simulator = SetiSimulator(user="om", password="s3cret-Shop-Pass", code="main", accept_unknown=True)
    stats = await StackController(engine.config, engine.stack,
                                  transport=httpx.ASGITransport(app=simulator.app())).run(drain=True)
    assert stats.delivered == 120 and engine.stack.count() == 0
    by_order: dict[str, list[str]] = {}
    for received in simulator.received:
        by_order.setdefault(received.refnumber, []).append(received.orderstatus)
    assert by_order == {n: ["Shipped", "Cancelled", "Shipped"] for n in numbers}
    engine.db.dispose()


class _Slow(Connector):
    """Counts requests in flight; each takes a little while."""

    name = "slow"
    max_in_flight = 2

    def __init__(self, delay: float = 0.005) -> None:
        super().__init__({})
        self.delay = delay
        self.now = self.most = self.sent = 0

    async def send(self, update: StatusUpdate) -> Outcome:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(self.delay)
        self.now -= 1
        self.sent += 1
        return Delivered("ok")


async def test_controller_keeps_no_more_in_flight_than_the_connector_allows(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 30))
    slow = _Slow()
    stats = await StackController(engine.config, engine.stack, connector_factory=lambda r: slow).run(drain=True)
    assert stats.delivered == 30 and slow.sent == 30
    assert slow.most == 2


async def test_stop_gives_back_claimed_records_it_did_not_send(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 300))
    slow = _Slow(delay=0.01)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: slow)
    run = asyncio.create_task(controller.run())
    while slow.sent < 5:
        await asyncio.sleep(0.005)
    controller.stop()
    stats = await run
    left = engine.stack.records()
    assert stats.delivered == slow.sent == 300 - len(left)
    # Nothing stays leased, and nothing unsent was counted as an attempt.
    assert {(r.state(time.time()), r.attempts) for r in left} == {("queued", 0)}

