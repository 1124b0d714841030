"""End to end in one process: fire, drain through the script simulator."""

import httpx
from cartstatus import StackController, StatusEngine
from cartstatus.connectors.seti.simulator import SetiSimulator

from ..conftest import add_orders


async def test_fire_and_drain_reaches_the_script_cart(
    engine: StatusEngine, simulator: SetiSimulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    numbers = add_orders(engine, 3)
    results = engine.fire("Order Shipped", numbers, tracking=["UPS:1Z999"])
    assert all(r.queued for r in results)
    controller = StackController(engine.config, engine.stack, transport=sim_transport)
    stats = await controller.run(drain=True)
    assert stats.delivered == 3
    assert engine.stack.count() == 0
    assert [(r.ordernumber, r.refnumber, r.orderstatus) for r in simulator.received] == [
        (f"C{n}", n, "Shipped") for n in numbers
    ]
    assert simulator.received[0].tracking == [("UPS", "1Z999", "")]
