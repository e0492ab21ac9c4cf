"""The facade's spans and the transcriber's join the HTTP caller's trace (W3C or B3)."""

from __future__ import annotations

import io
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.exporter.zipkin.json import ZipkinExporter

from tests.facade.conftest import API_KEY, FacadeFactory
from transcriber.config import TranscriberConfig
from transcriber.models import ModelRegistry
from transcriber.server import create_app
from voxmesh.config import TelemetrySettings
from voxmesh.server import ServerSettings
from voxmesh.telemetry import make_tracer_provider
from voxmesh_dev.zipkin import ZipkinCollector

pytestmark = pytest.mark.slow


def _provider(service: str, collector: ZipkinCollector) -> Any:
    # The stock Zipkin exporter, told its endpoint as OpenTelemetry's own variable says.
    exporter = ZipkinExporter(endpoint=collector.endpoint)
    return make_tracer_provider(TelemetrySettings(service_name=service), exporter)


@pytest.mark.parametrize("propagation", ["w3c", "b3"])
async def test_facade_and_transcriber_spans_share_the_callers_trace(
    propagation: str,
    start_facade: FacadeFactory,
    registry: ModelRegistry,
    base_config: TranscriberConfig,
    audio_dir: Path,
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    if propagation == "w3c":
        headers["traceparent"] = f"00-{trace_id}-{parent_id}-01"
    else:
        headers |= {"X-B3-TraceId": trace_id, "X-B3-SpanId": parent_id, "X-B3-Sampled": "1"}
    async with ZipkinCollector() as collector:
        transcriber_spans = _provider("transcriber", collector)
        facade_spans = _provider("facade", collector)
        app = create_app(
            replace(base_config, max_active_streams=2),
            ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0),
            registry=registry,
            tracer_provider=transcriber_spans,
        )
        port = await app.start()
        try:
            fac = await start_facade(f"127.0.0.1:{port}", tracer_provider=facade_spans)
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("model", "whisper-1")
            form.add_field(
                "file",
                io.BytesIO((audio_dir / "jfk.flac").read_bytes()),
                filename="jfk.flac",
                content_type="audio/flac",
            )
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{fac.url}/v1/audio/transcriptions", data=form, headers=headers) as resp,
            ):
                assert resp.status == 200, await resp.text()
                assert resp.headers["x-request-id"] == trace_id
            facade_spans.force_flush()
            transcriber_spans.force_flush()

            def joined(spans: list[dict[str, Any]]) -> bool:
                names = {s["name"] for s in spans if s["traceId"] == trace_id}
                return {
                    "post /v1/audio/transcriptions",  # lowercased, as Zipkin asks
                    "transcriber.v1.transcriberservice/transcribe",
                } <= names

            await collector.wait_for_spans(joined, timeout=20)
        finally:
            await app.stop(0)
            facade_spans.shutdown()
            transcriber_spans.shutdown()
    spans = collector.trace(trace_id)
    assert not collector.violations
    by_kind = {(s["localEndpoint"]["serviceName"], s.get("kind")): s for s in spans}
    http_span = by_kind["facade", "SERVER"]
    client_span = by_kind["facade", "CLIENT"]
    server_span = by_kind["transcriber", "SERVER"]
    assert http_span["parentId"] == parent_id
    assert http_span["tags"]["http.response.status_code"] == "200"
    assert http_span["tags"]["voxmesh.caller"] == "team-a"
    assert client_span["parentId"] == http_span["id"]
    # Its callee by name (the stock Zipkin exporter sets no remoteEndpoint; the
    # Collector's does, from these attributes).
    assert client_span["name"] == "transcriber.v1.transcriberservice/transcribe"
    assert client_span["tags"]["rpc.service"] == "transcriber.v1.TranscriberService"
    assert server_span["parentId"] == client_span["id"]
