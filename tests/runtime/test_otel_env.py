"""OpenTelemetry's standard variables decide the exporter, its endpoint, headers, batching,
the resource and the propagators: each set here and its effect observed at the collector."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh import telemetry
from voxmesh.config import ConfigError, TelemetrySettings
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec
from voxmesh_dev.zipkin import ZipkinCollector

RESOURCE = "k8s.pod.name=billing-7d9f4-x2x9q,deployment.environment=staging"


@pytest.fixture
async def collector() -> AsyncIterator[ZipkinCollector]:
    c = ZipkinCollector()
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* from the machine running the tests; the global propagator restored after."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "VOXMESH_TRACES_EXPORTER":
            monkeypatch.delenv(name)
    before = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(before)


async def _spans(provider: TracerProvider, names: list[str]) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    await asyncio.to_thread(provider.force_flush)


def _provider() -> TracerProvider:
    return telemetry.make_tracer_provider(TelemetrySettings.from_env(os.environ, "billing"))


async def test_default_is_otlp_with_the_sdks_endpoint_headers_and_resource(
    collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{collector.base_url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-scope-orgid=voxmesh")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", RESOURCE)
    # Set, but not the chosen exporter: nothing may arrive there.
    monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", collector.endpoint)
    provider = _provider()
    try:
        await _spans(provider, ["Billing.Work"])
        await collector.wait_for_spans(lambda spans: len(spans) == 1, 10)
    finally:
        await asyncio.to_thread(provider.shutdown)
    assert [path for path, _ in collector.requests] == ["/v1/traces"]
    assert collector.requests[0][1]["x-scope-orgid"] == "voxmesh"
    (span,) = collector.spans
    assert span["name"] == "billing.work"  # lowercase, as Zipkin's spec asks
    assert span["localEndpoint"]["serviceName"] == "billing"
    assert span["tags"]["k8s.pod.name"] == "billing-7d9f4-x2x9q"
    assert span["tags"]["deployment.environment"] == "staging"


async def test_zipkin_exporter_is_one_variable_away_and_keeps_resource_tags(
    collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    monkeypatch.setenv("OTEL_EXPORTER_ZIPKIN_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)  # not chosen
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", RESOURCE)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-canary")
    provider = _provider()
    try:
        await _spans(provider, ["work"])
        await collector.wait_for_spans(lambda spans: len(spans) == 1, 10)
    finally:
        await asyncio.to_thread(provider.shutdown)
    assert [path for path, _ in collector.requests] == ["/api/v2/spans"]
    assert collector.violations == []
    (span,) = collector.spans
    assert span["localEndpoint"]["serviceName"] == "billing-canary"
    assert span["tags"]["k8s.pod.name"] == "billing-7d9f4-x2x9q"


async def test_batch_processor_follows_otel_bsp(
    collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)
    provider = _provider()
    try:
        await _spans(provider, ["a", "b", "c"])
        await collector.wait_for_spans(lambda spans: len(spans) == 3, 10)
    finally:
        await asyncio.to_thread(provider.shutdown)
    assert len(collector.requests) == 1  # our default: one batch

    collector.clear()
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
    provider = _provider()
    try:
        await _spans(provider, ["a", "b", "c"])
        await collector.wait_for_spans(lambda spans: len(spans) == 3, 10)
    finally:
        await asyncio.to_thread(provider.shutdown)
    assert len(collector.requests) == 3


class _Quote(billing_pb2_grpc.BillingServiceServicer):
    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        return billing_pb2.QuoteResponse(amount_credits=1)


async def _server_span_parents(
    collector: ZipkinCollector, provider: TracerProvider, b3_trace: str, w3c_trace: str
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    servicer = _Quote()
    server = GrpcServer(
        ServerSettings(service="billing"),
        [
            ServiceSpec(
                "billing.v1.BillingService",
                lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s),
            )
        ],
        domain="billing.voxmesh",
        tracer_provider=provider,
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            request = billing_pb2.QuoteRequest(duration_seconds=5)
            await stub.Quote(request, metadata=(("b3", f"{b3_trace}-a2fb4a1d1a96d312-1"),))
            traceparent = f"00-{w3c_trace}-b7ad6b7169203331-01"
            await stub.Quote(request, metadata=(("traceparent", traceparent),))
        await asyncio.to_thread(provider.force_flush)
        await collector.wait_for_spans(lambda spans: len(spans) == 2, 10)
    finally:
        await server.stop(0)
        await asyncio.to_thread(provider.shutdown)
    return collector.trace(b3_trace), collector.trace(w3c_trace)


async def test_otel_propagators_chooses_what_is_extracted(
    collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    b3_trace, w3c_trace = "463ac35c9f6413ad48485a3953bb6124", "0af7651916cd43dd8448eb211c80319c"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)
    monkeypatch.setenv("OTEL_PROPAGATORS", "tracecontext")
    settings = TelemetrySettings.from_env(os.environ, "billing")
    assert settings.propagators == ("tracecontext",)
    propagate.set_global_textmap(telemetry.propagator(settings.propagators))
    b3, w3c = await _server_span_parents(collector, _provider(), b3_trace, w3c_trace)
    assert b3 == []  # a B3-only caller starts a new trace
    assert w3c[0]["parentId"] == "b7ad6b7169203331"

    # Unset: W3C and B3 both join.
    collector.clear()
    monkeypatch.delenv("OTEL_PROPAGATORS")
    settings = TelemetrySettings.from_env(os.environ, "billing")
    propagate.set_global_textmap(telemetry.propagator(settings.propagators))
    b3, w3c = await _server_span_parents(collector, _provider(), b3_trace, w3c_trace)
    assert b3[0]["parentId"] == "a2fb4a1d1a96d312"
    assert w3c[0]["parentId"] == "b7ad6b7169203331"


def test_default_propagators_inject_w3c_and_both_b3_forms() -> None:
    carrier: dict[str, str] = {}
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("x"):
        telemetry.propagator().inject(carrier)
    assert {"traceparent", "b3", "x-b3-traceid", "x-b3-spanid"} <= set(carrier)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER='jaeger'"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"),
        ({"OTEL_PROPAGATORS": "xray"}, "OTEL_PROPAGATORS='xray'"),
    ],
)
def test_bad_values_stop_the_process_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TelemetrySettings.from_env(env, "billing")


def test_exporter_choice() -> None:
    assert TelemetrySettings.from_env({}, "billing").exporters == ("otlp",)
    both = TelemetrySettings.from_env({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "billing")
    assert both.exporters == ("otlp", "zipkin")
    assert TelemetrySettings.from_env({"OTEL_TRACES_EXPORTER": "none"}, "b").exporters == ()
    assert TelemetrySettings.from_env({"OTEL_SDK_DISABLED": "true"}, "b").exporters == ()
    # The old name still works where the standard one is unset.
    old = TelemetrySettings.from_env({"VOXMESH_TRACES_EXPORTER": "none"}, "b")
    assert old.exporters == ()
