"""The Zipkin JSON encoder: spec-valid where OpenTelemetry's is not, the same tags otherwise."""

from __future__ import annotations

import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from voxmesh.emulator.zipkin import ZipkinCollector
from voxmesh.telemetry import ZipkinV2Encoder


class _Node:
    service_name = "gateway"
    ipv4 = None
    ipv6 = None
    port = None


def test_encoded_spans_pass_the_spec_and_keep_their_tags() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("telegram.update/message") as root:
        root.set_attribute("telegram.chat_type", "private")
        root.set_attribute("media.seconds", 11.5)
        root.set_attribute("telegram.forwarded", False)
        root.set_attribute("telegram.entities", ("bot_command", "mention"))
        client = tracer.start_span(
            "billing.v1.billingservice/reserve",
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "peer.service": "billing", "server.port": 50051},
        )
        client.set_status(Status(StatusCode.ERROR, "UNAVAILABLE: billing is down"))
        client.end()
        # A span that starts and ends on the same nanosecond: Zipkin needs duration >= 1.
        instant = tracer.start_span("cache.hit", start_time=1_700_000_000_000_000_000)
        instant.end(end_time=1_700_000_000_000_000_000)
    provider.shutdown()

    body = json.loads(ZipkinV2Encoder().serialize(memory.get_finished_spans(), _Node()))
    assert ZipkinCollector().ingest(body) == []
    by_name = {span["name"]: span for span in body}
    assert all("debug" not in span for span in body)  # sampled is not B3's debug flag

    top = by_name["telegram.update/message"]
    assert "kind" not in top and "parentId" not in top
    assert top["traceId"] == format(root.get_span_context().trace_id, "032x")
    assert top["tags"] == {
        "telegram.chat_type": "private",
        "media.seconds": "11.5",
        "telegram.forwarded": "false",
        "telegram.entities": '["bot_command","mention"]',
    }
    failed = by_name["billing.v1.billingservice/reserve"]
    assert failed["kind"] == "CLIENT" and failed["parentId"] == top["id"]
    assert failed["remoteEndpoint"] == {"serviceName": "billing", "port": 50051}
    assert failed["tags"]["error"] == "UNAVAILABLE: billing is down"
    assert failed["tags"]["otel.status_code"] == "ERROR"
    assert by_name["cache.hit"]["duration"] == 1
    assert all(span["localEndpoint"] == {"serviceName": "gateway"} for span in body)
