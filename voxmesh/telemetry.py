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
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
import yarl
from opentelemetry import propagate, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, default_getter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
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


def _remote_service(attrs: Mapping[str, Any]) -> str | None:
    if "peer.service" in attrs:
        return str(attrs["peer.service"])
    if "rpc.service" in attrs:
        # "billing.v1.BillingService" -> "billing": the peer's Zipkin service name.
        return str(attrs["rpc.service"]).split(".", 1)[0].lower()
    if "db.system" in attrs or "db.system.name" in attrs:
        return str(attrs.get("db.system.name") or attrs["db.system"]).lower()
    host = attrs.get("server.address") or attrs.get("net.peer.name")
    if host:
        return "telegram-bot-api" if "telegram" in str(host) else str(host).lower()
    return None


# Zipkin's kinds by SpanKind's value: hashing the enum itself runs Python code per span.
_ZIPKIN_KINDS = {
    SpanKind.SERVER.value: "SERVER",
    SpanKind.CLIENT.value: "CLIENT",
    SpanKind.PRODUCER.value: "PRODUCER",
    SpanKind.CONSUMER.value: "CONSUMER",
}


class ZipkinV2Encoder:
    """Zipkin's JSON v2 encoding of finished spans, written for the export thread's CPU.

    It replaces the OpenTelemetry encoder, which was about 40 % of what tracing cost a
    process (`python -m bench.tracing`): tags rebuilt through several dict copies,
    resource and scope tags copied onto every span, every field read through a property
    (attributes through a read-only proxy), and the stdlib json encoder. This one reads
    ReadableSpan's fields directly (opentelemetry-sdk is pinned; a renamed field fails
    the tracing tests) and encodes with orjson, for a third of the CPU. It also matches
    the spec where the stock one does not:

    - no ``"kind": null`` on local spans (the spec's enum has no null: the field is omitted);
    - ``remoteEndpoint`` on client and producer spans, which Zipkin's dependency graph is
      built from, derived from the span's semantic attributes;
    - ``duration`` at least 1 µs ("durations of less than one are rounded up"), where a
      zero would make Zipkin reject the whole batch;
    - no ``"debug": true`` on every sampled span: debug asks Zipkin to store a span whatever
      its sampling policy, which is B3's debug flag, not OpenTelemetry's sampled flag;
    - no resource (sdk version, instance id) or scope tags: they are the same for the
      whole process, doubled the bytes exported, and localEndpoint already names the service.

    Tag values are strings, cut to ``max_tag_value_length`` characters when it is set, as
    the stock encoder does; sequences and span events (exceptions) go through the stock
    encoder's rules, which are rare enough not to matter.
    """

    def __init__(self, max_tag_value_length: int | None = None) -> None:
        from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder

        self._max = max_tag_value_length or None
        self._stock = JsonV2Encoder(max_tag_value_length or 0)

    @staticmethod
    def content_type() -> str:
        return "application/json"

    @staticmethod
    def install(exporter: Any) -> None:
        exporter.encoder = ZipkinV2Encoder(exporter.encoder.max_tag_value_length)

    def serialize(self, spans: Sequence[ReadableSpan], local_endpoint: Any) -> bytes:
        local: dict[str, Any] = {"serviceName": local_endpoint.service_name}
        if local_endpoint.ipv4 is not None:
            local["ipv4"] = str(local_endpoint.ipv4)
        if local_endpoint.ipv6 is not None:
            local["ipv6"] = str(local_endpoint.ipv6)
        if local_endpoint.port is not None:
            local["port"] = local_endpoint.port
        encode = self.encode_span
        return orjson.dumps([encode(span, local) for span in spans])

    def encode_span(self, span: ReadableSpan, local: dict[str, Any]) -> dict[str, Any]:
        ctx = span._context
        assert ctx is not None  # the SDK always sets it
        start = span._start_time or 0
        end = span._end_time or start
        out: dict[str, Any] = {
            "traceId": format(ctx.trace_id, "032x"),
            "id": format(ctx.span_id, "016x"),
            "name": span._name,
            "timestamp": (start + 500) // 1000,
            "duration": max((end - start + 500) // 1000, 1),
            "localEndpoint": local,
        }
        parent = span._parent
        if parent is not None:
            out["parentId"] = format(parent.span_id, "016x")
        raw = span._attributes
        # An ended span's attributes are frozen: its plain dict can be read as is.
        attrs: Mapping[str, Any] = raw._dict if type(raw) is BoundedAttributes else (raw or {})
        kind = _ZIPKIN_KINDS.get(span._kind._value_)
        if kind is not None:
            out["kind"] = kind
            if kind in {"CLIENT", "PRODUCER"}:
                remote = _remote_endpoint(attrs)
                if remote:
                    out["remoteEndpoint"] = remote
        tags = self._tags(attrs) if attrs else {}
        status = span._status
        if status.status_code is StatusCode.ERROR:
            tags["otel.status_code"] = "ERROR"
            tags["error"] = (status.description or "error")[: self._max]
        if tags:
            out["tags"] = tags
        if span._events:
            out["annotations"] = self._stock._extract_annotations_from_events(list(span._events))
        return out

    def _tags(self, attrs: Mapping[str, Any]) -> dict[str, str]:
        cut = self._max
        tags: dict[str, str] = {}
        for key, value in attrs.items():
            kind = type(value)
            if kind is str:
                text: str | None = value
            elif kind is bool:
                text = "true" if value else "false"
            elif kind is int or kind is float:
                text = str(value)
            else:
                text = self._stock._extract_tags_from_dict({key: value}).get(key)
            if text is None:
                continue
            tags[key] = text if cut is None or len(text) <= cut else text[:cut]
        return tags


def _remote_endpoint(attrs: Mapping[str, Any]) -> dict[str, Any]:
    remote: dict[str, Any] = {}
    name = _remote_service(attrs)
    if name:
        remote["serviceName"] = name
    port = attrs.get("server.port") or attrs.get("net.peer.port")
    if isinstance(port, int) and 0 < port < 65536:
        remote["port"] = port
    return remote


def make_exporter(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.exporter == "none":
        return None
    if settings.exporter == "otlp":
        # OTLP/HTTP with protobuf bodies: what Zipkin ingests (zipkin-otel) besides
        # every OpenTelemetry collector. OTEL_EXPORTER_OTLP_ENDPOINT is the base URL;
        # the signal's path is appended, as the OTLP exporter spec says.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint, timeout=5)
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
    exporter = exporter if exporter is not None else make_exporter(settings)
    if exporter is not None:
        # A batch leaves every 500 ms or at 2,048 spans, whichever comes first: an
        # HTTP POST (requests) costs the process about as much CPU as exporting 200
        # spans, a quarter of the export thread with the SDK's 512-span batches.
        # The queue holds about two seconds of a busy service's spans (three per RPC
        # at 1,500 RPC/s), so a collector that stalls for a moment costs no spans;
        # the SDK's 2,048 dropped spans after half a second.
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                schedule_delay_millis=500,
                max_export_batch_size=2048,
                max_queue_size=8192,
            )
        )
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


def propagator() -> CompositePropagator:
    return _Propagator()


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


__all__ = [
    "Link",
    "current_trace_id",
    "make_tracer_provider",
    "propagator",
    "redact",
    "setup",
    "tracer",
]
