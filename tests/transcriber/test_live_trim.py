"""A live stream's buffer is trimmed in a pause, never through a word.

Seen in the real-time bench on base: at one stream, the buffer grew past
15 s and was cut at the end of the last committed word, "distribute,". Its
timing was a guess a little late, the cut took the start of "sublicense"
with it, and the passes after it heard "and or sell copies" first and
committed it: the word was lost for good. Replayed here with that run's
schedule (the audio each pass found), so it does not depend on the load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.transcriber.conftest import Audio, normalise
from transcriber import live
from transcriber.asr import DecodeOptions, Word
from transcriber.audio import SAMPLE_RATE
from transcriber.hallucinations import is_anomalous
from transcriber.live import LiveTranscriber
from transcriber.models import ModelRegistry
from transcriber.windowing import find_cut

# Seconds of audio that arrived before each pass in that run.
_SCHEDULE = [1.0, 1.0, 1.2, 1.2, 1.2, 1.4, 1.4, 1.4, 1.6, 1.6, 2.0, 2.0]
_SCHEDULE += [2.2, 1.2, 1.4, 1.4, 1.4, 1.6, 1.8, 1.8]


class _NoTime:
    """Every pass seems to take no time, so the schedule alone sets the steps."""

    @staticmethod
    def monotonic() -> float:
        return 0.0


@pytest.mark.slow
def test_trimming_the_buffer_loses_no_word(
    registry: ModelRegistry, audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faster_whisper import decode_audio

    audio = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    audio = np.concatenate([audio, np.zeros(SAMPLE_RATE // 2, np.float32)])
    monkeypatch.setattr(live, "time", _NoTime)
    cuts: list[float] = []
    stream = LiveTranscriber(
        registry.get("base"),
        DecodeOptions(language="en"),
        emit=lambda _: None,
        cancel=threading.Event(),
        min_chunk_seconds=1.0,
    )
    trim = stream._trim

    def watched_trim() -> None:
        before = stream._offset
        trim()
        if stream._offset != before:
            cuts.append(stream._offset)

    monkeypatch.setattr(stream, "_trim", watched_trim)

    def arriving() -> Iterator[Audio]:
        i = 0
        for seconds in _SCHEDULE:
            n = int(seconds * SAMPLE_RATE)
            yield audio[i : i + n]
            i += n
        yield audio[i:]

    text = normalise("".join(s.text for s in stream.run(arriving()).segments))
    assert cuts, "the buffer was never trimmed: the test no longer exercises a cut"
    assert "distribute sublicense and" in text, text
    assert "all copies or substantial portions of the software" in text, text
    # The fading "software" is not read again as a word of its own ("here.").
    assert text.endswith("portions of the software"), text


def test_find_cut_stays_within_its_bounds(jfk_audio: Audio) -> None:
    lo, hi = 3 * SAMPLE_RATE, 6 * SAMPLE_RATE
    cut = find_cut(jfk_audio, lo, hi)
    assert lo <= cut <= hi
    # Within the bounds it still prefers a pause: quieter than the speech around it.
    frame = jfk_audio[cut - 800 : cut + 800]
    around = jfk_audio[lo:hi]
    assert np.sqrt(np.mean(frame**2)) < 0.5 * np.sqrt(np.mean(around**2))


def _word(text: str, start: float, end: float, probability: float) -> Word:
    return Word(start, end, text, probability)


def test_anomalous_words_are_whispers_own_test() -> None:
    # The "here." base made up over the fading end of "software".
    assert is_anomalous([_word(" here.", 28.9, 29.0, 0.04)])
    # The "you" it made up over the silence after it.
    assert is_anomalous([_word(" you", 29.0, 29.98, 0.03)])
    # A long word over a pause, and a burst of too-short ones.
    assert is_anomalous([_word(" so", 1.0, 4.5, 0.5)])
    assert is_anomalous([_word(" a", t, t + 0.02, 0.9) for t in (1.0, 1.1, 1.2, 1.3)])
    # A real last phrase, one word of it unsure.
    phrase = [
        _word(" your", 10.0, 10.2, 0.9),
        _word(" country.", 10.2, 10.7, 0.1),
    ]
    assert not is_anomalous(phrase)
    assert not is_anomalous([_word(" .", 1.0, 1.01, 0.01)])  # punctuation is not a word
