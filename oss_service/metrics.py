"""Prometheus metrics of the OSS: every label from a fixed set, so no request can make them grow."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

#: The methods counted by name; any other a client sends is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The routes counted by name; any other path is counted as ``other``.
ROUTES = frozenset({"/api/v1/updates", "/api/v1/lookup", "/api/v1/account", "/healthz", "/metrics",
                    "/openapi.json", "/static/oss.css", "/"})
#: Upper bounds of the latency histogram's buckets, in seconds.
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, float("inf"))


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def route_label(path: str) -> str:
    """The route a path belongs to, for metrics and logs (never the merchant or order)."""
    if path.startswith("/status/"):
        for tail in ("/snippet", "/look.css"):
            if path.endswith(tail):
                return "/status/{merchant}" + tail
        return "/status/{merchant}"
    if path.startswith("/api/v1/orders/"):
        return "/api/v1/orders/{order_number}"
    return path if path in ROUTES else "other"


class Metrics:
    """The OSS's counts, kept as plain numbers by the event loop and turned into Prometheus metrics when scraped.

    Measured in the busy server: prometheus_client's labelled counters and
    histogram took a lock for each of a request's five increments, about 4 µs
    of a 300 µs request; here a request costs a few dictionary and list updates.
    Only the event loop's thread counts; a scrape reads copies.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self._requests: dict[tuple[str, str, int], int] = {}
        #: By route: a count for each of LATENCY_BUCKETS (not cumulative), then the sum of the seconds.
        self._latency: dict[str, list[float]] = {}
        self._updates: dict[str, int] = {}
        self._lookups: dict[str, int] = {}

    def update(self, result: str) -> None:
        """One status update received, by result (stored, replayed, invalid...)."""
        self._updates[result] = self._updates.get(result, 0) + 1

    def lookup(self, result: str) -> None:
        """One shopper lookup, by result (found, not_found, locked...)."""
        self._lookups[result] = self._lookups.get(result, 0) + 1

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request; ``route`` and ``method`` are labels already (:func:`route_label`, :func:`method_label`)."""
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = [0] * len(LATENCY_BUCKETS) + [0.0]
        latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        """The metrics, for the registry (a scrape), in the order first seen, from copies taken at once."""
        requests = CounterMetricFamily("oss_http_requests", "HTTP requests", labels=["route", "method", "status"])
        for (route, method, status), count in list(self._requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("oss_http_request_duration_seconds", "Time to answer a request",
                                        labels=["route"])
        for route, counted in list(self._latency.items()):
            seconds, below, buckets = list(counted), 0.0, []
            for bound, in_bucket in zip(LATENCY_BUCKETS, seconds, strict=False):
                below += in_bucket
                buckets.append((floatToGoString(bound), below))
            latency.add_metric([route], buckets, seconds[-1])
        yield latency
        for name, documentation, results in (("oss_updates", "Status updates received, by result", self._updates),
                                             ("oss_lookups", "Shopper lookups, by result", self._lookups)):
            family = CounterMetricFamily(name, documentation, labels=["result"])
            for result, count in list(results.items()):
                family.add_metric([result], count)
            yield family
