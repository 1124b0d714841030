"""Benchmark: a drain against a cart that enforces its published rate limit.

For each cart whose API publishes a limit (BigCommerce: 150 requests per 30 s
window with ``X-Rate-Limit-*`` headers; Ecwid: 600 requests a minute per
token, then 429 with ``Retry-After``), in one run on this machine:

* the cart's simulator, in this process, enforcing the limit scaled down in
  time so that the run takes seconds (the same requests per window, a shorter
  window: BigCommerce 150 per 1.5 s, Ecwid 120 per 2 s, as Ecwid's
  ``Retry-After`` is whole seconds); the connector's declared ``rate_limit``
  is scaled the same way, as it is the published one;
* a fresh SQLite stack with ``--records`` (500) "Order Shipped" updates, each
  with one tracking number, drained by the real :class:`StackController`
  (``run(drain=True)``, default settings);
* ``fastest``: the least time the limit allows for the requests the cart
  accepted: the first window's quota at once, then a quota per window
  (``(ceil(accepted / quota) - 1) * window``), with nothing else counted;
* ``<cart>_limit_ratio = fastest / measured`` (1.0 is the limit's own pace)
  and ``<cart>_429s``: the requests the cart refused for the limit.

Aim (issue 10): at most a handful of 429s and a ratio of at least 0.9.

    .venv/bin/python bench/ratelimits.py [--records N]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cartstatus import RateLimit, StackController, StatusEngine, load_config
from cartstatus.connector import Connector
from cartstatus.connectors.bigcommerce import BigCommerceConnector
from cartstatus.connectors.bigcommerce.simulator import BigCommerceSimulator
from cartstatus.connectors.ecwid import EcwidConnector
from cartstatus.connectors.ecwid.simulator import EcwidSimulator
from cartstatus.testing import SimulatorTransport
from figures import print_headlines


@dataclass(frozen=True)
class Cart:
    key: str
    connector: type[Connector]
    simulator: Callable[[int, float], Any]  # (quota, window seconds) -> a simulator enforcing them
    settings: dict[str, Any]
    quota: int
    window: float


CARTS = (
    Cart("bigcommerce", BigCommerceConnector,
         lambda quota, window: BigCommerceSimulator(quota=quota, window_seconds=window),
         {"store_hash": "kitstore1", "access_token": "bc-kit-access-token-1", "api_base": "https://api.bigcommerce.test"},
         quota=150, window=1.5),
    Cart("ecwid", EcwidConnector,
         lambda quota, window: EcwidSimulator(token="secret_benchEcwidToken0123456789", quota=quota,
                                              window_seconds=window),
         {"store_id": 1003, "token": "secret_benchEcwidToken0123456789", "api_base": "https://app.ecwid.test/api/v3"},
         quota=120, window=2.0),
)


def write_setup(folder: Path, cart: Cart) -> Path:
    path = folder / "cartstatus.yaml"
    path.write_text(yaml.safe_dump({
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True}],
        "stores": [{"id": "main", "cart": cart.key, "connector": cart.settings}],
        "stack": {"url": "sqlite:///stack.db"},
    }, sort_keys=False))
    return path


async def drain(engine: StatusEngine, cart: Cart, sim: Any) -> float:
    # The published limit, scaled in time as the simulator's is.
    scaled = type(f"Scaled{cart.connector.__name__}", (cart.connector,),
                  {"rate_limit": RateLimit(cart.quota, cart.window, "scaled for the benchmark")})
    transport = SimulatorTransport(sim.app(), timeout_cap=None)
    controller = StackController(engine.config, engine.stack,
                                 connector_factory=lambda r: scaled(engine.config.stores[r.store_id].connector,
                                                                    transport=transport))
    start = time.perf_counter()
    stats = await controller.run(drain=True)
    elapsed = time.perf_counter() - start
    if stats.delivered != len(sim.orders) or engine.stack.count():
        raise SystemExit(f"bench: {cart.key}: delivered {stats.delivered} of {len(sim.orders)} ({stats})")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500, help="updates per cart (default 500)")
    args = parser.parse_args()
    figures: dict[str, str] = {}
    for cart in CARTS:
        with tempfile.TemporaryDirectory(prefix="cartstatus-bench-") as tmp:
            os.chdir(tmp)
            engine = StatusEngine(load_config(write_setup(Path(tmp), cart)))
            sim = cart.simulator(cart.quota, cart.window)
            numbers = [str(100000 + i) for i in range(args.records)]
            for number in numbers:
                sim.add_order(number)
            engine.upsert_orders([{"order_number": n, "store": "main", "status": "New", "cart_order_ref": n,
                                   "email": f"shopper{n}@example.com", "zip": "12345"} for n in numbers])
            engine.fire("Order Shipped", numbers, tracking=["UPS:1Z999AA10123456784"])
            elapsed = asyncio.run(drain(engine, cart, sim))
            engine.db.dispose()
        accepted = sim.requests - sim.throttled
        fastest = (math.ceil(accepted / cart.quota) - 1) * cart.window
        ratio = fastest / elapsed
        print(f"{cart.key}: {args.records} updates, {accepted} requests accepted ({accepted / args.records:.1f} an "
              f"update), {sim.throttled} refused for the limit of {cart.quota} per {cart.window:g} s; drained in "
              f"{elapsed:.2f} s, the limit allows {fastest:.2f} s at best: ratio {ratio:.2f}", flush=True)
        figures[f"{cart.key}_429s"] = str(sim.throttled)
        figures[f"{cart.key}_limit_ratio"] = f"{ratio:.2f}"
    print_headlines(**figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
