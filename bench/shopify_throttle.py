"""Benchmark: the stack controller draining Shopify updates against Shopify's cost limit, scaled down.

Everything runs on this machine:

* the Shopify simulator (``cartstatus.connectors.shopify.simulator``) served by uvicorn in a thread on
  127.0.0.1, its leaky bucket on (``--bucket`` points, ``--restore`` points a second: Shopify's Standard
  plan is 2,000 and 100; the defaults, 1,000 and 250, make the limit allow the drain in 32 s), with
  ``--records`` (500) orders;
* a fresh SQLite stack in a temporary folder, ``Order Shipped`` fired at every order with one UPS tracking
  number, so each update is the order read (requested 179 points, charged 7) and a
  ``fulfillmentCreate`` (11 points);
* the real :class:`StackController` draining them (``run(drain=True)``, default settings), timed from
  ``run`` to its return, the connector pacing itself from each reply's ``extensions.cost``.

Printed: how many requests Shopify refused as ``THROTTLED`` (``throttled``), and
``shopify_limit_ratio`` = the fastest time the limit allows / the measured time. The fastest time is
(points charged - the bucket's points at the start) / restore rate: the bucket, full at the start, must
have restored everything beyond it. Aim (issue 11): throttled <= 5, ratio >= 0.9.

The restore rate must keep the limit, not the machine, the bottleneck: the simulator runs in this
process, and at 500 points a second (about 30 updates a second) a 2-core machine shared with other work
could not keep up (the bucket stayed nine-tenths full and the "ratio" measured the machine, 0.84). First
measured (2 cores, load average 3.3): 500 updates in 31.5 to 31.8 s against 30.0 s allowed, throttled = 0,
ratio 0.94 to 0.95 (then, with the fulfilment orders' pageInfo read too, 18 points an update: 33.8 s
against 32.0 s, throttled = 0, ratio 0.95). With ``--without-hints`` (the connector still waits out each
THROTTLED itself): 398 THROTTLED, 1,398 requests, ratio 0.88.

    .venv/bin/python bench/shopify_throttle.py [--records N] [--bucket POINTS] [--restore POINTS_PER_S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.connectors.shopify import ShopifyConnector
from cartstatus.connectors.shopify.simulator import ShopifySimulator
from cartstatus.serve import serve_in_thread
from figures import print_headlines

TOKEN = "shpat_bench_access_token"


def write_setup(folder: Path, url: str) -> Path:
    path = folder / "cartstatus.yaml"
    path.write_text(yaml.safe_dump({
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True}],
        "stores": [{"id": "main", "cart": "shopify",
                    "connector": {"shop": "bench-store.myshopify.com", "access_token": TOKEN, "api_base": url}}],
        "stack": {"url": "sqlite:///stack.db"},
    }, sort_keys=False))
    return path


async def drain(engine: StatusEngine, expected: int) -> float:
    controller = StackController(engine.config, engine.stack)
    start = time.perf_counter()
    stats = await controller.run(drain=True)
    elapsed = time.perf_counter() - start
    if stats.delivered != expected or engine.stack.count() != 0:
        raise SystemExit(f"bench: delivered {stats.delivered} of {expected}; "
                         f"{engine.stack.count()} left on the stack ({stats})")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500, help="updates to drain (default 500)")
    parser.add_argument("--bucket", type=float, default=1000.0, help="the bucket's points (default 1000)")
    parser.add_argument("--restore", type=float, default=250.0, help="points restored a second (default 250)")
    parser.add_argument("--without-hints", action="store_true",
                        help="the connector tells the controller nothing of the bucket (to see what pacing saves)")
    args = parser.parse_args()
    if args.without_hints:
        ShopifyConnector.limit_hint = lambda self, **kw: None

    sim = ShopifySimulator(access_token=TOKEN, bucket_size=args.bucket, restore_rate=args.restore)
    numbers = [f"S{i:05d}" for i in range(args.records)]
    for i, _ in enumerate(numbers):
        sim.add_order(str(5_000_000 + i), lines=(1,))
    with tempfile.TemporaryDirectory(prefix="cartstatus-bench-") as tmp, serve_in_thread(sim.app()) as url:
        folder = Path(tmp)
        os.chdir(folder)
        engine = StatusEngine(load_config(write_setup(folder, url)))
        print(f"bench: Shopify simulator on {url}, bucket {args.bucket:g} points restoring {args.restore:g}/s; "
              f"{args.records} updates; fresh stack in {folder}; cpus={os.cpu_count()}, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        engine.upsert_orders([{"order_number": n, "store": "main", "status": "New",
                               "cart_order_ref": str(5_000_000 + i), "email": f"shopper{i}@example.com",
                               "zip": "12345"} for i, n in enumerate(numbers)])
        engine.fire("Order Shipped", numbers, tracking=["UPS:1Z999AA10123456784"])
        sim.available()  # the bucket starts full, now
        points_before, requests_before = sim.points, sim.requests
        elapsed = asyncio.run(drain(engine, len(numbers)))
        engine.db.dispose()

    shipped = sum(1 for o in sim.orders.values() if o.fulfillment_status() == "FULFILLED")
    if shipped != len(numbers):
        raise SystemExit(f"bench: {shipped} of {len(numbers)} orders fulfilled")
    points = sim.points - points_before
    fastest = max(0.0, points - args.bucket) / args.restore
    print(f"drained {len(numbers)} updates in {elapsed:.2f} s ({len(numbers) / elapsed:,.1f} updates/s); "
          f"{sim.requests - requests_before} requests, {points:,.0f} points charged "
          f"({points / len(numbers):.1f} an update); the limit allows it in {fastest:.2f} s at the fastest")
    print_headlines(throttled=str(sim.throttled), shopify_limit_ratio=f"{fastest / elapsed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
