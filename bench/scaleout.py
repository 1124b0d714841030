"""Benchmark: one and two stack controllers draining a shared PostgreSQL stack.

In one run on this machine:

* the Stone Edge script simulator served by uvicorn in a subprocess on
  127.0.0.1, accepting unknown orders, each reply leaving ``--reply-ms`` (20)
  after its request came (a cart with some work to do), noting when each
  update arrived;
* a fresh PostgreSQL database (``bench/pgserver.py``) holding ``--orders``
  (1,000) orders walked through ``--steps`` (10) statuses each: 10,000
  updates, an order's updates delivered one after the other, in order;
* ``cartstatus controller --mode shared --drain`` in one process, then in
  two processes side by side, each draining a stack filled the same way.

``one_per_s`` and ``two_per_s``: updates per second from the first update's
arrival to the last (process start-up left out); ``scaleout_ratio`` is their
ratio. Each controller keeps up to 4 requests in flight to the script cart
(``SetiConnector.max_in_flight``): with 20 ms replies, 200 updates/s is one
controller's ceiling. Aim (issue 13): 2 controllers >= 1.6 x 1.

    .venv/bin/python bench/scaleout.py [--orders N] [--steps N] [--reply-ms N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from cartstatus import StatusEngine, load_config
from cartstatus.events import KNOWN_EVENTS
from cartstatus.serve import serve_on_fd, start_server_process, stop_server_process
from figures import print_headlines
from pgserver import postgres_database

USER, PASSWORD, CODE = "om", "secret", "main"  # the simulator factory's defaults


def serve_simulator(fd: int, reply_ms: int) -> None:
    """The simulator process: the script cart, its replies late, and when each update arrived."""
    from cartstatus.connectors.seti.simulator import create_app
    from starlette.responses import JSONResponse

    app = create_app(accept_unknown=True)
    arrivals: list[float] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/arrivals":
            await JSONResponse({"arrivals": arrivals})(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] != "/seom.php":
            await app(scope, receive, send)
            return
        arrivals.append(time.time())

        async def late(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(reply_ms / 1000)
            await send(message)

        await app(scope, receive, late)

    serve_on_fd(slow, fd)


def write_setup(folder: Path, cart_url: str, stack_url: str, steps: int) -> Path:
    path = folder / "cartstatus.yaml"
    path.write_text(yaml.safe_dump({
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": event, "order_status": f"S{i:02d}", "notify_cart": True}
                          for i, event in enumerate(KNOWN_EVENTS[:steps], 1)],
        "stores": [{"id": "main", "cart": "seti",
                    "connector": {"url": cart_url, "user": USER, "password": PASSWORD, "code": CODE}}],
        "stack": {"url": stack_url},
    }, sort_keys=False))
    return path


def arrivals(base: str) -> list[float]:
    return list(httpx.get(f"{base}/_bench/arrivals", timeout=60).json()["arrivals"])


def drain(folder: Path, base: str, stack_url: str, orders: int, steps: int, controllers: int, prefix: str) -> float:
    """Fill the stack, drain it with ``controllers`` processes; updates per second at the cart."""
    engine = StatusEngine(load_config(write_setup(folder, f"{base}/seom.php", stack_url, steps)))
    numbers = [f"{prefix}{i:05d}" for i in range(orders)]
    engine.upsert_orders([{"order_number": n, "store": "main", "status": "New", "cart_order_ref": f"C{n}",
                           "email": f"{n}@example.com", "zip": "12345"} for n in numbers])
    for event in KNOWN_EVENTS[:steps]:
        engine.fire(event, numbers)
    expected = orders * steps
    if engine.stack.count() != expected:
        raise SystemExit(f"bench: {engine.stack.count()} records queued, expected {expected}")
    before = len(arrivals(base))
    command = [str(Path(sys.executable).parent / "cartstatus"), "--config", "cartstatus.yaml", "controller",
               "--mode", "shared", "--drain"]
    procs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(controllers)]
    for proc in procs:
        if proc.wait(timeout=1800) != 0:
            raise SystemExit(f"bench: a controller exited with status {proc.returncode}")
    left = engine.stack.count()
    engine.db.dispose()
    got = arrivals(base)[before:]
    if left or len(got) != expected:
        raise SystemExit(f"bench: the cart got {len(got)} updates of {expected}; {left} left on the stack")
    return (len(got) - 1) / (max(got) - min(got))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders (default 1000)")
    parser.add_argument("--steps", type=int, default=10, help="updates per order (default 10, at most 10)")
    parser.add_argument("--reply-ms", type=int, default=20, help="the cart's time per reply (default 20 ms)")
    args = parser.parse_args()
    steps = min(args.steps, 10)

    with tempfile.TemporaryDirectory(prefix="cartstatus-bench-") as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        sim, base = start_server_process([sys.executable, __file__, "serve-simulator", str(args.reply_ms)],
                                         probe="/_sim/orders")
        try:
            print(f"bench: simulator pid {sim.pid} on {base}, {args.reply_ms} ms per reply; cpus={os.cpu_count()}, "
                  f"load average {os.getloadavg()[0]:.2f}; {args.orders} orders x {steps} updates", flush=True)
            rates = {}
            for controllers in (1, 2):
                with postgres_database() as url:
                    rates[controllers] = drain(folder, base, url, args.orders, steps, controllers, f"P{controllers}")
                print(f"{controllers} controller(s): {rates[controllers]:,.0f} updates/s "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop_server_process(sim)
    print_headlines(one_per_s=f"{rates[1]:.0f}", two_per_s=f"{rates[2]:.0f}",
                    scaleout_ratio=f"{rates[2] / rates[1]:.2f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-simulator"]:
        serve_simulator(int(sys.argv[3]), int(sys.argv[2]))
    else:
        sys.exit(main())
