"""Tracing set up once per process: provider, sampler, exporter, propagators.

The exporter is one switch (``VOXMESH_TRACES_EXPORTER``): Zipkin JSON v2 by
default, OTLP as the alternative, since OpenTelemetry has deprecated its
Zipkin exporters and Zipkin also ingests OTLP. Propagation extracts and
injects W3C tracecontext and B3 (single and multi header), so a caller that
speaks only B3 joins the trace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import yarl
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
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
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from voxmesh.config import TelemetrySettings

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
_TOKEN_RE = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """Remove a Telegram bot token from a URL or message."""
    return _TOKEN_RE.sub("/bot<redacted>", text)


def _redact_url(url: yarl.URL) -> str:
    return redact(str(url.with_query(None)))


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
        if (
            kind == SpanKind.CLIENT
            and not trace.get_current_span(parent_context).get_span_context().is_valid
        ):
            # A client call outside any request is background polling (the
            # gateway's getUpdates, the notifier's idle queue checks): one
            # single-span trace per poll would bury the traces SREs look for.
            # Background work that matters opens its own root span first.
            url = str(attrs.get("url.full") or attrs.get("http.url") or "")
            if "db.system" in attrs or "db.system.name" in attrs or "/getUpdates" in url:
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


class _RpcSpanNames(SpanProcessor):
    """Zipkin-style names: ``billing.v1.billingservice/reserve``, lowercase.

    The gRPC instrumentation names spans after the full method
    ("/billing.v1.BillingService/Reserve"); Zipkin indexes names lowercase and
    low-cardinality names are what its UI filters on.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        name = span.name
        if name.startswith("/"):
            span.update_name(name[1:].lower())

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _remote_service(attrs: Mapping[str, Any]) -> str | None:
    if "rpc.service" in attrs:
        # "billing.v1.BillingService" -> "billing": the peer's Zipkin service name.
        return str(attrs["rpc.service"]).split(".", 1)[0].lower()
    if "db.system" in attrs or "db.system.name" in attrs:
        return str(attrs.get("db.system.name") or attrs["db.system"]).lower()
    host = attrs.get("server.address") or attrs.get("net.peer.name")
    if host:
        return "telegram-bot-api" if "telegram" in str(host) else str(host).lower()
    return None


class ZipkinV2Encoder:
    """Zipkin's JSON v2 encoder, made to match the spec on two points.

    The OpenTelemetry encoder writes ``"kind": null`` for local spans (the
    spec's enum has no null: omit it) and never writes ``remoteEndpoint``,
    which Zipkin's dependency graph is built from; we derive it from the
    client span's semantic attributes.
    """

    @staticmethod
    def install(exporter: Any) -> None:
        encoder = exporter.encoder
        original = encoder._encode_span
        extract = encoder._extract_tags_from_dict

        def tags(span: Any) -> dict[str, str]:
            # The resource (sdk version, instance id) and scope tags the stock
            # encoder copies onto every span are the same for the whole
            # process and double the bytes exported; localEndpoint already
            # names the service. Keep the span's own attributes and status.
            out: dict[str, str] = extract(span.attributes)
            if span.status.status_code is StatusCode.ERROR:
                out["otel.status_code"] = "ERROR"
                out["error"] = span.status.description or "error"
            return out

        encoder._extract_tags_from_span = tags

        def encode(span: Any, local_endpoint: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = original(span, local_endpoint)
            if out.get("kind") is None:
                out.pop("kind", None)
            if out.get("kind") in {"CLIENT", "PRODUCER"} and "remoteEndpoint" not in out:
                attrs = span.attributes or {}
                remote: dict[str, Any] = {}
                name = _remote_service(attrs)
                if name:
                    remote["serviceName"] = name
                port = attrs.get("server.port") or attrs.get("net.peer.port")
                if isinstance(port, int) and 0 < port < 65536:
                    remote["port"] = port
                if remote:
                    out["remoteEndpoint"] = remote
            return out

        encoder._encode_span = encode


def make_exporter(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.exporter == "none":
        return None
    if settings.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError as exc:  # optional dependency
            raise RuntimeError(
                "VOXMESH_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-grpc"
            ) from exc
        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)  # type: ignore[no-any-return]
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    exporter = ZipkinExporter(endpoint=settings.zipkin_endpoint, timeout=5)
    ZipkinV2Encoder.install(exporter)
    return exporter


def make_tracer_provider(
    settings: TelemetrySettings, exporter: SpanExporter | None = None
) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        sampler=make_sampler(settings),
    )
    provider.add_span_processor(_RpcSpanNames())
    exporter = exporter if exporter is not None else make_exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    return provider


def propagator() -> CompositePropagator:
    return CompositePropagator([TraceContextTextMapPropagator(), B3MultiFormat(), B3SingleFormat()])


def setup(settings: TelemetrySettings) -> TracerProvider:
    """Install the process-wide provider, propagators and library instrumentation.

    Called once from a service's ``main()``; tests build providers with
    :func:`make_tracer_provider` instead and pass them explicitly.
    """
    provider = make_tracer_provider(settings)
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(propagator())
    # The asyncpg wrapper alone costs billing ~15 % of its CPU; skip the
    # per-statement hooks entirely when no span could ever be recorded.
    if settings.exporter != "none" and settings.sampler not in {
        "always_off",
        "parentbased_always_off",
    }:
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


def not_health(details: Any) -> bool:
    """Filter for the gRPC instrumentation: skip the health service."""
    method = getattr(details, "method", "")
    if isinstance(method, bytes):
        method = method.decode()
    return HEALTH_SERVICE not in str(method)


def grpc_filter() -> Callable[[Any], bool]:
    return not_health


__all__ = [
    "Link",
    "current_trace_id",
    "make_tracer_provider",
    "propagator",
    "redact",
    "setup",
    "tracer",
]
