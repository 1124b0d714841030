"""The stack controller keeps to each store's rate limit: the declared one and the cart's own word."""

from __future__ import annotations

import time
from typing import Any

import httpx
from cartstatus import Delivered, Outcome, RateLimit, RetryLater, StackController, StatusEngine, StatusUpdate
from cartstatus.connector import Connector, LimitHint
from cartstatus.ratelimits import Pacer

from ..conftest import add_orders, base_setup

#: Sends are timed when they start running: a little after the controller lets them go.
JITTER = 0.05


class _Timed(Connector):
    """Records when each send started, by store."""

    name = "timed"
    rate_limit = RateLimit(5, 1.0, "5 a second")

    def __init__(self, starts: dict[str, list[float]]) -> None:
        super().__init__({}, transport=httpx.MockTransport(self._answer))
        self.starts = starts

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.starts.setdefault(request.url.params["store"], []).append(time.monotonic())
        return httpx.Response(200)

    async def send(self, update: StatusUpdate) -> Outcome:
        await self.client.put("http://cart.test/status", params={"store": update.store_id})
        return Delivered("ok")


class _SaysNoneLeft(_Timed):
    """No declared limit, one send at a time; the first reply says "0 left, reset in 1 s"."""

    rate_limit = None
    max_in_flight = 1

    async def send(self, update: StatusUpdate) -> Outcome:
        first = update.store_id not in self.starts
        outcome = await super().send(update)
        if first:
            self.limit_hint(remaining=0, reset_in=1.0)
        return outcome


def most_in_a_window(starts: list[float], window: float) -> int:
    ordered = sorted(starts)
    return max(sum(1 for t in ordered[i:] if t < start + window) for i, start in enumerate(ordered))


def two_stores(make_engine: Any) -> StatusEngine:
    main = base_setup()["stores"][0]
    return make_engine(stores=[main, {**main, "id": "second"}])


async def test_a_declared_limit_holds_in_every_window(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 20))
    starts: dict[str, list[float]] = {}
    connector = _Timed(starts)
    began = time.monotonic()
    stats = await StackController(engine.config, engine.stack, connector_factory=lambda r: connector).run(drain=True)
    sent = starts["main"]
    assert stats.delivered == 20 and len(sent) == 20
    # A sliding window: never more than 5 in any second (no burst beyond it), so 20 take 3 s at least.
    assert most_in_a_window(sent, 1.0 - JITTER) <= 5
    assert most_in_a_window(sent, 0.5) == 5  # and the limit is used, not merely undershot
    assert max(sent) - began >= 3.0 - JITTER


async def test_each_store_has_its_own_limit(make_engine: Any) -> None:
    engine = two_stores(make_engine)
    engine.fire("Order Shipped", add_orders(engine, 10) + add_orders(engine, 10, store="second", prefix="S"))
    starts: dict[str, list[float]] = {}
    connectors = {store: _Timed(starts) for store in ("main", "second")}
    began = time.monotonic()
    stats = await StackController(engine.config, engine.stack,
                                  connector_factory=lambda r: connectors[r.store_id]).run(drain=True)
    assert stats.delivered == 20
    for store in ("main", "second"):
        assert most_in_a_window(starts[store], 1.0 - JITTER) <= 5
        assert sum(1 for t in starts[store] if t - began < 0.5) == 5  # both start at once: no shared limit
    assert max(max(s) for s in starts.values()) - began < 2.0  # 10 a store at 5/s each: about 1 s


async def test_a_cart_saying_none_left_holds_that_store_only(make_engine: Any) -> None:
    engine = two_stores(make_engine)
    engine.fire("Order Shipped", add_orders(engine, 3) + add_orders(engine, 3, store="second", prefix="S"))
    starts: dict[str, list[float]] = {}
    connectors = {"main": _SaysNoneLeft(starts), "second": _Timed(starts)}
    connectors["second"].rate_limit = None
    stats = await StackController(engine.config, engine.stack,
                                  connector_factory=lambda r: connectors[r.store_id]).run(drain=True)
    assert stats.delivered == 6
    main, second = sorted(starts["main"]), sorted(starts["second"])
    assert main[1] - main[0] >= 1.0 - JITTER  # held until the cart's reset
    assert main[2] - main[1] < 0.5  # then free again
    assert max(second) - min(second) < 0.5 and max(second) < main[1]  # the other store went on meanwhile


def test_a_429_with_retry_after_holds_the_store() -> None:
    connector = Connector({})
    reply = httpx.Response(429, headers={"Retry-After": "7"}, request=httpx.Request("POST", "http://cart.test/"))
    outcome = connector.outcome_for_response(reply)
    assert isinstance(outcome, RetryLater) and outcome.delay == 7.0
    hint = connector.latest_limit_hint
    assert hint is not None and (hint.remaining, hint.reset_in) == (0, 7.0)
    pacer = Pacer(None)
    pacer.hint(hint)
    assert 6.9 < pacer.wait(hint.at) <= 7.0 and pacer.wait(hint.at + 7.0) == 0.0


def test_a_cart_saying_how_many_are_left_is_kept_to_until_its_reset() -> None:
    pacer = Pacer(RateLimit(100, 1.0))
    pacer.hint(LimitHint(remaining=2, reset_in=10.0, at=0.0))
    for at in (0.0, 0.1):
        assert pacer.wait(at) == 0.0
        pacer.took(at)
    assert pacer.wait(0.2) == 10.0 - 0.2
    assert pacer.wait(10.0) == 0.0  # the cart's window has reset


def test_no_declared_limit_never_waits() -> None:
    pacer = Pacer(None)
    for i in range(1000):
        assert pacer.wait(i / 1e6) == 0.0
        pacer.took(i / 1e6)
    assert Pacer(RateLimit(0, 1.0)).limit is None  # a limit that allows nothing is no limit, not a stall


class _ThreeCalls(_Timed):
    """Reads, writes and writes again: three of the cart's calls per send."""

    rate_limit = RateLimit(6, 0.5, "6 calls a half second")

    async def send(self, update: StatusUpdate) -> Outcome:
        for _ in range(3):
            await self.client.get("http://cart.test/step", params={"store": update.store_id})
        return Delivered("ok")


async def test_every_request_of_a_send_counts_against_the_limit(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 10))
    starts: dict[str, list[float]] = {}
    connector = _ThreeCalls(starts)
    began = time.monotonic()
    stats = await StackController(engine.config, engine.stack, connector_factory=lambda r: connector).run(drain=True)
    calls = starts["main"]
    assert stats.delivered == 10 and len(calls) == 30
    assert most_in_a_window(calls, 0.5 - JITTER) <= 6  # calls, not sends, are kept to the limit
    assert max(calls) - began >= (30 - 6) / 12 - JITTER  # 30 calls at 6 per half second
    assert stats.rescheduled == 0  # waiting for room never costs a send its deadline


def test_room_counts_the_window_and_the_carts_budget() -> None:
    pacer = Pacer(RateLimit(3, 1.0))
    assert pacer.room(0.0) == 3
    pacer.took(0.0)
    pacer.took(0.1)
    assert pacer.window == 1.05  # a start counts a little longer than the window: it may arrive late
    assert pacer.room(0.2) == 1 and abs(pacer.until_more_room(0.2) - (1.05 - 0.2)) < 1e-9
    assert pacer.room(1.0) == 1 and pacer.room(1.06) == 2  # the first left the window, with its margin
    pacer.hint(LimitHint(remaining=0, reset_in=2.0, at=1.06))
    assert pacer.room(1.1) == 0 and abs(pacer.until_more_room(1.1) - 1.96) < 1e-9
    assert Pacer(RateLimit(600, 60.0)).window == 61.0  # the margin is at most a second
    assert Pacer(None).room(0.0) == float("inf")


class _SlowSecondCall(_Timed):
    """Its second call waits for the store's turn; the send's deadline is shorter than that wait."""

    rate_limit = RateLimit(1, 0.6, "one call in 0.6 s")

    async def send(self, update: StatusUpdate) -> Outcome:
        await self.client.get("http://cart.test/read", params={"store": update.store_id})
        await self.client.put("http://cart.test/write", params={"store": update.store_id})  # waits ~0.6 s
        return Delivered("ok")


async def test_waiting_for_the_stores_turn_does_not_eat_into_the_sends_deadline(engine: StatusEngine) -> None:
    engine.fire("Order Shipped", add_orders(engine, 1))
    starts: dict[str, list[float]] = {}
    connector = _SlowSecondCall(starts)
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)
    controller._deadline_for = lambda record: 0.4  # type: ignore[method-assign]  # shorter than the wait
    stats = await controller.run(drain=True)
    assert (stats.delivered, stats.rescheduled) == (1, 0)
    assert starts["main"][1] - starts["main"][0] >= 0.6 - JITTER
