"""The multilingual base model, and live PCM with local agreement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, encode, wer
from transcriber.models import BASE_MODEL_SHA256, join_base_model
from transcriber.v1 import transcriber_pb2 as pb

pytestmark = pytest.mark.slow


def test_base_model_is_joined_once_and_verified(tmp_path: Path) -> None:
    target = join_base_model(tmp_path)
    assert (target / "model.bin").stat().st_size == 2 * 72608766
    assert (target / "model.bin.sha256").read_text().strip() == BASE_MODEL_SHA256
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert join_base_model(tmp_path) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime  # not joined again


async def test_base_detects_german(
    start_server: ServerFactory, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    from faster_whisper import decode_audio

    srv = await start_server()
    models = {m.name: m for m in (await srv.stub.ListModels(pb.ListModelsRequest())).models}
    assert models["base"].multilingual and not models["base"].is_default
    german = decode_audio(str(audio_dir / "multilingual.mp3"))[31 * 16000 : 45 * 16000]
    reply = await srv.stub.TranscribeFile(
        pb.TranscribeFileRequest(
            config=pb.TranscriptionConfig(model="base"),
            audio=encode(german.astype(np.float32), container="ogg", codec="libopus"),
        ),
        timeout=60,
    )
    assert reply.language.language == "de"
    assert 0.5 < reply.language.probability <= 1.0
    assert reply.done.model == "base"
    text = reply.done.formatted_text.lower()
    assert "software" in text or "erlaubnis" in text or "kosten" in text, text


async def test_live_pcm_local_agreement(
    start_server: ServerFactory, jfk_audio: Audio, transcripts: dict[str, Any]
) -> None:
    srv = await start_server()
    rate = 48000  # not 16 kHz, so the stream is resampled
    pcm = (np.clip(np.repeat(jfk_audio, 3), -1, 1) * 32767).astype("<i2").tobytes()
    step = rate * 2 // 4  # 250 ms

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=rate)
        )
        for i in range(0, len(pcm), step):
            yield pb.TranscribeRequest(audio=pcm[i : i + step])
            await asyncio.sleep(0.25 / 3)  # three times real time keeps the test short

    finals: dict[int, pb.Segment] = {}
    partials = 0
    done = None
    async for r in srv.stub.Transcribe(requests(), timeout=60):
        kind = r.WhichOneof("event")
        if kind == "segment":
            seg = r.segment
            if seg.final:
                assert seg.segment_id not in finals
                finals[seg.segment_id] = seg
            else:
                partials += 1
                assert seg.segment_id == len(finals)  # replaced by the next final
        elif kind == "done":
            done = r.done
    assert partials >= 1 and len(finals) >= 2
    assert sorted(finals) == list(range(len(finals)))
    text = " ".join(finals[i].text for i in sorted(finals))
    assert wer(transcripts["jfk.flac"]["text"], text) <= 0.10, text
    assert done is not None and done.segment_count == len(finals)
    assert done.audio_duration_seconds == pytest.approx(11.0, abs=0.2)
