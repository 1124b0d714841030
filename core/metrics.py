"""A stack controller's Prometheus metrics (``cartstatus controller --metrics-port N``).

Counters and the send-time histogram are kept as the controller goes; what is on the stack (records per
destination and state, the oldest one's age) and each destination's circuit are read when scraped, so they
are never stale. Each controller has a registry of its own: two in one process (tests) never mix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .circuits import CLOSED, HALF_OPEN, OPEN
from .stack import Stack

#: The value of ``cartstatus_circuit_state`` per state.
CIRCUIT_STATES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
#: Send times from a local simulator's few milliseconds to a hanging cart's deadline.
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Stack(Collector):
    """Read at each scrape: the stack's records per destination and state, and the circuits."""

    def __init__(self, stack: Stack, circuits: Callable[[], list[dict[str, Any]]]) -> None:
        self.stack = stack
        self.circuits = circuits

    def collect(self) -> Iterator[GaugeMetricFamily]:
        records = GaugeMetricFamily("cartstatus_records", "Records on the stack, per destination and state",
                                    labels=["store", "destination", "state"])
        oldest = GaugeMetricFamily("cartstatus_oldest_record_age_seconds",
                                   "Age of the oldest record not parked, per destination",
                                   labels=["store", "destination"])
        now = time.time()
        for depth in self.stack.destinations(now):
            labels = [depth.store_id, depth.destination]
            for state, count in depth.states.items():
                records.add_metric([*labels, state], count)
            if depth.oldest_at is not None:
                oldest.add_metric(labels, now - depth.oldest_at)
        circuit = GaugeMetricFamily("cartstatus_circuit_state",
                                    "A destination's circuit: 0 closed, 1 half-open (probing), 2 open",
                                    labels=["store", "destination"])
        for c in self.circuits():
            circuit.add_metric([str(c["store"]), str(c["destination"])], CIRCUIT_STATES[str(c["state"])])
        yield records
        yield oldest
        yield circuit


class ControllerMetrics:
    """What one controller counts, in a registry of its own."""

    def __init__(self, stack: Stack, circuits: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        labels = ["store", "destination"]
        self.delivered = Counter("cartstatus_delivered", "Updates the cart or OSS took (the record deleted)",
                                 labels, registry=self.registry)
        self.retried = Counter("cartstatus_retried", "Sends that failed for now (the record rescheduled)",
                               labels, registry=self.registry)
        self.parked = Counter("cartstatus_parked", "Records parked for a person to retry or purge",
                              labels, registry=self.registry)
        self.send_seconds = Histogram("cartstatus_send_seconds", "How long one send took, reply or not",
                                      labels, buckets=SEND_BUCKETS, registry=self.registry)
        self.lease_renewals = Counter("cartstatus_lease_renewals", "Leases renewed for sends or settles running long",
                                      registry=self.registry)
        self.registry.register(_Stack(stack, circuits))

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) in a thread; returns what stops it. The port
        taken is :attr:`port`."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(server.server_address[1])

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(10)
        return stop
