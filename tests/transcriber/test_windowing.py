"""The windowed file pipeline: cuts at pauses, bounded buffers, one-shot accuracy."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.transcriber.conftest import Audio, wer
from transcriber.asr import DecodeOptions, SpeechRecognizer
from transcriber.audio import SAMPLE_RATE
from transcriber.models import ModelRegistry
from transcriber.windowing import Event, LanguageEvent, SegmentEvent, WindowedTranscriber, find_cut

MIT_GRANT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files (the Software), to deal in the Software "
    "without restriction, including without limitation the rights to use, copy, modify, merge, "
    "publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons "
    "to whom the Software is furnished to do so, subject to the following conditions: The above "
    "copyright notice and this permission notice shall be included in all copies or substantial "
    "portions of the Software."
)


def test_find_cut_prefers_a_pause(jfk_audio: Audio) -> None:
    def gap(seconds: float) -> Audio:
        return np.zeros(int(seconds * SAMPLE_RATE), np.float32)

    audio = np.concatenate([jfk_audio, gap(0.3), jfk_audio, gap(1.0), jfk_audio])
    cut = find_cut(audio[: 30 * SAMPLE_RATE], 20 * SAMPLE_RATE)
    # The long pause runs from about 22.3 s (plus jfk's own trailing quiet) to 23.3 s.
    assert 21.5 * SAMPLE_RATE <= cut <= 23.6 * SAMPLE_RATE


def test_find_cut_without_speech_takes_the_quietest_spot() -> None:
    rng = np.random.default_rng(1)
    tone = (0.3 * np.sin(np.arange(30 * SAMPLE_RATE) * 2 * np.pi * 220 / SAMPLE_RATE)).astype(
        np.float32
    )
    audio = tone + rng.normal(0, 0.01, tone.size).astype(np.float32)
    audio[24 * SAMPLE_RATE : 25 * SAMPLE_RATE] = 0  # the only quiet second, late in the window
    cut = find_cut(audio, 20 * SAMPLE_RATE)
    assert 24 * SAMPLE_RATE <= cut <= 25 * SAMPLE_RATE


def test_find_cut_never_before_minimum(jfk_audio: Audio) -> None:
    audio = np.concatenate([jfk_audio, jfk_audio, jfk_audio])[: 30 * SAMPLE_RATE]
    cut = find_cut(audio, 20 * SAMPLE_RATE)
    assert 20 * SAMPLE_RATE <= cut <= audio.size
    assert find_cut(audio[:1000], 20 * SAMPLE_RATE) == 1000


@pytest.fixture(scope="module")
def speech(audio_dir: Path, jfk_audio: Audio, transcripts: dict[str, Any]) -> tuple[Audio, str]:
    from faster_whisper import decode_audio

    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([mit, gap, jfk_audio, gap]).astype(np.float32)
    return audio, MIT_GRANT + " " + transcripts["jfk.flac"]["text"]


@pytest.mark.slow
def test_windows_match_one_shot(registry: ModelRegistry, speech: tuple[Audio, str]) -> None:
    audio, reference = speech
    recognizer = registry.get()
    options = DecodeOptions(language="en", beam_size=1)
    one_shot = recognizer.transcribe(audio, options)
    one_shot_text = " ".join(s.text for s in one_shot.segments)

    events: list[Event] = []
    largest_chunk = 0

    def feed() -> Any:
        nonlocal largest_chunk
        for i in range(0, audio.size, SAMPLE_RATE):
            largest_chunk = max(largest_chunk, audio[i : i + SAMPLE_RATE].size)
            yield audio[i : i + SAMPLE_RATE]

    # 20 s windows force cuts in the middle of the licence text.
    windows = WindowedTranscriber(
        recognizer, options, emit=events.append, cancel=threading.Event(), window_seconds=20.0
    )
    transcript = windows.run(feed())
    windowed_text = " ".join(s.text for s in transcript.segments)

    assert isinstance(events[0], LanguageEvent)
    segs = [e for e in events if isinstance(e, SegmentEvent)]
    assert [e.segment_id for e in segs] == list(range(len(segs)))
    starts = [e.segment.start for e in segs]
    assert starts == sorted(starts) and segs[-1].segment.end <= audio.size / SAMPLE_RATE + 0.5
    assert transcript.audio_seconds == pytest.approx(audio.size / SAMPLE_RATE)
    assert wer(reference, windowed_text) <= wer(reference, one_shot_text) + 0.01, (
        windowed_text,
        one_shot_text,
    )


def test_no_time_lies_past_the_audio() -> None:
    # Whisper reads a short window padded to 30 s and may time its last words
    # in the padding (seen: 0.9 s past the end of a 2.7 s tail window).
    word = SimpleNamespace(start=2.0, end=3.6, word=" country.", probability=0.9)
    segment = SimpleNamespace(start=0.0, end=3.64, text=" for your country.", words=[word])
    info = SimpleNamespace(language="en", language_probability=1.0)
    model = SimpleNamespace(model=None, transcribe=lambda *_, **__: (iter([segment]), info))
    recognizer = SpeechRecognizer(model, name="fake", multilingual=False)
    audio = np.zeros(int(2.7 * SAMPLE_RATE), np.float32)
    got = list(recognizer.transcribe(audio, DecodeOptions(), offset=38.8).segments)
    assert [(s.start, s.end) for s in got] == [(38.8, pytest.approx(41.5))]
    assert [(w.start, w.end) for w in got[0].words] == [(40.8, pytest.approx(41.5))]
