"""The worst case for tracing: unary RPCs that do no work, in this process.

Both arms run the same server (the runtime's full interceptor chain) and the
same closed-loop clients; only the tracer provider differs. With tracing on,
every server and client span goes through the exporter the environment names
(OTLP by default) to a real collector in another process, and the round fails
if any span did not reach it (a dropped span would make tracing look cheaper
than it is).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh import telemetry
from voxmesh.channels import dial
from voxmesh.config import TelemetrySettings
from voxmesh.interceptors import describe
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec


class Quote(billing_pb2_grpc.BillingServiceServicer):
    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        return billing_pb2.QuoteResponse(amount_credits=request.duration_seconds)


class Counted(SpanExporter):
    """The real exporter, counting the spans the collector accepted."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.accepted = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.accepted += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


async def arm(provider: TracerProvider, seconds: float, concurrency: int) -> tuple[float, int]:
    """RPCs per second, and the number of timed RPCs."""
    servicer = Quote()
    server = GrpcServer(
        ServerSettings(service="bench"),
        [
            ServiceSpec(
                "billing.v1.BillingService",
                lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s),
            )
        ],
        domain="bench",
        tracer_provider=provider,
    )
    await server.start()
    done = 0
    async with dial(server.address, tracer_provider=provider) as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=1), timeout=5)  # warm up
        end = time.monotonic() + seconds
        tracer = provider.get_tracer("bench")

        async def client() -> None:
            nonlocal done
            while time.monotonic() < end:
                # A root span per call, as the gateway opens one per update.
                with tracer.start_as_current_span("bench.request"):
                    await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=5), timeout=5)
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    await server.stop(0)
    await asyncio.to_thread(provider.force_flush)
    await asyncio.to_thread(provider.shutdown)
    return done / elapsed, done


class _Null(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk_span_cpu(n: int = 20_000) -> float:
    """CPU seconds one recorded span costs the OpenTelemetry SDK alone: start
    and end under a parent, with a client span's attributes, through the batch
    processor (to an exporter that does nothing)."""
    settings = TelemetrySettings(service_name="bench", exporter="none", sampler="always_on")
    provider = telemetry.make_tracer_provider(settings, exporter=_Null())
    tracer = provider.get_tracer("bench")
    _, _, attributes = describe("/billing.v1.BillingService/Quote")
    with tracer.start_as_current_span("bench.request"):
        start = time.process_time()
        for _ in range(n):
            tracer.start_span("bench.span", kind=SpanKind.CLIENT, attributes=attributes).end()
        provider.force_flush()
        used = time.process_time() - start
    provider.shutdown()
    return used / n


def noop_round(seconds: float, concurrency: int) -> tuple[float, float]:
    """One off arm then one on arm: their RPC/s."""
    off = telemetry.make_tracer_provider(
        TelemetrySettings(service_name="bench", exporter="none", sampler="always_off")
    )
    off_rate = asyncio.run(arm(off, seconds, concurrency))[0]
    settings = TelemetrySettings(service_name="bench", sampler="always_on")
    (exporter,) = telemetry.make_exporters(settings)  # OTEL_* from the environment
    counted = Counted(exporter)
    on = telemetry.make_tracer_provider(settings, exporter=counted)
    on_rate, calls = asyncio.run(arm(on, seconds, concurrency))
    # Three spans a timed call (the request's root, the client span, the server
    # span); the warm-up call has no root.
    expected = 3 * calls + 2
    if counted.accepted != expected:
        raise SystemExit(
            f"the collector got {counted.accepted} spans of {expected}: "
            "spans were dropped, so this round measured less than full tracing"
        )
    return off_rate, on_rate


def sdk_ceiling(off_rpc_per_second: float) -> str:
    """What the SDK alone costs bounds the ratio whatever the exporter and
    propagation cost: the arms are CPU-bound on one core."""
    span = sdk_span_cpu()
    rpc = 1 / off_rpc_per_second
    return (
        f"OpenTelemetry SDK alone: {span * 1e6:.1f} us CPU a span (start + end, null exporter);"
        f" 3 spans = {3 * span / rpc:.0%} of an untraced RPC's {rpc * 1e6:.0f} us,"
        f" so on/off <= {rpc / (rpc + 3 * span):.2f} before exporting or propagating anything"
    )
