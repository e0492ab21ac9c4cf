"""Prometheus metrics under the names SREs' dashboards already use, plus each service's own.

gRPC servers and clients export go-grpc-prometheus's family:
``grpc_server_started_total``, ``grpc_server_handled_total`` and the
``grpc_server_handling_seconds`` histogram, labelled ``grpc_type``,
``grpc_service``, ``grpc_method`` (and ``grpc_code`` once handled, spelled as Go's
``codes.Code.String()``: ``OK``, ``InvalidArgument``, ``DeadlineExceeded``), and the
same as ``grpc_client_*`` on the calling side. Every process also exports
``process_*``, ``python_*`` and ``voxmesh_build_info``. No metric has a
``service``, ``job`` or ``instance`` label: Prometheus attaches those to the
target, and a metric's own would collide (landing as ``exported_service``).

Every metric lives in a registry a test can build fresh; ``main()`` serves it
on ``<SERVICE>_METRICS_ADDR``.
"""

from __future__ import annotations

import logging
import platform
import time
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from voxmesh.config import parse_addr

log = logging.getLogger(__name__)

# Seconds; spans fast unary calls and minute-long transcription streams.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

# go-grpc-prometheus's grpc_type values, by (request streaming, response streaming).
GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}
_METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def go_code(name: str) -> str:
    """``DEADLINE_EXCEEDED`` as go-grpc-prometheus writes it: ``DeadlineExceeded``."""
    if name == "OK":
        return name
    if name == "CANCELLED":
        return "Canceled"  # Go's codes.Canceled.String()
    return "".join(part.capitalize() for part in name.split("_"))


def build_version() -> str:
    try:
        return version("voxmesh")
    except PackageNotFoundError:
        return "unknown"


def register_process_metrics(registry: CollectorRegistry) -> None:
    """``process_*`` (CPU, memory, file descriptors), ``python_*`` (GC, version), build info."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Gauge(
        "voxmesh_build_info",
        "Always 1; the labels say which build is running.",
        ["version", "python_version"],
        registry=registry,
    ).labels(build_version(), platform.python_version()).set(1)


class _Family:
    """started / handled / handling_seconds for one side (``server`` or ``client``)."""

    def __init__(self, side: str, registry: CollectorRegistry) -> None:
        what = "received" if side == "server" else "made"
        self.started = Counter(
            f"grpc_{side}_started",
            f"RPCs {what} and started.",
            _METHOD_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            f"grpc_{side}_handled",
            f"RPCs {what} and completed, by status code.",
            (*_METHOD_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            f"grpc_{side}_handling_seconds",
            "Time from the call's start to its status.",
            _METHOD_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def for_method(self, method: str, grpc_type: str) -> MethodMetrics:
        return MethodMetrics(self, method, grpc_type)


class Metrics:
    """What every gRPC server exports; services add theirs to ``registry``."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service  # logs and /metrics' address name it; no label does
        self.registry = registry if registry is not None else CollectorRegistry()
        register_process_metrics(self.registry)
        self._family = _Family("server", self.registry)

    def for_method(self, method: str, grpc_type: str = "unary") -> MethodMetrics:
        """The series of the full ``method`` (``/pkg.Service/Name``)."""
        return self._family.for_method(method, grpc_type)

    def serve(self, addr: str) -> None:
        """Expose /metrics on ``addr`` (host:port) in a background thread."""
        host, port = parse_addr("METRICS_ADDR", addr)
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s/metrics", addr)


class ClientMetrics:
    """``grpc_client_*`` for the calls a process makes (the gateway's to every service)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._family = _Family("client", registry)
        self._methods: dict[tuple[str, str], MethodMetrics] = {}

    def for_method(self, method: str, grpc_type: str) -> MethodMetrics:
        found = self._methods.get((method, grpc_type))
        if found is None:
            found = self._methods[(method, grpc_type)] = self._family.for_method(method, grpc_type)
        return found


class MethodMetrics:
    """One method's series, bound once.

    ``labels()`` takes a lock and hashes the label values: on every call it
    is a measurable share of a fast RPC's cost.
    """

    def __init__(self, family: _Family, method: str, grpc_type: str) -> None:
        service, _, name = method.lstrip("/").partition("/")
        self._family = family
        self._labels = (grpc_type, service, name)
        self._started = family.started.labels(*self._labels)
        self._seconds = family.seconds.labels(*self._labels)
        self._handled: dict[str, Counter] = {}

    def start(self) -> float:
        """Count the call as started; returns its start time for :meth:`observe`."""
        self._started.inc()
        return time.monotonic()

    def observe(self, code: str, started: float) -> None:
        """Count the call as handled with ``code`` (``grpc.StatusCode``'s name)."""
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = self._family.handled.labels(
                *self._labels, go_code(code)
            )
        handled.inc()
        self._seconds.observe(time.monotonic() - started)
