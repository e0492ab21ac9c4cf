"""Prometheus metrics: RED per RPC for every server, plus each service's own.

Every metric lives in a :class:`Metrics` object's own registry, so a test can
build a fresh one; ``main()`` serves it on ``<SERVICE>_METRICS_ADDR``.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from voxmesh.config import parse_addr

log = logging.getLogger(__name__)

# Seconds; spans fast unary calls and minute-long transcription streams.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The RPC metrics every server exports; services add theirs to ``registry``."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "voxmesh_rpc_server_requests",
            "RPCs handled, by final status code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voxmesh_rpc_server_latency_seconds",
            "Time from the call's arrival to its status.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "voxmesh_rpc_server_in_flight",
            "RPCs being served now.",
            ["service"],
            registry=self.registry,
        )

    def for_method(self, method: str) -> MethodMetrics:
        return MethodMetrics(self, method)

    def serve(self, addr: str) -> None:
        """Expose /metrics on ``addr`` (host:port) in a background thread."""
        host, port = parse_addr("METRICS_ADDR", addr)
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s/metrics", addr)


class MethodMetrics:
    """One method's series, bound once when its handler is wrapped.

    ``labels()`` takes a lock and hashes the label values: on every call it
    is a measurable share of a fast RPC's cost.
    """

    def __init__(self, metrics: Metrics, method: str) -> None:
        self._metrics = metrics
        self._method = method
        self.in_flight = metrics.in_flight.labels(metrics.service)
        self._latency = metrics.latency.labels(metrics.service, method)
        self._requests: dict[str, Counter] = {}

    def observe(self, code: str, seconds: float) -> None:
        requests = self._requests.get(code)
        if requests is None:
            requests = self._metrics.requests.labels(self._metrics.service, self._method, code)
            self._requests[code] = requests
        requests.inc()
        self._latency.observe(seconds)
