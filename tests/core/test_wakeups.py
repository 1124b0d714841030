"""A controller learns of new records as they are queued: in this process, through LISTEN, through SQLite's
change counter. Each check waits on the wake-up itself; the only time limit is a guard against a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cartstatus import StackController, StatusEngine
from cartstatus import controller as controller_module
from cartstatus.wakeups import Wakeups

from ..conftest import add_orders
from ..services import fresh_postgres_database
from .conftest import ScriptedConnector, run_until
from .test_crash import cartstatus_command

#: Only a guard: a wake-up that never comes fails here instead of hanging the suite.
HANG_GUARD = 30.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stack.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_firing_wakes_the_controllers_of_this_process_after_the_commit(
        make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine()
    (number,) = add_orders(engine, 1)
    seen: list[int] = []
    unsubscribe = engine.stack.subscribe(lambda: seen.append(engine.stack.count()))
    engine.fire("Invoice Printed", [number])  # internal only: nothing queued, nobody woken
    assert seen == []
    engine.fire("Order Shipped", [number])
    assert seen == [1]  # the record is committed by the time the controller looks
    unsubscribe()
    engine.fire("Order Cancelled", [number])
    assert seen == [1]


async def fire_in_another_process(engine: StatusEngine, number: str) -> None:
    """``cartstatus fire``: a write this process is never told of, only the database can tell."""
    proc = await asyncio.create_subprocess_exec(*cartstatus_command(), "--config", str(engine.config.path), "fire",
                                                "Order Shipped", number, stdout=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0


async def test_a_write_by_another_process_wakes_the_watcher(stack_url: str,
                                                            make_engine: Callable[..., StatusEngine]) -> None:
    engine = make_engine(stack={"url": stack_url})
    (number,) = add_orders(engine, 1)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    watcher = asyncio.create_task(Wakeups(engine.stack, lambda: loop.call_soon_threadsafe(woken.set)).run())
    try:
        async with asyncio.timeout(HANG_GUARD):
            await woken.wait()  # the first wake-up: listening or watching now
        woken.clear()
        await fire_in_another_process(engine, number)
        async with asyncio.timeout(HANG_GUARD):
            await woken.wait()
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def test_an_idle_controller_sends_a_record_queued_by_another_process_at_once(
        stack_url: str, make_engine: Callable[..., StatusEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle controller looks at the stack again only after an hour here: only a wake-up sends the record."""
    monkeypatch.setattr(controller_module, "HEARTBEAT_SECONDS", 3600.0)
    engine = make_engine(stack={"url": stack_url})
    (number,) = add_orders(engine, 1)
    connector = ScriptedConnector()
    controller = StackController(engine.config, engine.stack, connector_factory=lambda r: connector)

    async def fire_when_idle() -> None:
        await asyncio.sleep(1.0)
        await fire_in_another_process(engine, number)

    firing = asyncio.create_task(fire_when_idle())
    await run_until(controller, lambda: bool(connector.sent), deadline=HANG_GUARD)
    await firing
    assert [u.order_number for u in connector.sent] == [number]
