"""Benchmark: one cart down for the whole run, and how much it slows delivery to another.

In one run on this machine:

* the Stone Edge script simulator served by uvicorn in a subprocess on
  127.0.0.1, answering at once: the healthy store ``main``;
* a broken store ``down`` (the same connector) whose cart either refuses every
  connection (a port bound and never listened on) or takes it and never
  answers (``hanging``: each send is cut at the store's 2 s timeout);
* a fresh SQLite stack per run, ``--broken`` (500) updates for ``down``
  queued first (claimed first), then ``--healthy`` (2,000) for ``main``;
* the real :class:`StackController` (default settings), timed from ``run``
  until every update of ``main`` has left the stack.

Rounds alternate the three runs (alone, beside a refusing cart, beside a
hanging one); figures are medians. ``<fault>_ratio`` is the healthy store's
drain time beside the broken cart over its time alone. Aim (issue 13):
at most 1.10.

    .venv/bin/python bench/circuits.py [--healthy N] [--broken N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from cartstatus import StackController, StatusEngine, load_config
from cartstatus.serve import serve_on_fd, start_server_process, stop_server_process
from figures import print_headlines

USER, PASSWORD, CODE = "om", "secret", "main"  # the simulator factory's defaults


def serve_simulator(fd: int) -> None:
    from cartstatus.connectors.seti.simulator import create_app

    serve_on_fd(create_app(accept_unknown=True), fd)


def write_setup(path: Path, cart_url: str, broken_url: str | None) -> Path:
    stores = [{"id": "main", "cart": "seti", "connector": {"url": cart_url, "user": USER, "password": PASSWORD,
                                                          "code": CODE, "timeout": 2}}]
    if broken_url:
        stores.append({"id": "down", "cart": "seti", "connector": {"url": broken_url, "user": USER,
                                                                  "password": PASSWORD, "code": CODE, "timeout": 2}})
    path.write_text(yaml.safe_dump({
        "system": {"UseStatusUpdates": True},
        "status_events": [{"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True}],
        "stores": stores,
        "stack": {"url": f"sqlite:///{path.stem}.db"},
    }, sort_keys=False))
    return path


async def healthy_drain(engine: StatusEngine, healthy: int, broken: int, prefix: str) -> float:
    for store, count in (("down", broken), ("main", healthy)):
        if not count:
            continue
        numbers = [f"{prefix}{store}{i:05d}" for i in range(count)]
        engine.upsert_orders([{"order_number": n, "store": store, "status": "New", "cart_order_ref": f"C{n}",
                               "email": None, "zip": None} for n in numbers])
        engine.fire("Order Shipped", numbers, store=store)
    controller = StackController(engine.config, engine.stack)
    start = time.perf_counter()
    task = asyncio.create_task(controller.run())
    try:
        while any(d.store_id == "main" for d in await asyncio.to_thread(engine.stack.destinations)):
            if task.done():
                await task
                raise SystemExit("bench: the controller stopped by itself")
            await asyncio.sleep(0.02)
        return time.perf_counter() - start
    finally:
        controller.stop()
        await task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--healthy", type=int, default=2000, help="updates to the healthy store (default 2000)")
    parser.add_argument("--broken", type=int, default=500, help="updates to the broken store (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cartstatus-bench-") as tmp, \
            socket.socket() as refusing, socket.socket() as hanging:
        folder = Path(tmp)
        os.chdir(folder)
        refusing.bind(("127.0.0.1", 0))
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(4096)
        broken = {"refused": f"http://127.0.0.1:{refusing.getsockname()[1]}/seom.php",
                  "hanging": f"http://127.0.0.1:{hanging.getsockname()[1]}/seom.php"}
        sim, base = start_server_process([sys.executable, __file__, "serve-simulator"], probe="/_sim/orders")
        times: dict[str, list[float]] = {"alone": [], "refused": [], "hanging": []}
        try:
            print(f"bench: simulator pid {sim.pid} on {base}; cpus={os.cpu_count()}, load average "
                  f"{os.getloadavg()[0]:.2f}; {args.healthy} updates to the healthy store, {args.broken} to the "
                  f"broken one (queued first)", flush=True)
            for round_no in range(args.rounds):
                for run in times:
                    url = broken.get(run)
                    engine = StatusEngine(load_config(write_setup(folder / f"{run}{round_no}.yaml",
                                                                  f"{base}/seom.php", url)))
                    seconds = asyncio.run(healthy_drain(engine, args.healthy, args.broken if url else 0, run[0]))
                    engine.db.dispose()
                    times[run].append(seconds)
                    print(f"round {round_no + 1}: {run}: the healthy store drained in {seconds:.2f} s "
                          f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop_server_process(sim)
    alone = statistics.median(times["alone"])
    print_headlines(healthy_alone_s=f"{alone:.2f}",
                    refused_ratio=f"{statistics.median(times['refused']) / alone:.2f}",
                    hanging_ratio=f"{statistics.median(times['hanging']) / alone:.2f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-simulator"]:
        serve_simulator(int(sys.argv[2]))
    else:
        sys.exit(main())
