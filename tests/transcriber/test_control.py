"""Cancellation stops the work; admission control bounds active and queued streams."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, chunks, encode, normalise, wer
from transcriber.v1 import transcriber_pb2 as pb
from voxmesh.errors import error_details

pytestmark = pytest.mark.slow


async def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        # Polling on purpose: the state belongs to the server, which offers no event.
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_cancel_stops_inference(start_server: ServerFactory, jfk_audio: Audio) -> None:
    srv = await start_server(window_seconds=10.0)
    gap = np.zeros(8000, np.float32)
    long_audio = np.concatenate([jfk_audio, gap] * 20)  # ~230 s: minutes of work on 2 cores
    data = encode(long_audio, container="flac", codec="flac", rate=16000, layout="mono")

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(data, 256 * 1024):
            yield pb.TranscribeRequest(audio=piece)

    counters = srv.service.counters
    before = counters.windows
    stream = srv.stub.Transcribe(requests(), timeout=120)
    async for response in stream:
        if response.WhichOneof("event") == "segment":
            break
    stream.cancel()
    # The worker notices within a window and frees its slot.
    await _wait_for(lambda: srv.service.admission.active == 0, timeout=2.0)
    stopped_at = counters.windows
    await asyncio.sleep(1.5)
    assert counters.windows == stopped_at, "inference went on after the cancel"
    assert stopped_at - before < 10, "the whole file was processed"


async def test_deadline_stops_inference(start_server: ServerFactory, jfk_audio: Audio) -> None:
    srv = await start_server(window_seconds=10.0, realtime_factor=0.0)
    gap = np.zeros(8000, np.float32)
    data = encode(np.concatenate([jfk_audio, gap] * 8), container="ogg", codec="libopus")

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(data, 64 * 1024):
            yield pb.TranscribeRequest(audio=piece)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in srv.stub.Transcribe(requests(), timeout=1.5):
            pass
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _wait_for(lambda: srv.service.admission.active == 0, timeout=2.0)
    stopped_at = srv.service.counters.windows
    await asyncio.sleep(1.0)
    assert srv.service.counters.windows == stopped_at


async def test_admission_limits(start_server: ServerFactory, audio_dir: Path) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=1)
    jfk = (audio_dir / "jfk.flac").read_bytes()
    wizard = (audio_dir / "stereo_diarization.wav").read_bytes()
    release_a = asyncio.Event()

    async def requests(
        data: bytes, hold: asyncio.Event | None
    ) -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(data):
            yield pb.TranscribeRequest(audio=piece)
        if hold is not None:
            await hold.wait()  # keep A's upload open: it holds the only slot

    async def run(data: bytes, hold: asyncio.Event | None = None) -> str:
        texts = []
        async for r in srv.stub.Transcribe(requests(data, hold), timeout=60):
            if r.WhichOneof("event") == "segment":
                texts.append(r.segment.text)
        return normalise(" ".join(texts))

    admission = srv.service.admission
    a = asyncio.create_task(run(jfk, release_a))
    await _wait_for(lambda: admission.active == 1)
    b = asyncio.create_task(run(wizard))
    await _wait_for(lambda: admission.queued == 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run(wizard)
    details = error_details(err.value)
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "OVERLOADED"
    assert details.retry_after is not None and details.retry_after >= 1.0
    release_a.set()
    text_a, text_b = await asyncio.gather(a, b)
    assert "fellow americans" in text_a and "curtain" not in text_a
    assert "curtain" in text_b and "americans" not in text_b
    assert admission.active == 0 and admission.queued == 0


async def test_queued_caller_leaving_frees_its_place(
    start_server: ServerFactory, audio_dir: Path
) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=1)
    hold = asyncio.Event()
    jfk = (audio_dir / "jfk.flac").read_bytes()

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(jfk):
            yield pb.TranscribeRequest(audio=piece)
        await hold.wait()

    async def read_all(call: Any) -> None:
        # The first event (the FLAC's duration) comes at once; the rest waits
        # for the upload that never ends.
        async for _ in call:
            pass

    admission = srv.service.admission
    a = srv.stub.Transcribe(requests(), timeout=60)
    a_task = asyncio.create_task(read_all(a))
    await _wait_for(lambda: admission.active == 1)
    b = srv.stub.Transcribe(requests(), timeout=60)
    b_task = asyncio.create_task(read_all(b))
    await _wait_for(lambda: admission.queued == 1)
    b.cancel()
    await _wait_for(lambda: admission.queued == 0)
    assert admission.active == 1
    hold.set()
    a.cancel()
    await _wait_for(lambda: admission.active == 0)
    for task in (a_task, b_task):
        with pytest.raises((asyncio.CancelledError, grpc.aio.AioRpcError)):
            await task


async def test_eight_streams_against_four(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    # The concurrency bar: 4 served at once, 2 queued, 2 refused with
    # RESOURCE_EXHAUSTED; every served stream gets its own text.
    from faster_whisper import decode_audio

    srv = await start_server(max_active_streams=4, max_queued_streams=2)
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    left, right = decode_audio(str(audio_dir / "stereo_diarization.wav"), split_stereo=True)
    stereo = transcripts["stereo_diarization.wav"]["channels"]
    clips = {
        "jfk": (jfk, transcripts["jfk.flac"]["text"]),
        "left": (left, stereo["left"]),
        "right": (right, stereo["right"]),
    }
    gap = np.zeros(8000, np.float32)
    # Six orders of the same three clips: another stream's text fails this one's WER.
    talks = [
        (
            encode(
                np.concatenate([p for name in order for p in (clips[name][0], gap)]),
                "ogg",
                "libopus",
            ),
            " ".join(clips[name][1] for name in order),
        )
        for order in itertools.permutations(clips)
    ]
    release = asyncio.Event()

    async def requests(data: bytes) -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig(language="en"))
        for piece in chunks(data):
            yield pb.TranscribeRequest(audio=piece)
        await release.wait()  # uploads stay open until all eight have asked

    async def run(data: bytes) -> str:
        texts = []
        async for r in srv.stub.Transcribe(requests(data), timeout=120):
            if r.WhichOneof("event") == "segment":
                texts.append(r.segment.text)
        return " ".join(texts)

    admission = srv.service.admission
    served = [asyncio.create_task(run(data)) for data, _ in talks[:4]]
    await _wait_for(lambda: admission.active == 4)
    served += [asyncio.create_task(run(data)) for data, _ in talks[4:]]
    await _wait_for(lambda: admission.queued == 2)
    refused = await asyncio.gather(*(run(talks[i][0]) for i in range(2)), return_exceptions=True)
    for err in refused:
        assert isinstance(err, grpc.aio.AioRpcError), err
        details = error_details(err)
        assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    release.set()
    texts = await asyncio.gather(*served)
    for (_, reference), text in zip(talks, texts, strict=True):
        assert wer(reference, text) <= 0.2, (reference, text)
    assert admission.active == 0 and admission.queued == 0
