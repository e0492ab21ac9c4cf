"""Several live streams at once, each with its own text, in a pool apart from file streams.

Live streams have their own admission pool: they are paced by their
speakers, so four of them share the cores a single file stream would use,
and a fifth is refused (RESOURCE_EXHAUSTED) rather than queued, since live
audio cannot wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, wer
from tests.transcriber.test_latency import MIT_GRANT
from transcriber.audio import SAMPLE_RATE
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.errors import error_details

pytestmark = pytest.mark.slow

STEP = 0.2  # seconds of PCM per message, sent at real-time pace
# Every stream must end, with its own text, in bounded time. Whether four keep
# up with real time (lag <= 5 s, the bar) is bench.transcriber's
# measure: met on a quiet machine, at the limit (see the README); a suite
# shares the cores with other work.
MAX_LAG = 60.0


def _gap(seconds: float = 0.5) -> Audio:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def four_talks(audio_dir: Path, transcripts: dict[str, Any]) -> list[tuple[Audio, str, str]]:
    """Four different clips of 20-30 s: (audio, reference text, a phrase only it contains)."""
    from faster_whisper import decode_audio

    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    left, right = decode_audio(str(audio_dir / "stereo_diarization.wav"), split_stereo=True)
    stereo = transcripts["stereo_diarization.wav"]["channels"]
    jfk_text = transcripts["jfk.flac"]["text"]
    wizard, horizon = stereo["left"], stereo["right"]
    talks = [
        ([mit], MIT_GRANT, "permission"),
        ([jfk, _gap(), left, _gap(), right], f"{jfk_text} {wizard} {horizon}", "americans"),
        ([left, _gap(), right, _gap(), jfk], f"{wizard} {horizon} {jfk_text}", "wizard"),
        ([right, _gap(), jfk, _gap(), left], f"{horizon} {jfk_text} {wizard}", "horizon"),
    ]
    return [
        (np.concatenate([*parts, _gap()]).astype(np.float32), text, phrase)
        for parts, text, phrase in talks
    ]


async def live_stream(stub: pb_grpc.TranscriberServiceAsyncStub, audio: Audio) -> tuple[str, float]:
    """Send 16 kHz PCM at real-time pace; return the final text and the lag after the audio."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = int(STEP * SAMPLE_RATE) * 2
    sent_all = float("nan")

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        nonlocal sent_all
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=SAMPLE_RATE, language="en"
            )
        )
        start = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm), size)):
            await asyncio.sleep(max(0.0, start + (n + 1) * STEP - time.perf_counter()))
            yield pb.TranscribeRequest(audio=pcm[i : i + size])
        sent_all = time.perf_counter()

    finals: dict[int, str] = {}
    async for response in stub.Transcribe(requests(), timeout=120):
        if response.WhichOneof("event") == "segment" and response.segment.final:
            finals[response.segment.segment_id] = response.segment.text
        elif response.WhichOneof("event") == "done":
            return "".join(finals[i] for i in sorted(finals)), time.perf_counter() - sent_all
    raise AssertionError("the stream ended without Done")


async def test_four_live_streams_keep_up_and_a_fifth_is_refused(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    # One file slot: live capacity must not depend on it.
    srv = await start_server(max_active_streams=1, max_live_streams=4)
    talks = four_talks(audio_dir, transcripts)
    tasks = [asyncio.create_task(live_stream(srv.stub, audio)) for audio, _, _ in talks]
    live = srv.service.live_admission
    async with asyncio.timeout(10):
        while live.active < 4:  # noqa: ASYNC110  # the server's state offers no event
            await asyncio.sleep(0.05)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await live_stream(srv.stub, talks[0][0])
    details = error_details(err.value)
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "OVERLOADED"

    results = await asyncio.gather(*tasks)
    for (_, reference, phrase), (text, lag) in zip(talks, results, strict=True):
        # The talks share clips in different orders: a stream given another's
        # audio would fail its own reference by far more than 0.2.
        assert phrase in text.lower(), (phrase, text)
        assert wer(reference, text) <= 0.2, (reference, text)
        assert lag <= MAX_LAG, (phrase, lag)
    assert live.active == 0


async def _burst(stub: pb_grpc.TranscriberServiceAsyncStub, audio: Audio) -> str:
    """A live stream whose audio all arrives at once: as far behind its speaker as it can be."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = int(STEP * SAMPLE_RATE) * 2
    requests = [
        pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=SAMPLE_RATE, language="en"
            )
        ),
        *(pb.TranscribeRequest(audio=pcm[i : i + size]) for i in range(0, len(pcm), size)),
    ]
    finals: dict[int, str] = {}
    async for response in stub.Transcribe(iter(requests), timeout=300):
        if response.WhichOneof("event") == "segment" and response.segment.final:
            finals[response.segment.segment_id] = response.segment.text
    return "".join(finals[i] for i in sorted(finals))


async def test_no_new_live_stream_while_the_running_ones_are_behind(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    # Room for four by count: what refuses the second stream is the first one's lag.
    srv = await start_server(max_live_streams=4, live_max_lag_seconds=3.0)
    talks = four_talks(audio_dir, transcripts)
    behind = asyncio.create_task(_burst(srv.stub, talks[1][0]))
    async with asyncio.timeout(30):
        while srv.service.live_lag_seconds() <= 3.0:  # noqa: ASYNC110  # no event to wait on
            await asyncio.sleep(0.05)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await live_stream(srv.stub, talks[0][0])
    details = error_details(err.value)
    assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert "behind" in (err.value.details() or ""), err.value.details()
    assert details.retry_after is not None and details.retry_after > 0

    # The stream that was behind still ends with all its text.
    assert wer(talks[1][1], await behind) <= 0.2
    assert srv.service.live_lag_seconds() == 0.0
    # Caught up, the server takes a new live stream again.
    text, _ = await live_stream(srv.stub, talks[0][0])
    assert "permission" in text.lower(), text
