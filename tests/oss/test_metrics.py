"""The OSS's metrics: plain counts on the event loop, scraped as prometheus_client itself would write them."""

from __future__ import annotations

from cartstatus.oss.metrics import LATENCY_BUCKETS, Metrics
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


def _without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created" not in line]


def test_a_scrape_reads_as_prometheus_clients_own_counters_and_histogram_would() -> None:
    seen = [("/api/v1/lookup", "GET", 200, 0.0004), ("/api/v1/lookup", "GET", 200, 0.001),
            ("/api/v1/lookup", "GET", 404, 0.0031), ("/api/v1/updates", "POST", 200, 0.02),
            ("other", "other", 405, 7.5), ("/api/v1/updates", "POST", 422, 0.0025)]
    metrics = Metrics()
    reference = CollectorRegistry()
    requests = Counter("oss_http_requests", "HTTP requests", ["route", "method", "status"], registry=reference)
    latency = Histogram("oss_http_request_duration_seconds", "Time to answer a request", ["route"],
                        registry=reference, buckets=LATENCY_BUCKETS)
    updates = Counter("oss_updates", "Status updates received, by result", ["result"], registry=reference)
    lookups = Counter("oss_lookups", "Shopper lookups, by result", ["result"], registry=reference)
    for route, method, status, seconds in seen:
        metrics.observe(route, method, status, seconds)
        requests.labels(route, method, str(status)).inc()
        latency.labels(route).observe(seconds)
    for result in ("stored", "stored", "invalid"):
        metrics.update(result)
        updates.labels(result).inc()
    metrics.lookup("found")
    lookups.labels("found").inc()

    ours = generate_latest(metrics.registry).decode()
    assert _without_created(ours) == _without_created(generate_latest(reference).decode())
    # An observation on a bucket's bound is in that bucket (le: less than or equal).
    assert 'oss_http_request_duration_seconds_bucket{le="0.001",route="/api/v1/lookup"} 2.0' in ours
    assert 'oss_http_request_duration_seconds_bucket{le="5.0",route="other"} 0.0' in ours
    assert 'oss_http_request_duration_seconds_bucket{le="+Inf",route="other"} 1.0' in ours
