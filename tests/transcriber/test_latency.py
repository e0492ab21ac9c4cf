"""Time to the first segment: a 5-minute file sent at once, and 60 s of live PCM in real time.

Both compare against one-shot faster-whisper on the same audio with the same
loaded model and settings, measured in the same test, so the bounds hold on
a slow CI machine as on a fast one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, chunks, encode, wer
from transcriber.audio import SAMPLE_RATE
from transcriber.models import ModelRegistry
from transcriber.v1 import transcriber_pb2 as pb

pytestmark = pytest.mark.slow

MIT_GRANT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files (the Software), to deal in the Software "
    "without restriction, including without limitation the rights to use, copy, modify, merge, "
    "publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons "
    "to whom the Software is furnished to do so, subject to the following conditions: The above "
    "copyright notice and this permission notice shall be included in all copies or substantial "
    "portions of the Software."
)


def _gap(seconds: float = 0.5) -> Audio:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def speech(audio_dir: Path, transcripts: dict[str, Any], *, repeat: int) -> tuple[Audio, str]:
    """Real speech from the references: (MIT grant, JFK, MIT grant) x repeat, ~71 s each."""
    from faster_whisper import decode_audio

    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    jfk_text = transcripts["jfk.flac"]["text"]
    parts: list[Audio] = []
    texts: list[str] = []
    for _ in range(repeat):
        parts += [mit, _gap(), jfk, _gap(), mit, _gap()]
        texts += [MIT_GRANT, jfk_text, MIT_GRANT]
    return np.concatenate(parts).astype(np.float32), " ".join(texts)


def live_speech(audio_dir: Path, transcripts: dict[str, Any]) -> tuple[Audio, str]:
    """About 61 s of English from four different recordings."""
    from faster_whisper import decode_audio

    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    left, right = decode_audio(str(audio_dir / "stereo_diarization.wav"), split_stereo=True)
    stereo = transcripts["stereo_diarization.wav"]["channels"]
    jfk_text = transcripts["jfk.flac"]["text"]
    audio = np.concatenate(
        [mit, _gap(), jfk, _gap(), left, _gap(), jfk, _gap(), right, _gap()]
    ).astype(np.float32)
    text = " ".join([MIT_GRANT, jfk_text, stereo["left"], jfk_text, stereo["right"]])
    return audio, text


async def one_shot(registry: ModelRegistry, audio: Audio) -> tuple[float, str]:
    """faster-whisper on the whole array: the server's model and decode settings."""
    model = registry.get()._model

    def run() -> tuple[float, str]:
        start = time.perf_counter()
        segments, _ = model.transcribe(
            audio, language="en", beam_size=1, condition_on_previous_text=True
        )
        text = " ".join(s.text for s in segments)
        return time.perf_counter() - start, text

    return await asyncio.to_thread(run)


async def test_file_first_segment_within_a_quarter_of_one_shot(
    start_server: ServerFactory,
    registry: ModelRegistry,
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    audio, reference = speech(audio_dir, transcripts, repeat=4)
    assert 280 <= audio.size / SAMPLE_RATE <= 300
    data = encode(audio, container="ogg", codec="libopus")
    one_shot_seconds, one_shot_text = await one_shot(registry, audio)
    srv = await start_server()

    async def upload() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(data, 64 * 1024):
            yield pb.TranscribeRequest(audio=piece)

    start = time.perf_counter()
    first: float | None = None
    texts: list[str] = []
    async for response in srv.stub.Transcribe(upload(), timeout=120):
        if response.WhichOneof("event") == "segment":
            if first is None:
                first = time.perf_counter() - start
            texts.append(response.segment.text)
    assert first is not None
    assert first < 0.25 * one_shot_seconds, (first, one_shot_seconds)
    one_shot_wer = wer(reference, one_shot_text)
    streamed_wer = wer(reference, " ".join(texts))
    assert streamed_wer <= one_shot_wer + 0.01, (streamed_wer, one_shot_wer)


async def test_live_first_segment_and_final_accuracy(
    start_server: ServerFactory,
    registry: ModelRegistry,
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    audio, reference = live_speech(audio_dir, transcripts)
    seconds = audio.size / SAMPLE_RATE
    assert 58 <= seconds <= 64
    _, one_shot_text = await one_shot(registry, audio)
    srv = await start_server()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    step_seconds = 0.2
    step = int(step_seconds * SAMPLE_RATE) * 2
    start = 0.0

    async def real_time() -> AsyncIterator[pb.TranscribeRequest]:
        nonlocal start
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=SAMPLE_RATE
            )
        )
        start = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm), step)):
            # Each chunk leaves when its last sample would have been spoken.
            delay = start + (n + 1) * step_seconds - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield pb.TranscribeRequest(audio=pcm[i : i + step])

    first: float | None = None
    finals: dict[int, str] = {}
    async for response in srv.stub.Transcribe(real_time(), timeout=seconds + 60):
        if response.WhichOneof("event") == "segment":
            if first is None:
                first = time.perf_counter() - start
            if response.segment.final:
                finals[response.segment.segment_id] = response.segment.text
    assert first is not None
    assert first < 0.1 * seconds + 3.0, first
    assert sorted(finals) == list(range(len(finals)))
    live_text = "".join(finals[i] for i in sorted(finals))
    one_shot_wer = wer(reference, one_shot_text)
    live_wer = wer(reference, live_text)
    assert live_wer <= one_shot_wer + 0.01, (live_wer, one_shot_wer, live_text)
