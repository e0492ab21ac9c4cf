"""Tracing set up once per process the OpenTelemetry way, plus what spans must never carry.

The SDK's own environment configuration decides where spans go:
``OTEL_TRACES_EXPORTER`` (``otlp`` by default, ``zipkin``, ``console``,
``none``; several comma-separated) picks exporters by their registered entry
points, and each exporter reads its own ``OTEL_EXPORTER_*`` variables
(endpoint, headers, timeout, compression), the batch processor its
``OTEL_BSP_*`` and the resource ``OTEL_RESOURCE_ATTRIBUTES``. Nothing here
passes an argument that would override them, except batch defaults tuned for
our services, and those only where the variable is unset. ``OTEL_PROPAGATORS``
picks propagators; unset, W3C tracecontext and B3 (single and multi header)
are all extracted and injected, so a caller that speaks only B3 joins the
trace.

Every exporting processor sits behind :class:`SpanHygiene`: span names are
lowercased as Zipkin's v2 spec asks (the Redis, SQL and HTTP instrumentations
name spans ``EVALSHA``, ``SELECT``, ``POST``), and no secret (the bot token, a
DSN password) leaves the process in any field of a span.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from typing import Any

import yarl
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator, default_getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    Span,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from voxmesh.config import TelemetrySettings
from voxmesh.redaction import REDACTOR, Redactor, redact

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"


def _redact_url(url: yarl.URL) -> str:
    return redact(str(url.with_query(None)))


class SpanHygiene(SpanProcessor):
    """What every span passes before the processors that export it.

    At start, its name is lowercased and cleaned of secrets (Zipkin's v2
    spec wants lowercase names; the libraries' instrumentations use
    ``EVALSHA``, ``SELECT``, ``POST``). At end, every field that can carry
    text (attributes, event attributes such as ``exception.message`` and
    ``exception.stacktrace``, link attributes, the status description) is
    redacted: an instrumentation that records an exception whose message
    holds a Telegram URL would otherwise export the bot token.
    """

    def __init__(self, inner: Sequence[SpanProcessor], redactor: Redactor | None = None) -> None:
        self._inner = tuple(inner)
        self._redactor = redactor if redactor is not None else REDACTOR

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        name = span.name
        # Redacted before lowercasing: a configured secret matches in its own case.
        clean = (self._redactor.redact(name) if self._redactor.leaks(name) else name).lower()
        if clean != name:
            span.update_name(clean)
        for processor in self._inner:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        clean = self._redactor.span(span)
        for processor in self._inner:
            processor.on_end(clean)

    def shutdown(self) -> None:
        for processor in self._inner:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = [p.force_flush(timeout_millis) for p in self._inner]  # every one, no short cut
        return all(flushed)


class _NeverSampleHealth(Sampler):
    """Health checks are probes every few seconds: never worth a trace."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        attrs = attributes or {}
        if HEALTH_SERVICE in name or attrs.get("rpc.service") == HEALTH_SERVICE:
            return SamplingResult(Decision.DROP)
        if kind is SpanKind.CLIENT and (
            "db.system" in attrs
            or "db.system.name" in attrs
            or "/getUpdates" in str(attrs.get("url.full") or attrs.get("http.url") or "")
        ):
            # A client call outside any request is background polling (the
            # gateway's getUpdates, the notifier's idle queue checks): one
            # single-span trace per poll would bury the traces SREs look for.
            # Background work that matters opens its own root span first.
            if not trace.get_current_span(parent_context).get_span_context().is_valid:
                return SamplingResult(Decision.DROP)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NeverSampleHealth({self._inner.get_description()})"


def make_sampler(settings: TelemetrySettings) -> Sampler:
    ratio = TraceIdRatioBased(settings.sampler_arg)
    inner: Sampler = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": ratio,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(ratio),
    }[settings.sampler]
    return _NeverSampleHealth(inner)


# OTEL_TRACES_EXPORTER's names, as the SDK's auto-configuration maps them to the
# exporters' entry points ("otlp" with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).
_EXPORTER_ENTRY_POINTS = {
    "otlp": "otlp_proto_http",
    "zipkin": "zipkin_json",
    "console": "console",
}


def make_exporters(settings: TelemetrySettings) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names, each configured by its own variables."""
    out: list[SpanExporter] = []
    for name in settings.exporters:
        point = _EXPORTER_ENTRY_POINTS[name]
        found = entry_points(group="opentelemetry_traces_exporter", name=point)
        if not found:
            raise RuntimeError(
                f"OTEL_TRACES_EXPORTER={name}: the {point} exporter is not installed"
            )
        out.append(next(iter(found)).load()())
    return out


# Defaults for a busy service, each used only where its OTEL_BSP_* variable is unset:
# a batch leaves every 500 ms or at 2,048 spans (an HTTP POST costs the process about
# as much CPU as encoding 200 spans), and the queue holds about two seconds of spans
# at 1,500 RPC/s, so a collector that stalls for a moment costs none.
def batch_processor(
    exporter: SpanExporter, env: Mapping[str, str] | None = None
) -> BatchSpanProcessor:
    environ = os.environ if env is None else env

    def default(var: str, value: int) -> int | None:
        return None if environ.get(var) else value

    return BatchSpanProcessor(
        exporter,
        max_queue_size=default("OTEL_BSP_MAX_QUEUE_SIZE", 8192),
        schedule_delay_millis=default("OTEL_BSP_SCHEDULE_DELAY", 500),
        max_export_batch_size=default("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 2048),
    )


def make_resource(settings: TelemetrySettings) -> Resource:
    """The SDK's resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME); our name if it has none."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: settings.service_name}))
    return resource


def make_tracer_provider(
    settings: TelemetrySettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """A provider whose spans go to ``exporter``, or to those the environment names."""
    provider = TracerProvider(resource=make_resource(settings), sampler=make_sampler(settings))
    exporters = [exporter] if exporter is not None else make_exporters(settings)
    if exporters:
        provider.add_span_processor(SpanHygiene([batch_processor(e) for e in exporters]))
    return provider


class _Propagator(CompositePropagator):
    """W3C tracecontext, B3 multi and B3 single header, all injected; extraction done once.

    Extracting as the composite does (each format in turn, the last valid one winning)
    parses every incoming call three times, since our callers send all three formats,
    and the two B3 extractors are the same code (each reads the single header, then
    the multi). Trying B3 first and falling back to tracecontext gives the same context.
    """

    def __init__(self) -> None:
        self._w3c = TraceContextTextMapPropagator()
        self._b3 = B3MultiFormat()
        super().__init__([self._w3c, self._b3, B3SingleFormat()])

    def extract(
        self,
        carrier: Any,
        context: Context | None = None,
        getter: Getter[Any] = default_getter,
    ) -> Context:
        base = context if context is not None else Context()
        found = self._b3.extract(carrier, base, getter)
        if found is not base:
            return found
        return self._w3c.extract(carrier, base, getter)


def propagator(names: Sequence[str] = ()) -> TextMapPropagator:
    """The propagators OTEL_PROPAGATORS names (by their entry points), or ours by default."""
    if not names:
        return _Propagator()
    loaded: list[TextMapPropagator] = []
    for name in names:
        if name == "none":
            continue
        (point,) = entry_points(group="opentelemetry_propagator", name=name)
        loaded.append(point.load()())
    return CompositePropagator(loaded)


def setup(settings: TelemetrySettings) -> TracerProvider:
    """Install the process-wide provider, propagators and library instrumentation.

    Called once from a service's ``main()``; tests build providers with
    :func:`make_tracer_provider` instead and pass them explicitly.
    """
    REDACTOR.add(settings.secrets)
    provider = make_tracer_provider(settings)
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(propagator(settings.propagators))
    # The asyncpg wrapper alone costs billing ~15 % of its CPU; skip the
    # per-statement hooks entirely when no span could ever be recorded.
    if settings.exporters and settings.sampler not in {"always_off", "parentbased_always_off"}:
        instrument_libraries(provider)
    return provider


_instrumented: set[str] = set()


def instrument_libraries(provider: TracerProvider) -> None:
    """Trace every SQL statement, Redis command and outgoing HTTP call."""
    from opentelemetry.instrumentation.aiohttp_client import (
        AioHttpClientInstrumentor,
    )
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if "libs" in _instrumented:
        return
    _instrumented.add("libs")
    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider, url_filter=_redact_url)


def untraced() -> AbstractContextManager[None]:
    """For background loops (health pings, queue polls, lease renewals): no spans.

    Each poll would otherwise be a one-span trace, every second, burying the
    traces of real requests. Work a loop starts on behalf of a request
    re-attaches that request's context (see :func:`context_from`).
    """
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def context_from(carrier: Mapping[str, str]) -> Context:
    """The caller's trace context from a carrier, on a clean base (drops any suppression)."""
    return propagate.extract(carrier, context=Context())


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_trace_id() -> str:
    """The current trace id as 32 hex chars, or "" outside a sampled span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


__all__ = [
    "REDACTOR",
    "Link",
    "Redactor",
    "SpanHygiene",
    "current_trace_id",
    "make_tracer_provider",
    "propagator",
    "redact",
    "setup",
    "tracer",
]
