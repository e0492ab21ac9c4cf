"""No invented text: silence, tones and noise come back with no segments at all.

Whisper fills audio without speech with subtitle credits and sign-offs
("Thank you for watching!", "Продолжение следует..."); VAD skips such
windows and the known phrases are dropped where they stand alone, so
Done.segment_count is 0 and the gateway can say that no speech was found.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.transcriber.conftest import Audio, ServerFactory, encode
from transcriber.audio import SAMPLE_RATE
from transcriber.hallucinations import is_stock_phrase
from transcriber.v1 import transcriber_pb2 as pb

pytestmark = pytest.mark.slow

SECONDS = 30


def silence() -> Audio:
    return np.zeros(SECONDS * SAMPLE_RATE, np.float32)


def tones() -> Audio:
    """Half-second beeps of a melody, faded in and out: music-like, wordless."""
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) * 50)
    notes = [440.0, 523.25, 659.25, 880.0, 659.25, 523.25]
    beeps = [0.3 * fade * np.sin(2 * np.pi * notes[i % len(notes)] * t) for i in range(60)]
    return np.concatenate(beeps).astype(np.float32)


def noise() -> Audio:
    return (np.random.default_rng(16).standard_normal(SECONDS * SAMPLE_RATE) * 0.1).astype(
        np.float32
    )


SIGNALS = {"silence": silence, "tones": tones, "noise": noise}


@pytest.mark.parametrize("signal", list(SIGNALS))
async def test_no_speech_yields_no_text(start_server: ServerFactory, signal: str) -> None:
    srv = await start_server()
    data = encode(SIGNALS[signal](), "ogg", "libopus", rate=48000, layout="mono")
    for model, language in (("base", ""), ("base", "ru"), ("base", "en"), ("tiny.en", "en")):
        reply = await srv.stub.TranscribeFile(
            pb.TranscribeFileRequest(
                config=pb.TranscriptionConfig(model=model, language=language), audio=data
            ),
            timeout=120,
        )
        texts = [s.text for s in reply.segments]
        assert reply.done.segment_count == 0, (signal, model, language, texts)
        assert not texts and not reply.done.formatted_text.strip()
        assert reply.done.audio_duration_seconds == pytest.approx(SECONDS, abs=0.1)


@pytest.mark.parametrize(
    "text",
    [
        "Thank you for watching!",
        " Продолжение следует...",
        "Субтитры сделал DimaTorzok",
        "Субтитры создавал DimaTorzok",
        "Редактор субтитров А.Семкин Корректор А.Егорова",
        "Subtitles by the Amara.org community",
        " . . .",
    ],
)
def test_stock_phrases_alone_are_dropped(text: str) -> None:
    assert is_stock_phrase(text)


@pytest.mark.parametrize(
    "text",
    [
        "Thank you.",
        "Thank you for watching the kids yesterday, it was kind of you.",
        "Продолжение следует завтра в девять утра на втором этаже, приходите все вместе с детьми.",
        "And so my fellow Americans",
    ],
)
def test_sentences_that_contain_them_stay(text: str) -> None:
    assert not is_stock_phrase(text)
