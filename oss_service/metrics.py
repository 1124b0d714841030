"""Prometheus metrics of the OSS: every label from a fixed set, so no request can make them grow."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The methods counted by name; any other a client sends is counted as ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The routes counted by name; any other path is counted as ``other``.
ROUTES = frozenset({"/api/v1/updates", "/api/v1/lookup", "/api/v1/account", "/healthz", "/metrics",
                    "/openapi.json", "/static/oss.css", "/"})


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
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("oss_http_requests", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("oss_http_request_duration_seconds", "Time to answer a request", ["route"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.updates = Counter("oss_updates", "Status updates received, by result", ["result"],
                               registry=self.registry)
        self.lookups = Counter("oss_lookups", "Shopper lookups, by result", ["result"], registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._update_children: dict[str, Any] = {}
        self._lookup_children: dict[str, Any] = {}

    def update(self, result: str) -> None:
        child = self._update_children.get(result)
        if child is None:
            child = self._update_children[result] = self.updates.labels(result)
        child.inc()

    def lookup(self, result: str) -> None:
        child = self._lookup_children.get(result)
        if child is None:
            child = self._lookup_children[result] = self.lookups.labels(result)
        child.inc()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request; ``route`` and ``method`` are labels already (:func:`route_label`, :func:`method_label`)."""
        # Labelled children are looked up once per combination, not per request.
        key = (route, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(route, method, str(status)),
                                          self.latency.labels(route))
        pair[0].inc()
        pair[1].observe(seconds)
