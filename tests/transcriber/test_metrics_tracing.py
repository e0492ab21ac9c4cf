"""The transcriber's metrics and its per-window spans, through a real stream."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from transcriber import windowing
from transcriber.config import TranscriberConfig
from transcriber.models import ModelRegistry
from transcriber.server import create_app
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.config import TelemetrySettings
from voxmesh.server import ServerSettings
from voxmesh.telemetry import make_tracer_provider


@pytest.mark.slow
async def test_stream_updates_metrics_and_traces_each_window(
    shared_audio: pathlib.Path,
    registry: ModelRegistry,
    base_config: TranscriberConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider(TelemetrySettings(service_name="transcriber", exporter="none"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # Services use the process-wide provider that main() installs; swap in ours.
    monkeypatch.setattr(windowing, "_tracer", provider.get_tracer("test"))
    app = create_app(
        base_config,
        ServerSettings(service="transcriber", listen="127.0.0.1:0"),
        registry=registry,
        tracer_provider=provider,
    )
    port = await app.start()
    data = (shared_audio / "jfk.flac").read_bytes()

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for i in range(0, len(data), 256 * 1024):
            yield pb.TranscribeRequest(audio=data[i : i + 256 * 1024])

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.TranscriberServiceStub(ch)
            events = [e async for e in stub.Transcribe(requests(), timeout=60)]
    finally:
        await app.stop(0)
    assert events[-1].HasField("done")
    text = generate_latest(app.server.metrics.registry).decode()
    assert 'voxmesh_transcriber_streams_active{mode="file"} 0.0' in text
    assert 'voxmesh_transcriber_streams_queued{mode="live"} 0.0' in text
    assert "voxmesh_transcriber_live_lag_seconds 0.0" in text
    assert "voxmesh_transcriber_audio_seconds_total 11.0" in text
    assert "voxmesh_transcriber_rtf_count 1.0" in text
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.name == "transcriber.v1.transcriberservice/transcribe")
    windows = [s for s in spans if s.name == "transcriber.window"]
    assert windows
    assert all(w.context.trace_id == server.context.trace_id for w in windows)
    first = windows[0].attributes or {}
    assert first["transcriber.model"] == "tiny.en"
    assert float(first["transcriber.audio_seconds"]) > 10  # type: ignore[arg-type]
    assert 0 < float(first["transcriber.rtf"]) < 1  # type: ignore[arg-type]
