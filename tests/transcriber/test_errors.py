"""Bad input gets INVALID_ARGUMENT with the right ErrorInfo reason; the server stays healthy."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, chunks, encode, wer
from transcriber.v1 import transcriber_pb2 as pb
from voxmesh.errors import error_details

pytestmark = pytest.mark.slow


async def call(
    stub: Any, messages: list[pb.TranscribeRequest], timeout: float = 30
) -> list[pb.TranscribeResponse]:
    async def gen() -> AsyncIterator[pb.TranscribeRequest]:
        for m in messages:
            yield m

    return [r async for r in stub.Transcribe(gen(), timeout=timeout)]


def upload(data: bytes, config: pb.TranscriptionConfig | None = None) -> list[pb.TranscribeRequest]:
    return [
        pb.TranscribeRequest(config=config or pb.TranscriptionConfig()),
        *(pb.TranscribeRequest(audio=c) for c in chunks(data)),
    ]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "not audio " * 1000)
    return buf.getvalue()


@pytest.fixture(scope="module")
def corpus(jfk_audio: Audio) -> dict[str, tuple[list[pb.TranscribeRequest], str, str]]:
    rng = np.random.default_rng(7)
    mp4 = encode(jfk_audio, container="mp4", codec="aac", rate=44100)
    ogg = encode(jfk_audio, container="ogg", codec="libopus")
    video_only = encode(
        jfk_audio[:16000], container="mp4", codec="aac", video=True, audio_track=False
    )
    silence_3s = encode(
        np.zeros(48000, np.float32), container="wav", codec="pcm_s16le", rate=16000, layout="mono"
    )
    bad = "INVALID_ARGUMENT"
    return {
        "empty": (upload(b""), bad, "AUDIO_EMPTY"),
        "random": (upload(rng.bytes(50_000)), bad, "AUDIO_CORRUPT"),
        "zip": (upload(_zip()), bad, "AUDIO_CORRUPT"),
        "truncated-mp4": (upload(mp4[: len(mp4) // 2]), bad, "AUDIO_CORRUPT"),
        "ogg-header-only": (upload(ogg[:200]), bad, "AUDIO_CORRUPT"),
        "video-no-audio": (upload(video_only), bad, "NO_AUDIO_TRACK"),
        "too-long": (upload(silence_3s), bad, "AUDIO_TOO_LONG"),
        "too-large": (upload(rng.bytes(300_000)), bad, "AUDIO_TOO_LARGE"),
        "no-config": ([pb.TranscribeRequest(audio=b"abc")], bad, "INVALID_REQUEST"),
        "nothing": ([], bad, "INVALID_REQUEST"),
        "second-config": (
            [*upload(ogg)[:3], pb.TranscribeRequest(config=pb.TranscriptionConfig())],
            bad,
            "INVALID_REQUEST",
        ),
        "beam": (upload(ogg, pb.TranscriptionConfig(beam_size=11)), bad, "INVALID_REQUEST"),
        "model": (upload(ogg, pb.TranscriptionConfig(model="large-v9")), bad, "INVALID_REQUEST"),
        "language": (upload(ogg, pb.TranscriptionConfig(language="xx")), bad, "INVALID_REQUEST"),
        "language-en-only": (
            upload(ogg, pb.TranscriptionConfig(language="de")),
            bad,
            "INVALID_REQUEST",
        ),
        "translate-en-only": (
            upload(ogg, pb.TranscriptionConfig(task=pb.TASK_TRANSLATE)),
            bad,
            "INVALID_REQUEST",
        ),
        "live-rate": (
            upload(
                b"\0" * 3200,
                pb.TranscriptionConfig(input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=4000),
            ),
            bad,
            "INVALID_REQUEST",
        ),
        "prompt": (
            upload(ogg, pb.TranscriptionConfig(initial_prompt="x" * 1001)),
            bad,
            "INVALID_REQUEST",
        ),
    }


async def test_bad_input_corpus(
    start_server: ServerFactory,
    corpus: dict[str, tuple[list[pb.TranscribeRequest], str, str]],
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    srv = await start_server(max_audio_seconds=2.0, max_upload_bytes=200_000)
    for name, (messages, code, reason) in corpus.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(srv.stub, messages)
        details = error_details(err.value)
        assert (details.code.name, details.reason) == (code, reason), (name, details)
        assert details.domain == "transcriber.voxmesh", name
    # Nothing leaked: every slot is free and a good file still transcribes.
    assert srv.service.admission.active == 0
    good = encode(
        np.zeros(8000, np.float32), container="wav", codec="pcm_s16le", rate=16000, layout="mono"
    )
    responses = await call(srv.stub, upload(good))
    assert responses[-1].WhichOneof("event") == "done"


async def test_metadata_on_limits(start_server: ServerFactory, jfk_audio: Audio) -> None:
    srv = await start_server(max_audio_seconds=5.0)
    data = encode(jfk_audio, container="flac", codec="flac", rate=16000, layout="mono")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(srv.stub, upload(data))
    details = error_details(err.value)
    assert details.reason == "AUDIO_TOO_LONG"
    assert details.metadata is not None and details.metadata["max_seconds"] == "5"


async def test_too_long_detected_while_decoding(
    start_server: ServerFactory, jfk_audio: Audio
) -> None:
    """OGG carries no duration up front: the limit trips while decoding."""
    srv = await start_server(max_audio_seconds=5.0)
    data = encode(jfk_audio, container="ogg", codec="libopus")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(srv.stub, upload(data))
    assert error_details(err.value).reason == "AUDIO_TOO_LONG"


async def test_transcribe_file_errors(
    start_server: ServerFactory, jfk_audio: Audio, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await srv.stub.TranscribeFile(pb.TranscribeFileRequest(audio=b""), timeout=10)
    assert error_details(err.value).reason == "AUDIO_EMPTY"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await srv.stub.TranscribeFile(
            pb.TranscribeFileRequest(
                config=pb.TranscriptionConfig(
                    input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=16000
                ),
                audio=b"\0" * 100,
            ),
            timeout=10,
        )
    assert error_details(err.value).reason == "INVALID_REQUEST"
    reply = await srv.stub.TranscribeFile(
        pb.TranscribeFileRequest(
            audio=encode(jfk_audio, container="mp3", codec="libmp3lame", rate=44100)
        ),
        timeout=30,
    )
    assert wer(transcripts["jfk.flac"]["text"], reply.done.formatted_text) <= 0.05
