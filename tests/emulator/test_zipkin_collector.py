"""The Zipkin collector: spec validation over real HTTP, the read API, a real OTel exporter."""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import signal
import sys
import time
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from voxmesh_dev.zipkin import ZipkinCollector


def valid_span(**overrides: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": "5af7183fb1d4cf5f5af7183fb1d4cf5f",
        "id": "352bff9a74ca9ad2",
        "parentId": "6b221d5bc9e6496c",
        "name": "billing.v1.billingservice/reserve",
        "timestamp": int(time.time() * 1_000_000),
        "duration": 1431,
        "kind": "SERVER",
        "localEndpoint": {"serviceName": "billing", "ipv4": "192.168.99.1", "port": 50051},
        "remoteEndpoint": {"serviceName": "gateway", "ipv4": "172.19.0.2", "port": 58648},
        "annotations": [{"timestamp": int(time.time() * 1_000_000), "value": "retry"}],
        "tags": {"rpc.system": "grpc", "rpc.grpc.status_code": "0"},
    }
    span.update(overrides)
    return span


async def post(collector: ZipkinCollector, body: Any, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        data = kwargs.pop("data", None)
        if data is None:
            data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
        async with http.post(collector.endpoint, data=data, headers=headers) as resp:
            return resp.status, await resp.text()


async def get(collector: ZipkinCollector, path: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{collector.base_url}{path}", params=params) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


async def test_valid_span_is_accepted(collector: ZipkinCollector) -> None:
    assert collector.endpoint == f"{collector.base_url}/api/v2/spans"
    status, _ = await post(collector, [valid_span()])
    assert status == 202
    assert collector.violations == []
    assert len(collector.spans) == 1
    assert list(collector.traces()) == ["5af7183fb1d4cf5f5af7183fb1d4cf5f"]


def _without(key: str) -> dict[str, Any]:
    span = valid_span()
    del span[key]
    return span


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        (valid_span(traceId="5AF7183FB1D4CF5F"), "traceId: '5AF7183FB1D4CF5F' is not 16 or 32"),
        (valid_span(traceId="5af7183fb1d4cf5f5"), "traceId: '5af7183fb1d4cf5f5' is not 16 or 32"),
        (valid_span(traceId="zz5af7183fb1d4cf5f"), "is not 16 or 32 lower-hex"),
        (valid_span(traceId="0" * 32), "traceId: all zeros"),
        (valid_span(id="352bff9a74ca9ad"), "is too short"),
        (_without("id"), "'id' is a required property"),
        (_without("traceId"), "'traceId' is a required property"),
        (_without("localEndpoint"), "localEndpoint: missing"),
        (valid_span(tags={"http.status_code": 200}), "span[1].tags.http.status_code: 200 is not"),
        (valid_span(kind="INTERNAL"), "'INTERNAL' is not one of"),
        (valid_span(traceId=None), "span[1].traceId: None is not of type 'string'"),
        (valid_span(timestamp=1.7e15), "is not an integer count of microseconds"),
        (valid_span(timestamp=int(time.time() * 1000)), "does not look like epoch microseconds"),
        (valid_span(duration=0), "span[1].duration: 0 is less than the minimum of 1"),
        (valid_span(localEndpoint={"serviceName": "x", "ipv4": "300.1.1.1"}), "'ipv4'"),
        (valid_span(localEndpoint={"serviceName": "x", "port": 0}), "never zero"),
    ],
)
async def test_broken_spans_are_rejected_with_reasons(
    collector: ZipkinCollector, span: dict[str, Any], reason: str
) -> None:
    status, text = await post(collector, [valid_span(id="aaaaaaaaaaaaaaaa"), span])
    assert status == 400
    assert reason in text
    assert any(reason in v for v in collector.violations), collector.violations
    assert all(v.startswith("span[1]") for v in collector.violations), collector.violations
    assert collector.spans == []  # a rejected batch stores nothing


async def test_null_optional_fields_count_as_absent(collector: ZipkinCollector) -> None:
    """Zipkin's decoder skips nulls; OpenTelemetry sends "kind": null for internal spans."""
    status, _ = await post(collector, [valid_span(kind=None, parentId=None)])
    assert status == 202
    assert "kind" not in collector.spans[0] and "parentId" not in collector.spans[0]


async def test_body_must_be_a_json_list(collector: ZipkinCollector) -> None:
    assert (await post(collector, valid_span()))[0] == 400
    assert (await post(collector, None, data=b"{not json"))[0] == 400
    assert len(collector.violations) == 2
    collector.clear()
    assert collector.violations == []


async def test_gzip_bodies(collector: ZipkinCollector) -> None:
    body = gzip.compress(json.dumps([valid_span()]).encode())
    status, _ = await post(collector, None, data=body, headers={"Content-Encoding": "gzip"})
    assert status == 202
    status, _ = await post(collector, None, data=gzip.compress(b"[]"))  # gzip, unlabelled
    assert status == 202
    assert len(collector.spans) == 1 and collector.violations == []


async def test_read_api(collector: ZipkinCollector) -> None:
    other = valid_span(
        traceId="1111111111111111",
        id="2222222222222222",
        name="notifier.v1.notifierservice/send",
        localEndpoint={"serviceName": "Notifier"},
        duration=500_000,
    )
    del other["parentId"]
    await post(collector, [valid_span(), other])
    assert await get(collector, "/api/v2/services") == (200, ["billing", "notifier"])
    assert await get(collector, "/api/v2/spans", serviceName="notifier") == (
        200,
        ["notifier.v1.notifierservice/send"],
    )
    assert (await get(collector, "/api/v2/spans"))[0] == 400
    assert await get(collector, "/api/v2/remoteServices", serviceName="billing") == (
        200,
        ["gateway"],
    )
    status, traces = await get(collector, "/api/v2/traces", serviceName="billing")
    assert status == 200 and [t[0]["id"] for t in traces] == ["352bff9a74ca9ad2"]
    status, traces = await get(collector, "/api/v2/traces", minDuration="100000")
    assert [t[0]["traceId"] for t in traces] == ["1111111111111111"]
    status, traces = await get(collector, "/api/v2/traces", annotationQuery="rpc.system=grpc")
    assert len(traces) == 2
    status, traces = await get(collector, "/api/v2/traces", endTs="1000", lookback="1000")
    assert traces == []
    status, spans = await get(collector, "/api/v2/trace/1111111111111111")
    assert status == 200 and spans[0]["name"] == "notifier.v1.notifierservice/send"
    assert (await get(collector, "/api/v2/trace/ffffffffffffffff"))[0] == 404
    status, many = await get(
        collector, "/api/v2/traceMany", traceIds="1111111111111111,5af7183fb1d4cf5f5af7183fb1d4cf5f"
    )
    assert status == 200 and len(many) == 2


async def test_opentelemetry_zipkin_exporter_is_accepted(collector: ZipkinCollector) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("handle voice", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("telegram.chat_id", 42)
        root.add_event("placeholder sent")
        with tracer.start_as_current_span("billing reserve", kind=trace.SpanKind.CLIENT):
            pass
        with tracer.start_as_current_span("decode"):
            pass
    exporter = ZipkinExporter(endpoint=collector.endpoint, timeout=5)
    # the exporter is synchronous (requests); the collector shares this event loop
    result = await asyncio.to_thread(exporter.export, memory.get_finished_spans())
    assert result is SpanExportResult.SUCCESS
    assert collector.violations == []
    await collector.wait_for_spans(lambda spans: len(spans) == 3, timeout=2)
    [trace_id] = collector.traces()
    assert {s["localEndpoint"]["serviceName"] for s in collector.trace(trace_id)} == {"gateway"}
    kinds = sorted(s.get("kind", "") for s in collector.spans)
    assert kinds == ["", "CLIENT", "SERVER"]
    provider.shutdown()


async def test_wait_for_spans_times_out(collector: ZipkinCollector) -> None:
    with pytest.raises(TimeoutError, match="0 spans"):
        await collector.wait_for_spans(bool, timeout=0.1)


async def test_wait_for_spans_wakes_on_arrival(collector: ZipkinCollector) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        await post(collector, [valid_span()])

    task = asyncio.create_task(later())
    await collector.wait_for_spans(lambda spans: len(spans) == 1, timeout=5)
    await task


async def test_standalone_collector_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxmesh_dev.zipkin",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        base_url = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base_url}/api/v2/spans", json=[valid_span()]) as resp:
                assert resp.status == 202
            async with http.get(f"{base_url}/api/v2/services") as resp:
                assert await resp.json() == ["billing"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_spec_example_is_valid() -> None:
    """The spec's own example span passes (with a localEndpoint, as it has)."""
    from voxmesh_dev.zipkin.schema import SpanValidator, load_spec

    spec = load_spec()
    example = copy.deepcopy(spec["definitions"]["Span"]["example"])
    validator = SpanValidator(spec)
    assert validator.violations([example]) == []
    example["tags"]["n"] = 1
    assert validator.violations([example])
