"""``make demo``: the main job end to end on the embedded defaults.

A fresh SQLite stack in ``demo-work/``, a simulated script cart, a simulated
BigCommerce store (a native REST API) and a local OSS on 127.0.0.1, a sample
setup file and orders, events fired (some notify the carts, some go to the OSS
because the cart takes no updates, some are internal only, some change
nothing, one store's OSS subscription has lapsed), the stack drained, and a
short report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from .connectors.bigcommerce.simulator import BigCommerceSimulator
from .connectors.seti.simulator import SetiSimulator
from .controller import StackController
from .engine import FireResult, StatusEngine
from .routing import load_config
from .serve import serve_in_thread

console = Console()

DEMO_PASSWORD_ENV = "DEMO_SHOP_PASSWORD"
DEMO_OSS_TOKEN_ENV = "DEMO_OSS_TOKEN"
DEMO_BIGCOMMERCE_TOKEN_ENV = "DEMO_BIGCOMMERCE_TOKEN"
BIGCOMMERCE_STORE_HASH = "demo1"

ORDERS = """order_number,store,status,cart_order_ref,email,zip
1001,main,New,5001,ann@example.com,02139
1002,main,New,5002,bob@example.com,94103
1003,main,New,5003,cy@example.com,10001
1004,main,Shipped,5004,di@example.com,60601
1005,main,New,5005,ed@example.com,73301
2001,outlet,New,A-2001,fay@example.com,30301
2002,outlet,New,A-2002,gus@example.com,98101
3001,attic,New,B-3001,hal@example.com,80202
4001,web,New,7001,ivy@example.com,78701
4002,web,New,7002,jon@example.com,78702
"""


def setup_file(url: str, oss_url: str, today: dt.date, bigcommerce_url: str) -> dict[str, object]:
    active = (today + dt.timedelta(days=365)).isoformat()
    lapsed = (today - dt.timedelta(days=10)).isoformat()
    return {
        "system": {"UseStatusUpdates": True},
        "status_events": [
            {"event": "Invoice Printed", "order_status": "Printed", "notify_cart": False},
            {"event": "Order Shipped", "order_status": "Shipped", "notify_cart": True},
            {"event": "Order Cancelled", "order_status": "Cancelled", "notify_cart": True},
        ],
        "stores": [
            {"id": "main", "cart": "seti",
             "connector": {"url": f"{url}/seom.php", "user": "om", "password": {"$env": DEMO_PASSWORD_ENV},
                           "code": "main"},
             "status_map": {"Shipped": "shipped", "Cancelled": "cancelled"}},
            # A native REST cart: BigCommerce's own API, its default map (Shipped, Cancelled) and rate limit.
            {"id": "web", "cart": "bigcommerce",
             "connector": {"store_hash": BIGCOMMERCE_STORE_HASH, "access_token": {"$env": DEMO_BIGCOMMERCE_TOKEN_ENV},
                           "api_base": bigcommerce_url}},
            # Americart takes no status updates: with an active subscription they go to the OSS.
            {"id": "outlet", "cart": "americart",
             "oss": {"url": oss_url, "merchant": "outlet", "token": {"$env": DEMO_OSS_TOKEN_ENV},
                     "subscription_expires": active}},
            # The same cart with a lapsed subscription: nothing is queued, the reason is recorded.
            {"id": "attic", "cart": "americart",
             "oss": {"url": oss_url, "merchant": "attic", "token": {"$env": DEMO_OSS_TOKEN_ENV},
                     "subscription_expires": lapsed}},
        ],
        "stack": {"url": "sqlite:///stack.db"},
        "controller": {"backoff_base": 0.2, "backoff_cap": 1.0},
    }


def run(work: Path) -> int:
    started = time.monotonic()
    if work.exists():
        shutil.rmtree(work)  # a fresh stack every run: the demo is idempotent
    work.mkdir(parents=True)
    os.environ.setdefault(DEMO_PASSWORD_ENV, "demo-password")
    os.environ.setdefault(DEMO_BIGCOMMERCE_TOKEN_ENV, "demo-bigcommerce-token")
    bigcommerce = BigCommerceSimulator(store_hash=BIGCOMMERCE_STORE_HASH,
                                       access_token=os.environ[DEMO_BIGCOMMERCE_TOKEN_ENV])
    for ref in ("7001", "7002"):
        bigcommerce.add_order(ref)
    cart = SetiSimulator(user="om", password=os.environ[DEMO_PASSWORD_ENV], code="main",
                         orders={str(n): "pending" for n in range(5001, 5006)})
    from .oss.app import create_app
    from .oss.service import OssStore
    from .oss.storage import open_oss_database

    today = dt.date.today()
    oss_store = OssStore(open_oss_database(f"sqlite:///{work / 'oss.db'}"))
    _, token = oss_store.create_account("outlet", today + dt.timedelta(days=365), "Outlet Store")
    os.environ[DEMO_OSS_TOKEN_ENV] = token
    with serve_in_thread(cart.app()) as url, serve_in_thread(create_app(oss_store)) as oss_url, \
            serve_in_thread(bigcommerce.app()) as bigcommerce_url:
        console.rule("[bold]cartstatus demo")
        console.print(f"simulated script cart at {url}/seom.php, simulated BigCommerce store at {bigcommerce_url}, "
                      f"local OSS at {oss_url}; work folder {work}", soft_wrap=True)
        setup = work / "cartstatus.yaml"
        setup.write_text(yaml.safe_dump(setup_file(url, oss_url, today, bigcommerce_url), sort_keys=False))
        (work / "orders.csv").write_text(ORDERS)
        engine = StatusEngine(load_config(setup))
        console.print(f"imported {engine.import_orders(work / 'orders.csv')} orders from orders.csv")

        fired: list[tuple[str, FireResult]] = []

        def fire(event: str, *orders: str, **kw: object) -> None:
            for r in engine.fire(event, list(orders), **kw):  # type: ignore[arg-type]
                fired.append((event, r))

        fire("Invoice Printed", "1001", "1002", "1003")
        fire("Order Shipped", "1001", "1002", tracking=["UPS:1Z999AA10123456784"])
        fire("Order Shipped", "1003", tracking=["USPS:9400111899223100000000", "FEDEX:123456789012"])
        fire("Order Shipped", "1004")  # already Shipped: nothing changes
        fire("Order Shipped", "1001")  # fired again: the label did not change
        fire("Order Cancelled", "1005")
        fire("Order Shipped", "2001", tracking=["UPS:1Z999AA10123456784"])  # to the OSS
        fire("Order Shipped", "3001")  # lapsed subscription: nothing queued
        fire("Order Shipped", "4001", tracking=["UPS:1Z999AA10123456785", "FEDEX:794644790133"])  # BigCommerce
        fire("Order Cancelled", "4002")
        cart.fail_next("http_503")  # one transient fault: retried with backoff

        table = Table("event", "order", "label", "outcome", title="events fired")
        for event, r in fired:
            if r.queued:
                outcome = "queued for the OSS" if r.route == "oss" else "queued for the cart"
            else:
                outcome = {"internal": "internal only", "none": "not sent (see why below)"}.get(r.route,
                                                                                              "nothing changed")
            table.add_row(event, r.order_number, f"{r.from_status} -> {r.to_status}", outcome)
        console.print(table)

        controller = StackController(engine.config, engine.stack)
        stats = asyncio.run(controller.run(drain=True))

        received = Table("cart order", "our order", "status sent", "tracking", title="what the cart received")
        for rec in cart.received:
            received.add_row(rec.ordernumber, rec.refnumber, rec.orderstatus,
                             ", ".join(f"{c} {n}" for c, n, _ in rec.tracking))
        console.print(received)
        native = Table("BigCommerce order", "status", "shipments (tracking)", title="what the BigCommerce store holds")
        for ref in ("7001", "7002"):
            state = bigcommerce.order_state(ref) or {}
            native.add_row(ref, str(state.get("status")),
                           ", ".join(f"{c} {n}" for c, n in bigcommerce.tracking_numbers(ref)) or "-")
        console.print(native)
        lookup = httpx.get(f"{oss_url}/api/v1/lookup",
                           params={"merchant": "outlet", "order": "A-2001", "zip": "30301"}).json()
        links = ", ".join(t.get("url") or t["number"] for t in lookup.get("tracking", []))
        console.print(f"[bold]the OSS shows the shopper of order A-2001:[/] {lookup.get('status')} ({links}) "
                      f"- page {oss_url}/status/outlet", soft_wrap=True)
        console.print("[bold]not sent to a cart or the OSS, and why:")
        for event, r in fired:
            if not r.queued:
                console.print(f"  {r.order_number} {event}: {r.reason}", highlight=False, soft_wrap=True)
        st = engine.stack.status()
        console.print(f"[bold]stack status:[/] {st.records} records on the stack, {st.parked} failures; "
                      f"controller delivered {stats.delivered}, retried {stats.rescheduled}, "
                      f"parked {stats.parked}")
        engine.db.dispose()
    oss_store.engine.dispose()
    to_cart = sum(r.queued and r.route == "native" and r.store_id == "main" for _, r in fired)
    native_ok = [(bigcommerce.order_state(ref) or {}).get("status") for ref in ("7001", "7002")] == [
        "Shipped", "Cancelled"] and len(bigcommerce.tracking_numbers("7001")) == 2
    ok = st.records == 0 and len(cart.received) == to_cart and lookup.get("status") == "Shipped" and native_ok
    console.print(f"{'[green]demo OK' if ok else '[red]demo FAILED'}[/] in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def main() -> None:
    sys.exit(run(Path(sys.argv[1] if len(sys.argv) > 1 else "demo-work").resolve()))


if __name__ == "__main__":
    main()
