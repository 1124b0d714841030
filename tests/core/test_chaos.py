"""Chaos (issue 8, "Show"): three controllers drain 10,000 updates from a cart that fails 30% of requests.

10 script-cart stores x 100 orders x 10 successive events = 10,000 updates,
drained by three ``cartstatus controller`` processes from a cart
(tests/chaos_cart.py) that answers 30% of requests with a fault (500, 503 and
429 with Retry-After, a hang past the client's timeout, a dropped connection,
a garbled reply, a reply trickled past the lease), while one controller is
SIGKILLed and restarted 20 times at random moments (each a random time after
it took its first lease). Just before each kill the controller is stopped
(SIGSTOP) and the records it holds a lease on are read from the stack: those,
and only those, may reach the cart twice.

At the end: every update was applied by the cart or is parked with its
reason; each order shows its label in the order manager; no order's applied
statuses ever went backwards; every duplicate apply was in flight at a kill.
The counts are printed; a failure lists the offending orders' applies with
the cart's request numbers and times.

``CARTSTATUS_CHAOS_SEED`` picks another seed (faults and kill moments).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import sqlalchemy as sa
import yaml
from cartstatus import StatusEngine, load_config
from cartstatus.events import KNOWN_EVENTS
from cartstatus.storage import make_engine, orders, stack
from sqlalchemy.engine import Engine

from ..chaos_cart import ChaosCart, applied_backwards, timeline
from ..conftest import SHOP_PASSWORD, add_orders, base_setup
from ..services import fresh_postgres_database
from .test_crash import cartstatus_command

SEED = int(os.environ.get("CARTSTATUS_CHAOS_SEED", "8"))
STORES = [f"s{i}" for i in range(10)]
ORDERS_PER_STORE = 100
#: Ten events, each setting the next status: an order's statuses have one order, so "backwards" is checkable.
WALK = [(event, f"S{i:02d}") for i, event in enumerate(KNOWN_EVENTS[:10], 1)]
STATUSES = [status for _, status in WALK]
CONTROLLERS = 3
VICTIM = 0  # the controller that is killed and restarted
KILLS = 20
#: A kill comes this long (drawn) after the restarted controller took its first lease: mid-send, mid-claim, mid-settle.
KILL_AFTER_LEASE = (0.0, 0.8)
# A cart's normal reply must come well inside the timeout even on a loaded 2-core machine: a reply cut by
# the deadline after the cart applied it is a duplicate no kill explains. Hangs and trickles still outlast it.
LEASE_SECONDS = 8.0
CART_TIMEOUT = 3.0
GIVE_UP_SECONDS = 300.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stack.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def chaos_setup(cart_url: str, stack_url: str) -> dict[str, Any]:
    data = base_setup(
        status_events=[{"event": event, "order_status": status, "notify_cart": True} for event, status in WALK],
        stack={"url": stack_url},
        controller={"lease_seconds": LEASE_SECONDS, "concurrency": 4 * len(STORES), "batch_size": 100,
                    "backoff_base": 0.05, "backoff_cap": 0.5})
    data["stores"] = [
        {"id": store, "cart": "seti",
         "connector": {"url": f"{cart_url}/{store}/seom.php", "user": "om", "password": {"$env": "SHOP_PASSWORD"},
                       "code": store, "timeout": CART_TIMEOUT}}
        for store in STORES]
    return data


class Controllers:
    """``cartstatus controller`` processes on one setup file, each with its own log."""

    def __init__(self, config_file: Path, logs: Path) -> None:
        self.command = [*cartstatus_command(), "--config", str(config_file), "controller", "--mode", "shared"]
        self.logs = logs
        self.running: list[tuple[subprocess.Popen[bytes], Path, IO[bytes]]] = []
        self.started = 0

    def start(self, slot: int | None = None) -> None:
        self.started += 1
        path = self.logs / f"controller-{self.started}.log"
        log = path.open("wb")
        entry = (subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT), path, log)
        if slot is None:
            self.running.append(entry)
        else:
            self.running[slot] = entry

    def check_alive(self) -> None:
        for process, path, _log in self.running:
            assert process.poll() is None, f"a controller exited by itself ({process.returncode}):\n" \
                                           f"{path.read_text()[-3000:]}"

    def worker_prefix(self, slot: int) -> str:
        """How the ``leased_by`` of the controller's records starts (its worker id: host, pid, ...)."""
        return f"{socket.gethostname()}:{self.running[slot][0].pid}:"

    def holds_leases(self, slot: int, db: Engine) -> bool:
        return bool(leased_by(db, self.worker_prefix(slot)))

    def kill(self, slot: int, db: Engine) -> set[tuple[str, str]]:
        """SIGKILL the controller in ``slot`` and start another; returns the records it held a lease on."""
        process, _path, log = self.running[slot]
        os.kill(process.pid, signal.SIGSTOP)
        try:
            held = leased_by(db, self.worker_prefix(slot))
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            log.close()
        self.start(slot)
        return held

    def stop(self, check: bool = True) -> None:
        """SIGTERM (a clean stop) to every running controller; with ``check``, each must exit cleanly.

        A controller started a moment ago may still be importing, before its
        handler for SIGTERM is in place: ended by the signal, that is clean too.
        """
        for process, _path, _log in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        problems = []
        for process, path, log in self.running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            if process.returncode not in (0, -signal.SIGTERM):
                problems.append(f"exit {process.returncode}: {path.read_text()[-2000:]}")
        assert not (check and problems), "\n".join(problems)


def reader(url: str) -> Engine:
    """An engine that only reads: on SQLite without the stack's BEGIN IMMEDIATE, which would wait for the
    write lock a stopped controller may hold (a read in WAL mode needs no lock)."""
    return sa.create_engine(url) if url.startswith("sqlite") else make_engine(url)


def leased_by(db: Engine, worker_prefix: str) -> set[tuple[str, str]]:
    """(cart order ref, status) of the records whose lease a worker holds."""
    query = sa.select(stack.c.payload).where(stack.c.leased_by.startswith(worker_prefix, autoescape=True))
    with db.connect() as conn:
        payloads = [json.loads(p) for p in conn.execute(query).scalars()]
    return {(p["cart_order_ref"], p["status"]) for p in payloads}


def unparked(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(stack)
                                .where(stack.c.parked == sa.false())).scalar_one())


def queue_the_walk(config_file: Path, cart: ChaosCart) -> set[tuple[str, str]]:
    """Import the orders (in the stack and in the cart) and fire every event of the walk at all of them."""
    engine = StatusEngine(load_config(config_file))
    try:
        numbers = [n for store in STORES for n in add_orders(engine, ORDERS_PER_STORE, store, prefix=f"{store}-")]
        for number in numbers:
            cart.add_order(f"C{number}", "New")
        for event, _status in WALK:
            assert all(r.queued for r in engine.fire(event, numbers))
        updates = {(f"C{n}", status) for n in numbers for status in STATUSES}
        assert engine.stack.count() == len(updates) == 10_000
    finally:
        engine.db.dispose()
    return updates


def drain_with_kills(controllers: Controllers, db: Engine, rng: random.Random, started: float,
                     cart: ChaosCart) -> tuple[set[tuple[str, str]], int]:
    """Run the controllers until only parked records are left and the victim was killed KILLS times.

    Returns the records in flight at the kills and how many kills caught the victim holding a lease.
    """
    in_flight: set[tuple[str, str]] = set()
    holding = kills = 0
    kill_at = None
    for _ in range(CONTROLLERS):
        controllers.start()
    while kills < KILLS or unparked(db):
        controllers.check_alive()
        assert time.monotonic() - started < GIVE_UP_SECONDS, (
            f"not drained in {GIVE_UP_SECONDS}s: {unparked(db)} records left, {cart.requests} requests, {kills} kills")
        if kills < KILLS and kill_at is None and (controllers.holds_leases(VICTIM, db) or not unparked(db)):
            kill_at = time.monotonic() + rng.uniform(*KILL_AFTER_LEASE)
        if kill_at is not None and time.monotonic() >= kill_at:
            held = controllers.kill(VICTIM, db)
            in_flight |= held
            holding += bool(held)
            kills += 1
            kill_at = None
        time.sleep(0.05 if kills < KILLS else 0.2)
    return in_flight, holding


def final_state(db: Engine) -> tuple[dict[str, str], dict[tuple[str, str], str | None]]:
    """The order manager's label per cart order ref, and the parked records with their reasons."""
    with db.connect() as conn:
        labels = {f"C{n}": s for n, s in conn.execute(sa.select(orders.c.order_number, orders.c.status))}
        rows = conn.execute(sa.select(stack.c.payload, stack.c.last_error).where(stack.c.parked == sa.true()))
        parked = {(payload["cart_order_ref"], payload["status"]): err
                  for payload, err in ((json.loads(p), e) for p, e in rows)}
    return labels, parked


@pytest.mark.slow
def test_chaos_three_controllers_a_faulty_cart_and_twenty_kills(tmp_path: Path, stack_url: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    cart = ChaosCart(password=SHOP_PASSWORD, seed=SEED, lease_seconds=LEASE_SECONDS, client_timeout=CART_TIMEOUT)
    with cart as cart_url:
        config_file = tmp_path / "cartstatus.yaml"
        config_file.write_text(yaml.safe_dump(chaos_setup(cart_url, stack_url), sort_keys=False))
        updates = queue_the_walk(config_file, cart)
        db = reader(stack_url)
        controllers = Controllers(config_file, tmp_path)
        try:
            in_flight_at_kills, kills_holding = drain_with_kills(controllers, db, random.Random(SEED), started, cart)
            controllers.stop()
            cart.wait_quiet()
            labels, parked = final_state(db)
        except BaseException:
            controllers.stop(check=False)  # the failure above is the one to report
            raise
        finally:
            db.dispose()

    applies = Counter((ref, status) for ref, seq in cart.applied.items() for status, _number, _at in seq)
    duplicates = {key: count for key, count in applies.items() if count > 1}
    backwards = {ref: applied_backwards(seq, STATUSES) for ref, seq in cart.applied.items()}
    backwards = {ref: b for ref, b in backwards.items() if b}
    parked_orders = {ref for ref, _status in parked}
    wrong = {ref: (cart.shows[ref], label) for ref, label in labels.items()
             if ref not in parked_orders and cart.shows[ref] != label}
    seconds = time.monotonic() - started
    stray = sorted(set(duplicates) - in_flight_at_kills)
    faults = sum(cart.faults.values())
    repeats = sum(duplicates.values()) - len(duplicates)
    summary = (f"chaos ({stack_url.split(':')[0]}, seed {SEED}): {len(updates)} updates, {cart.requests} requests, "
               f"{faults} faults {dict(sorted(cart.faults.items()))}, "
               f"{repeats} duplicate applies ({len(stray)} not in flight at a kill), "
               f"{KILLS} kills ({kills_holding} holding leases, {len(in_flight_at_kills)} records in flight), "
               f"{len(parked)} parked, {len(backwards)} orders gone backwards, {len(wrong)} orders showing another "
               f"status than their label, {seconds:.0f} s")
    with capsys.disabled():  # the counts are the point: shown in make test's output too
        print(f"\n{summary}")

    # The chaos was what it should be.
    assert 0.25 < faults / cart.requests < 0.35, summary
    assert set(cart.faults) == {"http_500", "http_503", "http_429", "timeout", "dropped", "garbled", "slow"}
    assert kills_holding, "no kill caught the controller holding a lease"
    # Every update was applied by the cart, or is parked with its reason.
    assert not (updates - set(applies) - set(parked)), "updates neither applied nor parked"
    assert all(parked.values()), "a parked record without its reason"
    # Each order shows the order manager's label (unless an update of it is parked).
    assert not wrong, "cart shows, label; the cart's applies:\n" + "\n".join(
        f"{ref} {shown}, {label}: {timeline(cart.applied[ref])}" for ref, (shown, label) in list(wrong.items())[:10])
    # No order's statuses ever went backwards.
    assert not backwards, "applied after a later status; the cart's applies:\n" + "\n".join(
        f"{ref} {late}: {timeline(cart.applied[ref])}" for ref, late in list(backwards.items())[:10])
    # A duplicate only for a record in flight at a kill.
    assert not stray, "applied more than once, not in flight at a kill; the cart's applies:\n" + "\n".join(
        f"{ref} {status}: {timeline(cart.applied[ref])}" for ref, status in stray[:10])
