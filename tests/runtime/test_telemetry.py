"""Tracing: Zipkin-correct spans (over OTLP, the default exporter), B3 and W3C propagation,
health never sampled, no tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh import telemetry
from voxmesh.channels import dial
from voxmesh.config import TelemetrySettings
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec
from voxmesh_dev.zipkin import ZipkinCollector


class QuoteOnly(billing_pb2_grpc.BillingServiceServicer):
    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        return billing_pb2.QuoteResponse(amount_credits=1)


@pytest.fixture
async def collector() -> AsyncIterator[ZipkinCollector]:
    c = ZipkinCollector()
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
def provider(collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch) -> TracerProvider:
    # The OTLP exporter reads its endpoint from the environment, as the SDK documents.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)
    return telemetry.make_tracer_provider(TelemetrySettings(service_name="billing"))


async def _serve(provider: TracerProvider) -> GrpcServer:
    servicer = QuoteOnly()
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
    await server.set_serving(True)
    return server


async def test_b3_only_caller_joins_its_trace_and_spans_are_zipkin_correct(
    collector: ZipkinCollector, provider: TracerProvider
) -> None:
    propagate.set_global_textmap(telemetry.propagator())
    server = await _serve(provider)
    trace_id = "463ac35c9f6413ad48485a3953bb6124"
    try:
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            # A caller that speaks only B3 (single header), no W3C traceparent.
            await stub.Quote(
                billing_pb2.QuoteRequest(duration_seconds=5),
                metadata=(("b3", f"{trace_id}-a2fb4a1d1a96d312-1"),),
                timeout=5,
            )
            await stub.Quote(
                billing_pb2.QuoteRequest(duration_seconds=5),
                metadata=(
                    ("x-b3-traceid", "0af7651916cd43dd8448eb211c80319c"),
                    ("x-b3-spanid", "b7ad6b7169203331"),
                    ("x-b3-sampled", "1"),
                ),
                timeout=5,
            )
            await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        await asyncio.to_thread(provider.force_flush)
        await collector.wait_for_spans(lambda spans: len(spans) >= 2, 10)
        await asyncio.sleep(0.3)
    finally:
        await server.stop(0)
        await asyncio.to_thread(provider.shutdown)
    spans = collector.spans
    assert collector.violations == []
    single = collector.trace(trace_id)
    assert len(single) == 1
    span = single[0]
    assert span["parentId"] == "a2fb4a1d1a96d312"
    assert span["name"] == "billing.v1.billingservice/quote"
    assert span["kind"] == "SERVER"
    assert span["localEndpoint"]["serviceName"] == "billing"
    assert span["tags"]["rpc.system"] == "grpc"
    assert span["tags"]["rpc.method"] == "Quote"
    assert collector.trace("0af7651916cd43dd8448eb211c80319c")[0]["parentId"] == "b7ad6b7169203331"
    # Health checks are never sampled.
    assert not [s for s in spans if "health" in s["name"]]


async def test_client_spans_have_remote_endpoint_and_local_spans_omit_kind(
    collector: ZipkinCollector, provider: TracerProvider
) -> None:
    server = await _serve(provider)
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("local-work"):
            async with dial(server.address, tracer_provider=provider) as ch:
                stub = billing_pb2_grpc.BillingServiceStub(ch)
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=5), timeout=5)
        await asyncio.to_thread(provider.force_flush)
        await collector.wait_for_spans(lambda spans: len(spans) >= 3, 10)
    finally:
        await server.stop(0)
        await asyncio.to_thread(provider.shutdown)
    assert collector.violations == []
    local = next(s for s in collector.spans if s["name"] == "local-work")
    assert "kind" not in local
    client = next(s for s in collector.spans if s.get("kind") == "CLIENT")
    assert client["remoteEndpoint"]["serviceName"] == "billing"
    assert client["parentId"] == local["id"]
    server_span = next(s for s in collector.spans if s.get("kind") == "SERVER")
    assert server_span["parentId"] == client["id"]


def test_redact_removes_bot_token_from_urls() -> None:
    url = "https://api.telegram.org/bot123456:AAH-secret_Token/sendMessage"
    assert "secret" not in telemetry.redact(url)
    assert telemetry.redact(url).endswith("/bot<redacted>/sendMessage")
    assert (
        telemetry.redact("/file/bot1:abc/voice/file_1.oga")
        == "/file/bot<redacted>/voice/file_1.oga"
    )
