"""Trace context on every call: a client span, W3C ``traceparent`` and B3 headers.

Only the OpenTelemetry API is used: with no SDK configured in the calling
process the span records nothing, but a context the caller already carries
(an incoming request's, say) is still passed on, so the transcriber's spans
join the caller's trace. Both formats are injected because the mesh extracts
either (some callers' tracers speak only B3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()
_B3 = B3MultiFormat()
_tracer = trace.get_tracer("voxmesh_client")

Metadata = tuple[tuple[str, str], ...]


@contextmanager
def client_span(full_method: str) -> Iterator[tuple[Span, Metadata]]:
    """A CLIENT span for ``/pkg.Service/Method`` and the metadata that carries it."""
    service, _, method = full_method.strip("/").partition("/")
    span = _tracer.start_span(
        full_method.strip("/").lower(),
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )
    ctx = otel_context.get_current()
    if span.get_span_context().is_valid:
        ctx = trace.set_span_in_context(span, ctx)
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=ctx)
    _B3.inject(carrier, context=ctx)
    try:
        yield span, tuple(carrier.items())
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def trace_id(metadata: Metadata) -> str:
    """The trace id the call was sent with, or "" when the caller has no trace."""
    for key, value in metadata:
        if key == "traceparent":
            return value.split("-")[1]
    return ""
