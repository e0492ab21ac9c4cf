"""File mode end to end: the gRPC stream over a real socket with real model inference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, chunks, encode, wer
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc

pytestmark = pytest.mark.slow


@dataclass
class StreamResult:
    languages: list[pb.LanguageDetected] = field(default_factory=list)
    audio: list[pb.AudioInfo] = field(default_factory=list)
    segments: list[pb.Segment] = field(default_factory=list)
    done: pb.Done | None = None
    order: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.final)


async def requests(
    config: pb.TranscriptionConfig, data: bytes, chunk: int = 16 * 1024
) -> AsyncIterator[pb.TranscribeRequest]:
    yield pb.TranscribeRequest(config=config)
    for piece in chunks(data, chunk):
        yield pb.TranscribeRequest(audio=piece)


async def transcribe(
    stub: pb_grpc.TranscriberServiceAsyncStub,
    data: bytes,
    config: pb.TranscriptionConfig | None = None,
    **call: Any,
) -> StreamResult:
    result = StreamResult()
    call_ = stub.Transcribe(requests(config or pb.TranscriptionConfig(), data), **call)
    async for response in call_:
        kind = response.WhichOneof("event")
        result.order.append(kind)
        if kind == "language":
            result.languages.append(response.language)
        elif kind == "segment":
            result.segments.append(response.segment)
        elif kind == "audio":
            result.audio.append(response.audio)
        else:
            result.done = response.done
    return result


async def test_jfk_flac_stream(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    data = (audio_dir / "jfk.flac").read_bytes()
    result = await transcribe(srv.stub, data, timeout=60)
    assert wer(transcripts["jfk.flac"]["text"], result.text) <= 0.05, result.text
    # The duration (from FLAC's header), one language event, segments, exactly one done.
    assert result.order[:2] == ["audio", "language"] and result.order[-1] == "done"
    assert len(result.audio) == 1 and result.audio[0].final
    assert result.audio[0].duration_seconds == pytest.approx(11.0, abs=0.01)
    assert result.order.count("language") == 1 and result.order.count("done") == 1
    assert result.languages[0].language == "en"
    assert result.languages[0].probability == pytest.approx(1.0)
    assert [s.segment_id for s in result.segments] == list(range(len(result.segments)))
    assert all(s.final for s in result.segments)
    done = result.done
    assert done is not None
    assert done.audio_duration_seconds == pytest.approx(11.0, abs=0.1)
    assert done.model == "tiny.en" and done.device == "cpu"
    assert 0 < done.processing_seconds < 30
    assert done.segment_count == len(result.segments)
    assert wer(transcripts["jfk.flac"]["text"], done.formatted_text) <= 0.05


FORMATS = {
    "ogg-opus": {"container": "ogg", "codec": "libopus", "rate": 48000},
    "mp3": {"container": "mp3", "codec": "libmp3lame", "rate": 44100},
    "m4a-aac": {"container": "ipod", "codec": "aac", "rate": 44100},
    "mp4-video": {"container": "mp4", "codec": "aac", "rate": 44100, "video": True},
    "webm-opus": {"container": "webm", "codec": "libopus", "rate": 48000, "layout": "mono"},
    "wav-8k-mono": {"container": "wav", "codec": "pcm_s16le", "rate": 8000, "layout": "mono"},
}


async def test_containers(
    start_server: ServerFactory, jfk_audio: Audio, transcripts: dict[str, Any]
) -> None:
    srv = await start_server(max_active_streams=2)
    encoded = {name: encode(jfk_audio, **spec) for name, spec in FORMATS.items()}  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(transcribe(srv.stub, data, timeout=60) for data in encoded.values())
    )
    for name, result in zip(encoded, results, strict=True):
        assert wer(transcripts["jfk.flac"]["text"], result.text) <= 0.05, (name, result.text)
        assert result.done is not None
        assert result.done.audio_duration_seconds == pytest.approx(11.0, abs=0.2), name
        # Every container states its exact duration once, before done.
        assert [a.final for a in result.audio] == [True], name
        assert result.audio[0].duration_seconds == pytest.approx(11.0, abs=0.1), name
        assert result.order.index("audio") < result.order.index("done"), name
        assert result.done.transcribed_seconds == pytest.approx(11.0, abs=0.2), name


async def test_output_formats_and_words(start_server: ServerFactory, audio_dir: Path) -> None:
    srv = await start_server()
    data = (audio_dir / "jfk.flac").read_bytes()
    config = pb.TranscriptionConfig(
        output_format=pb.OUTPUT_FORMAT_SRT, word_timestamps=True, language="en", beam_size=5
    )
    result = await transcribe(srv.stub, data, config, timeout=60)
    assert result.done is not None
    srt = result.done.formatted_text
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    words = [w for s in result.segments for w in s.words]
    assert len(words) >= 20
    assert all(0 <= w.start_seconds <= w.end_seconds <= 11.5 for w in words)
    vtt = await transcribe(
        srv.stub, data, pb.TranscriptionConfig(output_format=pb.OUTPUT_FORMAT_VTT), timeout=60
    )
    assert vtt.done is not None and vtt.done.formatted_text.startswith(
        "WEBVTT\n\n00:00:00.000 --> "
    )


def _has_weights(model_dir: str) -> bool:
    return Path(model_dir, "model.bin").exists()


async def test_transcribe_file_and_list_models(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    data = (audio_dir / "jfk.flac").read_bytes()
    reply = await srv.stub.TranscribeFile(
        pb.TranscribeFileRequest(
            config=pb.TranscriptionConfig(output_format=pb.OUTPUT_FORMAT_TIMESTAMPED_TEXT),
            audio=data,
        ),
        timeout=60,
    )
    text = " ".join(s.text for s in reply.segments)
    assert wer(transcripts["jfk.flac"]["text"], text) <= 0.05
    assert reply.language.language == "en"
    assert reply.done.formatted_text.startswith("[00:00] ")
    assert reply.done.segment_count == len(reply.segments)

    models = await srv.stub.ListModels(pb.ListModelsRequest(), timeout=10)
    by_name = {m.name: m for m in models.models}
    assert by_name["tiny.en"].is_default and not by_name["tiny.en"].multilingual
    assert by_name["tiny.en"].compute_type == "int8" and by_name["tiny.en"].device == "cpu"
    assert _has_weights(by_name["tiny.en"].path)
    assert sum(m.is_default for m in models.models) == 1


async def test_first_segment_arrives_before_upload_ends(
    start_server: ServerFactory, jfk_audio: Audio
) -> None:
    """A long OGG file, sent slowly: text arrives while the client is still sending."""
    import numpy as np

    srv = await start_server(window_seconds=10.0)
    gap = np.zeros(8000, dtype=np.float32)
    long_audio = np.concatenate([jfk_audio, gap] * 4)  # ~46 s
    data = encode(long_audio, container="ogg", codec="libopus")
    sent = 0
    first_segment_at: int | None = None

    async def slow() -> AsyncIterator[pb.TranscribeRequest]:
        nonlocal sent
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        # About 4 s of upload: a loaded CI machine still decodes and
        # transcribes the first 10 s window well before the end.
        for piece in chunks(data, 4 * 1024):
            sent += len(piece)
            yield pb.TranscribeRequest(audio=piece)
            await asyncio.sleep(0.15)

    segments = 0
    async for response in srv.stub.Transcribe(slow(), timeout=60):
        if response.WhichOneof("event") == "segment":
            segments += 1
            if first_segment_at is None:
                first_segment_at = sent
    assert first_segment_at is not None and segments >= 4
    assert first_segment_at < len(data) * 0.7, (first_segment_at, len(data))


async def test_deadline_too_short(start_server: ServerFactory, jfk_audio: Audio) -> None:
    import numpy as np

    from voxmesh.errors import error_details

    srv = await start_server()
    ten_minutes = np.zeros(600 * 16000, dtype=np.float32)
    data = encode(ten_minutes, container="flac", codec="flac", rate=16000, layout="mono")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await transcribe(srv.stub, data, timeout=3)
    details = error_details(err.value)
    assert details.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details.reason == "DEADLINE_TOO_SHORT"
