"""The facade's Prometheus series (one registry per app, so tests build fresh ones)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from voxmesh.metrics import LATENCY_BUCKETS


class FacadeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "voxmesh_facade_requests",
            "HTTP requests answered, by route, status and caller identity.",
            ["route", "status", "caller"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voxmesh_facade_request_seconds",
            "Time from a request's arrival to its last byte.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "voxmesh_facade_requests_in_flight",
            "Requests being served now.",
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voxmesh_facade_audio_seconds",
            "Seconds of audio transcribed or translated, by caller identity.",
            ["caller"],
            registry=self.registry,
        )
