"""A connector with a real batch call (``supports_batch``) gets a store's records together through
``send_batch``: one outcome each, applied each to its own record."""

from __future__ import annotations

from collections.abc import Sequence

from cartstatus import Delivered, Failed, Outcome, StackController, StatusEngine, StatusUpdate
from cartstatus.config import ControllerSettings
from cartstatus.connector import Connector

from ..conftest import add_orders


class _Batching(Connector):
    name = "batching"
    supports_batch = True

    def __init__(self, refuse: str | None = None, miscount: bool = False) -> None:
        super().__init__({})
        self.batches: list[int] = []
        self.singles = 0
        self.refuse = refuse
        self.miscount = miscount

    async def send(self, update: StatusUpdate) -> Outcome:
        self.singles += 1
        return Delivered("alone")

    async def send_batch(self, updates: Sequence[StatusUpdate]) -> list[Outcome]:
        self.batches.append(len(updates))
        outcomes: list[Outcome] = [Failed("no such order") if u.order_number == self.refuse else Delivered("batch")
                                   for u in updates]
        return outcomes[:-1] if self.miscount else outcomes


async def test_a_stores_records_go_in_batches_each_outcome_to_its_record(engine: StatusEngine) -> None:
    numbers = add_orders(engine, 250)
    engine.fire("Order Shipped", numbers)
    connector = _Batching(refuse=numbers[7])
    stats = await StackController(engine.config, engine.stack, connector_factory=lambda r: connector).run(drain=True)
    assert sum(connector.batches) + connector.singles == 250
    assert max(connector.batches) <= engine.config.controller.batch_size and len(connector.batches) <= 4
    assert (stats.delivered, stats.parked) == (249, 1)
    [parked] = engine.stack.records(states=["parked"])
    assert parked.order_number == numbers[7] and "no such order" in (parked.last_error or "")


async def test_a_batch_that_miscounts_its_outcomes_is_sent_again_not_misapplied(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 5))
    connector = _Batching(miscount=True)
    engine.config.controller = ControllerSettings(max_attempts=1)  # parked at once, with the reason, to be read
    stats = await StackController(engine.config, engine.stack, connector_factory=lambda r: connector).run(drain=True)
    assert connector.batches == [5] and connector.singles == 0 and stats.delivered == 0 and stats.parked == 5
    assert {r.last_error for r in engine.stack.records()} == {
        "gave up after 1 attempts: connector seti send_batch() gave 4 outcomes for 5 updates; it must give one "
        "per update, in order"}
