"""A controller you can watch: Prometheus metrics scraped during a drain, `stack status` per destination."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Callable

import httpx
import pytest
from cartstatus import StackController, StatusEngine, StatusUpdate
from cartstatus.cli import main
from cartstatus.outcomes import Delivered, Outcome, RetryLater
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import SHOP_PASSWORD, add_orders
from .conftest import ScriptedConnector
from .test_crash import cartstatus_command

RECORDS = 200


class Slowish(ScriptedConnector):
    """Takes a few milliseconds per update (the drain lasts long enough to be watched); fails order 1000 once."""

    async def send(self, update: StatusUpdate) -> Outcome:
        self.sent.append(update)
        await asyncio.sleep(0.005)
        if update.order_number == "1000" and sum(u.order_number == "1000" for u in self.sent) == 1:
            return RetryLater("cart busy")
        return Delivered()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each sample of a scrape by (name, labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_scraped_during_a_drain(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(controller={"backoff_base": 0.01, "backoff_cap": 0.05, "lease_seconds": 5,
                                     "concurrency": 4})
    engine.fire("Order Shipped", add_orders(engine, RECORDS))
    connector = Slowish()
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)
    stop = controller.metrics.serve(0)
    url = f"http://127.0.0.1:{controller.metrics.port}/metrics"
    try:
        drain = asyncio.create_task(controller.run(drain=True))
        during: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []
        while not drain.done():
            reply = await asyncio.to_thread(httpx.get, url, timeout=10)
            assert reply.status_code == 200
            during.append(samples(reply.text))
            await asyncio.sleep(0.05)
        await drain
        after = samples((await asyncio.to_thread(httpx.get, url, timeout=10)).text)
    finally:
        stop()

    main_seti = (("destination", "seti"), ("store", "main"))
    # Mid-drain: records still queued for the store, some delivered already, the oldest one's age.
    mid = [s for s in during if 0 < s.get(("cartstatus_delivered_total", main_seti), 0) < RECORDS]
    assert mid, "no scrape caught the drain half way"
    assert any(sum(v for (name, labels), v in s.items() if name == "cartstatus_records"
                   and dict(labels)["store"] == "main") > 0 for s in mid)
    assert any(("cartstatus_oldest_record_age_seconds", main_seti) in s for s in mid)
    # Once drained: every update counted once, the failure once as retried, every send timed.
    assert after[("cartstatus_delivered_total", main_seti)] == RECORDS
    assert after[("cartstatus_retried_total", main_seti)] == 1
    assert after[("cartstatus_send_seconds_count", main_seti)] == RECORDS + 1
    assert not any(name == "cartstatus_records" for name, _ in after)  # the stack is empty
    assert after[("cartstatus_circuit_state", main_seti)] == 0  # closed


def test_the_controller_command_serves_metrics(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    proc = subprocess.Popen([*cartstatus_command(), "--config", str(engine.config.path), "controller",
                             "--metrics-port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
        assert found, line
        text = httpx.get(found.group(1), timeout=30).text
        assert "cartstatus_delivered_total" in text or "# TYPE cartstatus_delivered counter" in text
        assert "cartstatus_lease_renewals_total" in text
    finally:
        proc.terminate()
        proc.wait(30)


def test_stack_status_shows_each_destination_and_open_circuits(make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    engine.fire("Order Shipped", add_orders(engine, 3))
    circuit = {"store": "main", "destination": "seti", "state": "open", "failures": 3, "pause_seconds": 2.0,
               "opened_at": 0.0, "last_error": f"HTTP 500 from the cart: bad password {SHOP_PASSWORD}"}
    engine.stack.beat("host:1:abc", "shared", 0, 0.0, [circuit])
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(engine.config.path), "stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (dest,) = data["destinations"]
    assert (dest["store"], dest["destination"], dest["depth"], dest["states"]) == ("main", "seti", 3, {"queued": 3})
    assert dest["oldest_age_seconds"] is not None
    (shown,) = data["circuits"]
    assert (shown["store"], shown["state"], shown["controller"]) == ("main", "open", "host:1:abc")
    text = runner.invoke(main, ["--config", str(engine.config.path), "stack", "status"]).output
    assert "circuit open" in text and "main" in text
    assert SHOP_PASSWORD not in result.output and SHOP_PASSWORD not in text


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
