"""voxmesh_client against a real transcriber: file, bytes, live PCM, errors, TLS, trace context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from voxmesh_client import (
    Options,
    TlsFiles,
    TranscriberClient,
    TranscriberError,
    service_config,
)
from voxmesh_client.transcriber.v1 import transcriber_pb2 as pb
from voxmesh_client.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

from tests.transcriber.conftest import Audio, ServerFactory, wer
from transcriber.audio import SAMPLE_RATE
from transcriber.config import TranscriberConfig
from transcriber.models import ModelRegistry
from transcriber.server import create_app
from voxmesh import channels
from voxmesh.server import ServerSettings
from voxmesh.tls import make_dev_pki


def test_dials_with_the_mesh_s_service_config() -> None:
    """The package keeps its own copy (it may not import voxmesh); it must stay the same."""
    for target in ("127.0.0.1:50052", "dns:///transcriber.voxmesh.svc.cluster.local:50052"):
        assert service_config(target) == channels.service_config(target)
    from voxmesh_client._channel import channel_options

    assert channel_options("dns:///x:1") == channels.channel_options("dns:///x:1")


async def test_sends_w3c_and_b3_context_of_the_caller() -> None:
    """A caller's trace continues in the transcriber: both header formats, one trace id."""
    seen: list[dict[str, str]] = []

    class Recorder(pb_grpc.TranscriberServiceServicer):
        async def ListModels(self, request: Any, context: Any) -> pb.ListModelsResponse:
            seen.append({k: str(v) for k, v in context.invocation_metadata()})
            return pb.ListModelsResponse(models=[pb.ModelInfo(name="tiny.en")])

    server = grpc.aio.server()
    pb_grpc.add_TranscriberServiceServicer_to_server(Recorder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    caller = TracerProvider().get_tracer("caller")
    try:
        async with TranscriberClient(f"127.0.0.1:{port}") as client:
            with caller.start_as_current_span("caller's request") as span:
                models = await client.list_models()
                trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        await server.stop(0)
    assert [m.name for m in models] == ["tiny.en"]
    headers = seen[0]
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["x-b3-traceid"] == trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN


@pytest.mark.slow
async def test_file_bytes_and_errors(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    reference = transcripts["jfk.flac"]["text"]
    async with TranscriberClient(srv.target, timeout=120) as client:
        models = await client.list_models()
        default = next(m.name for m in models if m.is_default)
        from_file = await client.transcribe_file(
            audio_dir / "jfk.flac", Options(output_format="srt", word_timestamps=True)
        )
        assert from_file.language == "en"
        assert from_file.done.model == default
        assert wer(reference, from_file.text) <= 0.1, from_file.text
        assert from_file.formatted.startswith("1\n00:00:00,")
        assert all(s.words for s in from_file.segments)
        from_bytes = await client.transcribe_bytes((audio_dir / "jfk.flac").read_bytes())
        assert from_bytes.text == from_file.text
        caller = TracerProvider().get_tracer("caller")
        with (
            caller.start_as_current_span("caller's request") as span,
            pytest.raises(TranscriberError) as bad,
        ):
            await client.transcribe_bytes(b"this is not audio" * 100)
    err = bad.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason.startswith("AUDIO_")
    # The reference to quote: the caller's trace, which the call joined.
    assert err.trace_id == format(span.get_span_context().trace_id, "032x")
    assert err.trace_id in str(err)


async def test_a_full_server_s_queued_events_pass_through_stream_and_not_into_a_transcript(
    start_server: ServerFactory, audio_dir: Path
) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=2)
    jfk = (audio_dir / "jfk.flac").read_bytes()

    async def audio(hold: bool = False) -> AsyncIterator[bytes]:
        yield jfk
        if hold:
            await asyncio.Event().wait()  # keep the upload open: the stream holds its slot

    async with TranscriberClient(srv.target, timeout=60) as client:
        busy = client.stream(audio(hold=True))
        assert (await anext(busy)).WhichOneof("event") == "audio"  # admitted at once
        second = client.stream(audio())
        first_event = await anext(second)
        assert first_event.WhichOneof("event") == "queued"
        assert (first_event.queued.position, first_event.queued.active) == (1, 1)
        third = asyncio.create_task(client.transcribe_bytes(jfk))
        for _ in range(200):
            if srv.service.admission.queued == 2:
                break
            await asyncio.sleep(0.05)
        assert srv.service.admission.queued == 2
        await busy.aclose()  # cancels the call: the others move up and run
        kinds = [event.WhichOneof("event") async for event in second]
        transcript = await third
    assert "queued" not in kinds and kinds[-1] == "done"
    assert "fellow americans" in transcript.text.lower()


@pytest.mark.slow
async def test_live_pcm_iterator(
    start_server: ServerFactory, jfk_audio: Audio, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    pcm = (np.clip(jfk_audio, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(0.2 * SAMPLE_RATE) * 2

    async def microphone() -> AsyncIterator[bytes]:
        for i in range(0, len(pcm), step):
            await asyncio.sleep(0.2)  # as it is spoken
            yield pcm[i : i + step]

    partials, finals = 0, {}
    async with TranscriberClient(srv.target) as client:
        async for event in client.live(microphone(), options=Options(language="en"), timeout=60):
            if event.WhichOneof("event") == "segment":
                if event.segment.final:
                    finals[event.segment.segment_id] = event.segment.text
                else:
                    partials += 1
    assert partials > 0
    text = "".join(finals[i] for i in sorted(finals))
    assert wer(transcripts["jfk.flac"]["text"], text) <= 0.15, text


@pytest.mark.slow
async def test_mutual_tls(
    registry: ModelRegistry, base_config: TranscriberConfig, tmp_path: Path
) -> None:
    pki = make_dev_pki(tmp_path, ["transcriber", "team-a"], hosts=["127.0.0.1", "localhost"])
    settings = ServerSettings(
        service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0, tls=pki["transcriber"]
    )
    app = create_app(base_config, settings, registry=registry)
    target = f"localhost:{await app.start()}"
    mine = pki["team-a"]
    try:
        async with TranscriberClient(target, tls=TlsFiles(mine.ca, mine.cert, mine.key)) as client:
            assert await client.list_models()
        async with TranscriberClient(target) as plaintext:
            with pytest.raises(TranscriberError) as refused:
                await plaintext.list_models(timeout=3)
    finally:
        await app.stop(0)
    assert refused.value.code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def test_tls_files_from_env(tmp_path: Path) -> None:
    assert TlsFiles.from_env({}) is None
    with pytest.raises(ValueError, match="VOXMESH_TLS_KEY"):
        TlsFiles.from_env({"VOXMESH_TLS_CA": "a", "VOXMESH_TLS_CERT": "b"})
    files = TlsFiles.from_env(
        {"VOXMESH_TLS_CA": "a", "VOXMESH_TLS_CERT": "b", "VOXMESH_TLS_KEY": "c"}
    )
    assert files == TlsFiles(Path("a"), Path("b"), Path("c"))
