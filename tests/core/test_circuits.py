"""A circuit breaker per destination: a cart that keeps failing is probed gently, one request at a time with
growing pauses, while the other carts are served at full speed."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cartstatus import StackController, StatusEngine
from cartstatus.circuits import CLOSED, FIRST_PAUSE, HALF_OPEN, OPEN, OPEN_AFTER, Circuit
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.outcomes import Delivered, Failed, RetryLater

from ..conftest import SHOP_PASSWORD, add_orders, base_setup
from .test_ordering import seti_store

HEALTHY = 2000
HANG_GUARD = 60.0  # only a guard against a hang
BROKEN = 500
#: The healthy store's drain with the broken cart beside it, over its drain alone. The issue's aim is 1.1;
#: bench-free tests on a shared two-core machine need room: without the breaker a refusing cart's records
#: are claimed, sent and rescheduled over and over, a hanging one's hold the claims back (both far above).
RATIO_BOUND = 1.5


# -- the breaker itself ----------------------------------------------------------

def test_a_circuit_opens_after_failures_in_a_row_and_probes_with_growing_pauses() -> None:
    circuit = Circuit("down", "seti")
    now = 100.0
    for _ in range(OPEN_AFTER - 1):
        assert not circuit.finished([RetryLater("network error: ConnectError")], "refused", now, probe=False)
    assert circuit.closed
    assert circuit.finished([RetryLater("network error: ConnectError")], "refused", now, probe=False)
    assert not circuit.closed and circuit.pause == FIRST_PAUSE
    assert not circuit.may_probe(now) and circuit.may_probe(now + FIRST_PAUSE)
    circuit.probing = True
    assert not circuit.may_probe(now + FIRST_PAUSE)  # one probe at a time
    circuit.finished([RetryLater("timed out")], "timed out", now + FIRST_PAUSE, probe=True)
    assert circuit.pause == 2 * FIRST_PAUSE and not circuit.may_probe(now + 2 * FIRST_PAUSE)
    assert circuit.may_probe(now + 3 * FIRST_PAUSE)
    for _ in range(20):
        circuit.finished([RetryLater("timed out")], "timed out", now, probe=True)
    assert circuit.pause == 60.0  # capped
    assert circuit.finished([Delivered()], None, now, probe=True)  # the cart answers: closed at once
    assert circuit.closed and circuit.failures == 0 and circuit.state == CLOSED


def test_a_cart_that_answers_keeps_its_circuit_closed() -> None:
    """A refusal or a reply asking for a delay is the cart speaking: not a reason to stop sending."""
    circuit = Circuit("s", "seti")
    for _ in range(10):
        circuit.finished([Failed("unknown order")], None, 0.0, probe=False)
        circuit.finished([RetryLater("HTTP 429 from the cart", 2.0)], None, 0.0, probe=False)
    assert circuit.closed


def test_a_circuit_shows_open_then_half_open(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    circuit = Circuit("s", "seti")
    for _ in range(OPEN_AFTER):
        circuit.finished([RetryLater("x")], "x", clock[0], probe=False)
    assert circuit.state == OPEN
    clock[0] += FIRST_PAUSE
    assert circuit.state == HALF_OPEN
    assert circuit.as_dict()["state"] == HALF_OPEN


# -- the stack leaves an open circuit's records alone ---------------------------------

def test_a_claim_skips_open_destinations_and_a_probe_takes_one_of_its_own(
        make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(stores=[seti_store(f"s{i}") for i in range(5)])
    for i in range(5):
        engine.fire("Order Shipped", add_orders(engine, 3, store=f"s{i}", prefix=f"s{i}-"), store=f"s{i}")
    skip = [("s1", "seti"), ("s3", "seti"), ("s4", "seti")]  # three: padded to a statement for four
    claimed = engine.stack.claim("w", 100, 30, skip=skip)
    assert sorted({r.store_id for r in claimed}) == ["s0", "s2"] and len(claimed) == 6
    assert engine.stack.next_due(skip=[("s0", "seti"), ("s2", "seti")]) is not None  # s1, s3 and s4 wait
    assert engine.stack.next_due(skip=[*skip, ("s0", "seti"), ("s2", "seti")]) is None
    (probe,) = engine.stack.claim("w", 1, 30, only=("s3", "seti"))
    assert probe.store_id == "s3"
    assert sorted({r.store_id for r in engine.stack.claim("w", 100, 30, skip=[("s3", "seti")])}) == ["s1", "s4"]


# -- one cart down, the other drains at full speed -----------------------------------

@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A port of 127.0.0.1 bound and never listened on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/seom.php"


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A port that takes connections (the kernel's backlog) and never answers: every send hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/seom.php"


class Carts(httpx.AsyncBaseTransport):
    """The healthy cart (``cart.test``) as the simulator's ASGI app, in this event loop; every other host
    over real sockets, where the broken cart refuses or hangs."""

    def __init__(self, simulator: SetiSimulator) -> None:
        self.simulator = httpx.ASGITransport(app=simulator.app())
        self.network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "cart.test":
            return await self.simulator.handle_async_request(request)
        return await self.network.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()


def setup(name: str, broken_url: str | None) -> dict[str, Any]:
    data = base_setup(stack={"url": f"sqlite:///{name}.db"},
                      controller={"lease_seconds": 10, "backoff_base": 0.5, "backoff_cap": 5})
    data["stores"][0]["connector"].update(url="http://cart.test/seom.php", timeout=2)
    if broken_url is not None:  # a hanging send is cut after 2 s
        data["stores"].append({"id": "down", "cart": "seti", "connector": {
            "url": broken_url, "user": "om", "password": {"$env": "SHOP_PASSWORD"}, "code": "main", "timeout": 2}})
    return data


async def healthy_drain_seconds(engine: StatusEngine, simulator: SetiSimulator, prefix: str, broken: bool) -> float:
    """Fire (the broken store's records first: claimed first) and time the healthy store's drain."""
    if broken:
        down = add_orders(engine, BROKEN, store="down", prefix=f"{prefix}D")
        engine.fire("Order Shipped", down, store="down")
    main = add_orders(engine, HEALTHY, prefix=prefix)
    engine.fire("Order Shipped", main, store="main")
    before = len(simulator.received)
    attempts_before = sum(r.attempts for r in engine.stack.records(store_id="down"))
    controller = StackController(engine.config, engine.stack, transport=Carts(simulator))
    start = time.perf_counter()
    task = asyncio.create_task(controller.run())
    try:
        while len(simulator.received) - before < HEALTHY:
            assert not task.done(), "the controller stopped by itself"
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        if broken:  # the broken cart's circuit opens (a hanging one's once its first sends are cut)
            while controller.circuits.get(("down", "seti")) is None or controller.circuits[("down", "seti")].closed:
                assert time.perf_counter() - start < HANG_GUARD, "the circuit never opened"
                await asyncio.sleep(0.05)
            await asyncio.sleep(3 * FIRST_PAUSE)  # a probe or two
            assert controller.circuits[("down", "seti")].state in (OPEN, HALF_OPEN)
            # Probed gently: the window of sends that opened the circuit, then a probe at a time (after 1 s, 2 s,
            # 4 s...), not all 500 records.
            attempted = sum(r.attempts for r in engine.stack.records(store_id="down")) - attempts_before
            assert attempted <= 16, attempted
    finally:
        controller.stop()
        await task
    return elapsed


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["refused", "hanging"])
async def test_one_cart_down_does_not_slow_the_others(
        fault: str, make_engine: Callable[..., StatusEngine], refusing_url: str, hanging_url: str) -> None:
    simulator = SetiSimulator(user="om", password=SHOP_PASSWORD, code="main", accept_unknown=True)
    alone = make_engine("alone.yaml", **setup("alone", None))
    beside = make_engine("beside.yaml", **setup("beside", refusing_url if fault == "refused" else hanging_url))
    # Two rounds, alternating, the quicker of each: a noisy neighbour slows one run, rarely both.
    without = with_broken = float("inf")
    for round_no in range(2):
        without = min(without, await healthy_drain_seconds(alone, simulator, f"A{round_no}", broken=False))
        with_broken = min(with_broken, await healthy_drain_seconds(beside, simulator, f"B{round_no}", broken=True))
    ratio = with_broken / without
    print(f"{fault}: healthy store alone {without:.2f} s, beside the broken cart {with_broken:.2f} s: "
          f"ratio {ratio:.2f}")
    assert ratio < RATIO_BOUND
