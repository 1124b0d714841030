"""Benchmark: how soon after a status change the cart has it, with an idle controller.

For each stack, in one run on this machine:

* the Stone Edge script simulator (``cartstatus.connectors.seti.simulator``,
  accepting unknown orders, answering at once) served by uvicorn in a
  subprocess on 127.0.0.1, noting the wall-clock time each update arrives;
* a fresh stack: SQLite (WAL, synchronous=FULL) in a temporary folder, or
  PostgreSQL (``bench/pgserver.py``: ``CARTSTATUS_TEST_POSTGRES_URL``, else a
  throwaway server of this run);
* ``cartstatus controller --mode shared`` on that stack in a process of its
  own: it learns of a new record from the database (SQLite: its change
  counter; PostgreSQL: ``LISTEN``), as a daemon beside the order manager does;
* and, for SQLite, the controller in the process that fires (``local``, on
  a thread of its own: :meth:`Stack.subscribe` wakes it, no database look);
* ``--events`` (200) events fired one at a time through
  ``StatusEngine.fire_event``, each at a different order, 40 to 60 ms apart
  (the controller is idle when each comes); fire-to-cart is the time from
  just before ``fire_event`` to the update's arrival at the simulator,
  so it includes the fire's own durable commit.

Figures: ``<stack>_p50_ms`` and ``<stack>_p99_ms``. Aim (issue 13): p50 <= 20 ms
and p99 <= 100 ms on SQLite and PostgreSQL.

    .venv/bin/python bench/latency.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.serve import serve_on_fd, start_server_process, stop_server_process
from figures import print_headlines
from pgserver import ENV, postgres_database

USER, PASSWORD, CODE = "om", "secret", "main"  # the simulator factory's defaults
WARM_UP = 20  # connections, prepared statements, the first claims: not what an idle controller costs


def serve_simulator(fd: int) -> None:
    """The simulator process: the script cart, and when each update arrived (``/_bench/arrivals``)."""
    from cartstatus.connectors.seti.simulator import create_app
    from starlette.responses import JSONResponse

    app = create_app(accept_unknown=True)
    arrivals: list[float] = []

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/arrivals":
            await JSONResponse({"arrivals": arrivals})(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"] == "/seom.php":
            arrivals.append(time.time())  # the first thing the cart sees of the request
        await app(scope, receive, send)

    serve_on_fd(timed, fd)


def write_setup(folder: Path, cart_url: str, stack_url: str) -> Path:
    path = folder / "cartstatus.yaml"
    path.write_text(yaml.safe_dump({
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True}],
        "stores": [{"id": "main", "cart": "seti",
                    "connector": {"url": cart_url, "user": USER, "password": PASSWORD, "code": CODE}}],
        "stack": {"url": stack_url},
    }, sort_keys=False))
    return path


@contextmanager
def controller_process(folder: Path) -> Iterator[None]:
    """``cartstatus controller`` in a process of its own, stopped (SIGTERM) afterwards."""
    proc = subprocess.Popen([str(Path(sys.executable).parent / "cartstatus"), "--config", "cartstatus.yaml",
                             "controller", "--mode", "shared"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def controller_thread(engine: StatusEngine) -> Iterator[None]:
    """The controller in this process (local mode), on a thread with its own event loop."""
    controller = StackController(engine.config, engine.stack, mode="local")
    ready = threading.Event()

    async def run() -> None:
        task = asyncio.create_task(controller.run())
        await asyncio.sleep(0.1)
        ready.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="controller", daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield
    finally:
        controller.stop()
        thread.join(30)


def arrivals(base: str) -> list[float]:
    return list(httpx.get(f"{base}/_bench/arrivals", timeout=30).json()["arrivals"])


def measure(folder: Path, base: str, stack_url: str, events: int, local: bool, label: str) -> list[float]:
    """Fire-to-cart latencies in ms, one per event after the warm-up."""
    engine = StatusEngine(load_config(write_setup(folder, f"{base}/seom.php", stack_url)))
    numbers = [f"{label}{i:05d}" for i in range(WARM_UP + events)]
    engine.upsert_orders([{"order_number": n, "store": "main", "status": "New", "cart_order_ref": f"C{n}",
                           "email": f"{n}@example.com", "zip": "12345"} for n in numbers])
    runner: Callable[[], Any] = (lambda: controller_thread(engine)) if local else (lambda: controller_process(folder))
    before = len(arrivals(base))
    fired: list[float] = []
    rng = random.Random(13)
    with runner():
        time.sleep(1.0)  # started, listening, idle
        for number in numbers:
            fired.append(time.time())
            result = engine.fire_event(number, "Order Shipped")
            if not result.queued:
                raise SystemExit(f"bench: nothing queued for {number}: {result.reason}")
            time.sleep(rng.uniform(0.04, 0.06))
        give_up = time.monotonic() + 30
        while len(arrivals(base)) - before < len(numbers) and time.monotonic() < give_up:
            time.sleep(0.1)
    got = arrivals(base)[before:]
    engine.db.dispose()
    if len(got) != len(numbers):
        raise SystemExit(f"bench: {label}: the cart got {len(got)} updates of {len(numbers)}")
    # One at a time and far apart: the n-th arrival is the n-th event's.
    return [(a - f) * 1000 for f, a in zip(fired, got, strict=True)][WARM_UP:]


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="events per stack (default 200)")
    args = parser.parse_args()

    figures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cartstatus-bench-") as tmp:
        folder = Path(tmp)
        sim, base = start_server_process([sys.executable, __file__, "serve-simulator"], probe="/_sim/orders")
        try:
            print(f"bench: simulator pid {sim.pid} on {base}; cpus={os.cpu_count()}, load average "
                  f"{os.getloadavg()[0]:.2f}; {args.events} events per stack", flush=True)
            runs: list[tuple[str, str, bool]] = [("sqlite", "sqlite:///stack.db", False),
                                                 ("sqlite_local", "sqlite:///stack-local.db", True)]
            with postgres_database() as pg_url:
                print(f"bench: PostgreSQL {'from ' + ENV if os.environ.get(ENV) else 'started for this run'}",
                      flush=True)
                runs.append(("postgres", pg_url, False))
                for label, url, local in runs:
                    os.chdir(folder)
                    ms = measure(folder, base, url, args.events, local, label.upper()[:2])
                    p50, p99 = percentile(ms, 50), percentile(ms, 99)
                    print(f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(ms):.1f} ms, "
                          f"mean {statistics.fmean(ms):.1f} ms", flush=True)
                    figures[f"{label}_p50_ms"] = f"{p50:.1f}"
                    figures[f"{label}_p99_ms"] = f"{p99:.1f}"
        finally:
            stop_server_process(sim)
    print_headlines(**figures)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-simulator"]:
        serve_simulator(int(sys.argv[2]))
    else:
        sys.exit(main())
