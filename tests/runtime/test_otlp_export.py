"""OTLP, the default exporter: a service's spans reach the collector over OTLP/HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from opentelemetry import propagate

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh import telemetry
from voxmesh.channels import dial
from voxmesh.config import TelemetrySettings
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec
from voxmesh_dev.zipkin import ZipkinCollector

QUOTE = "billing.v1.billingservice/quote"


class Quote(billing_pb2_grpc.BillingServiceServicer):
    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        if request.duration_seconds == 13:
            raise RuntimeError("the quote table is gone")
        return billing_pb2.QuoteResponse(amount_credits=request.duration_seconds)


@pytest.fixture
async def collector() -> AsyncIterator[ZipkinCollector]:
    c = ZipkinCollector()
    await c.start()
    yield c
    await c.stop()


async def test_otlp_exports_client_and_server_spans(
    collector: ZipkinCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No OTEL_TRACES_EXPORTER: OTLP, the spec's default, read by the SDK from the environment.
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base_url)
    settings = TelemetrySettings.from_env({}, "billing")
    provider = telemetry.make_tracer_provider(settings)
    propagate.set_global_textmap(telemetry.propagator())
    servicer = Quote()
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
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("gateway.work") as root:
            async with dial(server.address, tracer_provider=provider) as ch:
                stub = billing_pb2_grpc.BillingServiceStub(ch)
                await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=5), timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await stub.Quote(billing_pb2.QuoteRequest(duration_seconds=13), timeout=5)
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        await asyncio.to_thread(provider.force_flush)
        await collector.wait_for_spans(lambda spans: len(spans) >= 5, 10)
    finally:
        await server.stop(0)
        await asyncio.to_thread(provider.shutdown)

    assert collector.violations == []
    trace_id = format(root.get_span_context().trace_id, "032x")
    spans = collector.trace(trace_id)
    assert len(spans) == 5 == len(collector.spans)
    assert {s["localEndpoint"]["serviceName"] for s in spans} == {"billing"}
    assert sorted(s["name"] for s in spans) == [*[QUOTE] * 4, "gateway.work"]
    (top,) = [s for s in spans if s["name"] == "gateway.work"]
    assert top["id"] == format(root.get_span_context().span_id, "016x")
    assert "parentId" not in top and "kind" not in top

    clients = sorted((s for s in spans if s.get("kind") == "CLIENT"), key=lambda s: s["timestamp"])
    servers = {s["parentId"]: s for s in spans if s.get("kind") == "SERVER"}
    assert len(clients) == 2 and len(servers) == 2
    for client in clients:
        assert client["parentId"] == top["id"]
        assert client["remoteEndpoint"]["serviceName"] == "billing"
        assert client["tags"]["rpc.system"] == "grpc"
        assert client["tags"]["rpc.service"] == "billing.v1.BillingService"
        assert client["tags"]["rpc.method"] == "Quote"
        assert client["tags"]["otel.scope.name"] == "voxmesh.grpc"
        # Each server span is the child of the client span that called it.
        assert servers[client["id"]]["tags"]["rpc.method"] == "Quote"

    ok, bad = clients
    assert ok["tags"]["rpc.grpc.status_code"] == "0"
    assert "error" not in ok["tags"] and "error" not in servers[ok["id"]]["tags"]
    assert bad["tags"]["rpc.grpc.status_code"] == "13"
    assert bad["tags"]["otel.status_code"] == "ERROR"
    assert bad["tags"]["error"].startswith("INTERNAL")
    failed_server = servers[bad["id"]]
    assert failed_server["tags"]["rpc.grpc.status_code"] == "13"
    assert "error" in failed_server["tags"]
    # The unexpected exception rides along as an annotation (an OTLP span event).
    (annotation,) = failed_server["annotations"]
    assert annotation["value"].startswith('"exception":')
    assert "the quote table is gone" in annotation["value"]


async def test_otlp_endpoint_rejects_what_it_cannot_read(collector: ZipkinCollector) -> None:
    url = f"{collector.base_url}/v1/traces"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"resourceSpans": []}) as resp:
            assert resp.status == 415  # OTLP/JSON is not emulated
        async with http.post(
            url, data=b"\xff\x00garbage", headers={"Content-Type": "application/x-protobuf"}
        ) as resp:
            assert resp.status == 400
    assert collector.spans == []
    assert any("malformed OTLP" in v for v in collector.violations)
