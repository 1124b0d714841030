"""On a real PostgreSQL server (started by make test): the OSS's migrations, ingest and lookup, and the stack."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest
import sqlalchemy as sa
from cartstatus import StackController, StatusEngine
from cartstatus.config import Config
from cartstatus.connectors.seti.simulator import SetiSimulator
from cartstatus.oss.app import ServerSettings, create_app
from cartstatus.oss.loop_database import Plan, run_plan
from cartstatus.oss.service import IngestJob, IngestResult, OssStore, hash_token, lookup_digest
from cartstatus.oss.storage import current_revision, head_revision, migrate, open_oss_database, orders, updates
from cartstatus.oss.wire import body_digest
from cartstatus.oss.writer import BatchWriter
from cartstatus.storage import open_database

from ..conftest import add_orders
from ..services import fresh_postgres_database
from .conftest import bearer, update_body

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[OssStore]:
    engine = open_oss_database(pg_url)
    yield OssStore(engine, today=lambda: dt.date(2026, 6, 1))
    engine.dispose()


def test_oss_migrations_apply_once_and_keep_their_own_version_table(pg_url: str) -> None:
    engine = open_oss_database(pg_url)
    try:
        assert current_revision(engine) == head_revision()
        assert migrate(engine) is False
        tables = set(sa.inspect(engine).get_table_names())
        assert {"oss_accounts", "oss_orders", "oss_updates", "oss_alembic_version"} <= tables
        assert "alembic_version" not in tables  # the core's own migrations are not touched
    finally:
        engine.dispose()


async def test_ingest_and_lookup_on_postgres(pg_store: OssStore) -> None:
    _, acme = pg_store.create_account("acme", dt.date(2026, 12, 31))
    _, bolt = pg_store.create_account("bolt", dt.date(2026, 1, 31))
    app = create_app(pg_store, ServerSettings())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oss.test") as c:
            body = update_body()
            assert (await c.post("/api/v1/updates", json=body, headers=bearer(acme))).status_code == 200
            again = await c.post("/api/v1/updates", json=body, headers=bearer(acme))
            assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
            other = await c.post("/api/v1/updates", json={**body, "status": "Lost"}, headers=bearer(acme))
            assert other.status_code == 409
            lapsed = await c.post("/api/v1/updates", json=update_body(), headers=bearer(bolt))
            assert lapsed.status_code == 402 and lapsed.json()["expires"] == "2026-01-31"
            found = await c.get("/api/v1/lookup", params={"merchant": "acme", "order": "1001", "zip": "12345"})
            assert found.status_code == 200 and found.json()["status"] == "Shipped"
            assert found.json()["tracking"][0]["url"].startswith("https://www.ups.com/")
            hidden = await c.get("/api/v1/lookup", params={"merchant": "bolt", "order": "1001", "zip": "12345"})
            assert hidden.status_code == 404
            page = await c.post("/status/acme", data={"order": "1001", "email": "pat@example.com"})
            assert 'id="status">Shipped<' in page.text
            assert (await c.get("/healthz")).json()["status"] == "ok"
    finally:
        app.state.oss.close()


@pytest.mark.parametrize("keys", [("k-same-01", "k-same-01"), ("k-first-1", "k-second1")], ids=["one key", "two keys"])
def test_two_workers_storing_updates_of_one_new_order_at_once(pg_url: str, pg_store: OssStore,
                                                                 keys: tuple[str, str]) -> None:
    """Two server processes (two engines here) racing on one new order: with one key it is stored once and
    replayed; with two keys both are stored, in one order (the order is an upsert: nobody collides on it)."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))
    bodies = [update_body(order_number="R-1", idempotency_key=key) for key in keys]
    jobs = [IngestJob(hash_token(token), body, body_digest(body)) for body in bodies]
    other = OssStore(open_oss_database(pg_url, run_migrations=False), today=pg_store.today)
    barrier = threading.Barrier(2)
    kinds: list[str] = []

    def worker(store: OssStore, job: IngestJob) -> None:
        barrier.wait()
        kinds.extend(r.kind for r in store.ingest([job]))

    threads = [threading.Thread(target=worker, args=pair) for pair in zip((pg_store, other), jobs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.engine.dispose()
    once = keys[0] == keys[1]
    assert sorted(kinds) == (["replayed", "stored"] if once else ["stored", "stored"])
    with pg_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(updates)).scalar_one() == (1 if once else 2)
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 1


async def test_a_batch_that_read_an_order_before_a_newer_status_was_committed_does_not_undo_it(
        pg_store: OssStore) -> None:
    """Two transactions side by side (two batches in flight, or two server processes): the one that read the
    order first and writes last carries the older update; the newer status stays."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))
    token_hash = hash_token(token)

    def job(key: str, status: str, at: str) -> IngestJob:
        body = update_body(idempotency_key=key, order_number="R-7", status=status, occurred_at=at)
        return IngestJob(token_hash, body, body_digest(body))

    pg_store.ingest([job("k-1", "Printed", "2026-05-01T09:00:00Z")])
    def newer_committed_before_the_update(plan: Plan[list[IngestResult]]) -> Plan[list[IngestResult]]:
        """``plan`` as run_plan runs it, with a newer status committed elsewhere once the plan has begun (the
        order at Printed, 09:00) and before it writes the order."""
        step = next(plan)
        while True:
            if "INSERT INTO oss_orders" in step.sql:  # the order is written (with its update, on PostgreSQL)
                newer = pg_store.ingest([job("k-3", "Delivered", "2026-05-01T11:00:00Z")])
                assert [r.kind for r in newer] == ["stored"]
            rows = yield step
            try:
                step = plan.send(rows)
            except StopIteration as done:
                return done.value

    slow = pg_store.ingest_plan([job("k-2", "Shipped", "2026-05-01T10:00:00Z")])
    assert [r.kind for r in run_plan(pg_store.engine, newer_committed_before_the_update(slow))] == ["stored"]
    with pg_store.engine.connect() as conn:
        status = conn.execute(sa.select(orders.c.status).where(orders.c.order_number == "R-7")).scalar_one()
        assert status == "Delivered"
        assert conn.execute(sa.select(sa.func.count()).select_from(updates)).scalar_one() == 3


@pytest.mark.parametrize("run_from", ["loop", "thread"])
async def test_a_batch_with_several_updates_of_one_order_leaves_it_as_they_would_one_after_the_other(
        pg_store: OssStore, run_from: str) -> None:
    """A batch is one statement on PostgreSQL, each order written once: its updates are folded as the per-update
    upserts leave it (the newest status, of two as new the later; the last email, ZIP and reference given)."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))
    pg_store.ingest([IngestJob(hash_token(token), b, body_digest(b)) for b in [
        update_body(order_number="R-2", status="Printed", occurred_at="2026-05-01T08:00:00Z")]])

    def job(**changes: object) -> IngestJob:
        body = update_body(**{"email": ..., "zip": ..., **changes})
        return IngestJob(hash_token(token), body, body_digest(body))

    batch = [job(order_number="R-9", status="Printed", occurred_at="2026-05-01T09:00:00Z", email="a@example.com"),
             job(order_number="R-2", status="Shipped", occurred_at="2026-05-01T07:00:00Z", zip="99999"),
             job(order_number="R-9", status="Delivered", occurred_at="2026-05-01T11:00:00Z", reference="PO-1"),
             job(order_number="R-9", status="Returned", occurred_at="2026-05-01T11:00:00Z", zip="12345"),
             job(order_number="R-9", status="Shipped", occurred_at="2026-05-01T10:00:00Z", email="b@example.com")]
    if run_from == "loop":
        results = await pg_store.ingest_from_loop(batch)
    else:
        results = pg_store.ingest(batch)
    assert [r.kind for r in results] == ["stored"] * 5
    acme = pg_store.account("acme").id
    with pg_store.engine.connect() as conn:
        found = {r.order_number: r for r in conn.execute(sa.select(orders))}
        history = conn.execute(sa.select(updates.c.status, updates.c.order_id).order_by(updates.c.id)).all()
    nine, two = found["R-9"], found["R-2"]
    assert (nine.status, nine.status_at) == ("Returned", dt.datetime(2026, 5, 1, 11, tzinfo=dt.UTC).timestamp())
    assert nine.email_digest == lookup_digest(acme, "email", "b@example.com")
    assert nine.zip_digest == lookup_digest(acme, "zip", "12345") and nine.reference == "PO-1"
    assert two.status == "Printed" and two.zip_digest == lookup_digest(acme, "zip", "99999")  # an older update
    # Stored in order of order number (the batch's lock order), an order's updates as they came.
    assert [s for s, _ in history] == ["Printed", "Shipped", "Printed", "Delivered", "Returned", "Shipped"]
    assert [o for _, o in history] == [two.id, two.id, nine.id, nine.id, nine.id, nine.id]


@pytest.mark.parametrize("run_from", ["loop", "thread"])
async def test_a_batch_stores_its_text_exactly_as_sent(pg_store: OssStore, run_from: str) -> None:
    """A batch's rows reach PostgreSQL as JSON documents: quotes, backslashes, non-ASCII text, an instant with a
    fraction of a second and the tracking list come back exactly as they went in."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))
    tricky = 'say "hi" \\ back\\slash \\u0041 é 漢字 🚚 {"not": "json"}'
    parcels = [{"carrier": "DHL \"Express\"", "number": "JD\\0001", "ship_date": "2026-06-01"},
               {"carrier": "Poste", "number": "ÀB-12"}]
    bodies = [update_body(order_number='R-"1"', status="Ünterwegs", previous_status='a\\b', note=tricky,
                          occurred_at="2026-06-01T10:00:00.123456+02:00", tracking=parcels, reference="PO \"7\""),
              update_body(order_number="R-ü", note=None, tracking=None, email=None, zip=None)]
    batch = [IngestJob(hash_token(token), b, body_digest(b)) for b in bodies]
    results = await pg_store.ingest_from_loop(batch) if run_from == "loop" else pg_store.ingest(batch)
    assert [r.kind for r in results] == ["stored", "stored"]
    with pg_store.engine.connect() as conn:
        stored = {r.order_number: r for r in conn.execute(
            sa.select(orders.c.order_number, orders.c.status, orders.c.status_at, orders.c.reference,
                      updates.c.previous_status, updates.c.note, updates.c.tracking, updates.c.occurred_at,
                      updates.c.idempotency_key, updates.c.body_digest).join(updates))}
    first, second = stored['R-"1"'], stored["R-ü"]
    assert (first.status, first.previous_status, first.note, first.reference) == (
        "Ünterwegs", "a\\b", tricky, 'PO "7"')
    assert orjson.loads(first.tracking) == parcels
    instant = dt.datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=dt.UTC).timestamp()
    assert first.status_at == first.occurred_at == instant
    assert (first.idempotency_key, first.body_digest) == (bodies[0]["idempotency_key"], batch[0].digest)
    assert (second.note, second.tracking) == (None, None)


async def test_a_group_commit_waiting_on_a_lock_does_not_hold_up_the_next(pg_store: OssStore) -> None:
    """Several batches in flight on PostgreSQL: one that waits (here on a row lock) leaves the writer free."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))

    def job(order: str) -> IngestJob:
        body = update_body(order_number=order)
        return IngestJob(hash_token(token), body, body_digest(body))

    pg_store.ingest([job("R-1")])
    writer = BatchWriter(pg_store, in_flight=2)
    with pg_store.engine.connect() as locker:
        with locker.begin():
            locker.execute(sa.select(orders.c.id).where(orders.c.order_number == "R-1").with_for_update())
            first = asyncio.ensure_future(writer.submit(job("R-1")))
            await asyncio.sleep(0.5)  # its batch is written, and waits for the row
            second = await asyncio.wait_for(writer.submit(job("R-2")), 10)
            assert second.kind == "stored" and not first.done()
        assert (await asyncio.wait_for(first, 10)).kind == "stored"  # the lock is gone: it goes on
    await writer.aclose()
    assert writer.batches == 2


@pytest.mark.parametrize(("gather_turns", "batches"), [(2, 2), (0, 3)])
async def test_while_a_batch_is_written_the_next_gathers_the_updates_that_arrive_with_it(
        pg_store: OssStore, gather_turns: int, batches: int) -> None:
    """The next batch waits a turn or two of the loop for what comes in together (with none, each went alone)."""
    _, token = pg_store.create_account("acme", dt.date(2026, 12, 31))

    def job(order: str) -> IngestJob:
        body = update_body(order_number=order)
        return IngestJob(hash_token(token), body, body_digest(body))

    async def a_turn_later(order: str, turns: int) -> IngestResult:
        for _ in range(turns):
            await asyncio.sleep(0)
        return await writer.submit(job(order))

    pg_store.ingest([job("R-1")])
    writer = BatchWriter(pg_store, in_flight=2, gather_turns=gather_turns)
    with pg_store.engine.connect() as locker:
        with locker.begin():
            locker.execute(sa.select(orders.c.id).where(orders.c.order_number == "R-1").with_for_update())
            first = asyncio.ensure_future(writer.submit(job("R-1")))
            await asyncio.sleep(0.5)  # its batch is being written: it waits for the row
            together = await asyncio.wait_for(asyncio.gather(a_turn_later("R-2", 0), a_turn_later("R-3", 1)), 10)
            assert [r.kind for r in together] == ["stored", "stored"]
        assert (await asyncio.wait_for(first, 10)).kind == "stored"
    await writer.aclose()
    assert (writer.batches, writer.jobs) == (batches, 3)


async def test_the_stack_claims_and_settles_on_postgres(pg_url: str, config: Config, simulator: SetiSimulator,
                                                        sim_transport: httpx.AsyncBaseTransport) -> None:
    db = open_database(pg_url)
    engine = StatusEngine(config, engine=db)
    try:
        assert engine.stack.postgres
        numbers = add_orders(engine, 5)
        engine.fire("Order Shipped", numbers)
        engine.fire("Order Cancelled", numbers[:2])
        claimed = engine.stack.claim("w1", 100, 30)
        # Only the oldest record of each order is claimable.
        assert sorted(r.order_number for r in claimed) == sorted(numbers)
        assert engine.stack.claim("w2", 100, 30) == []
        engine.stack.settle(claimed)
        stats = await StackController(config, engine.stack, transport=sim_transport).run(drain=True)
        assert stats.delivered == 2
        assert engine.stack.count() == 0
        assert [r.orderstatus for r in simulator.received] == ["Cancelled", "Cancelled"]
    finally:
        db.dispose()
