"""The end of a live stream: what the last pass leaves unread is read again, silence is not.

Whisper sometimes ends a pass early (an end-of-text or a single closing
timestamp with speech still after it). Mid-stream the next pass re-reads that
tail; at the end of the stream nothing does, so the last words were lost.
A recognizer that reads only a few seconds per pass makes that happen every
time, over real speech (VAD must hear it) and real silence.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from tests.transcriber.conftest import Audio
from transcriber.asr import DecodeOptions, Language, Segment, SpeechRecognizer, WindowResult, Word
from transcriber.audio import SAMPLE_RATE
from transcriber.live import LiveTranscriber
from transcriber.windowing import SegmentEvent


class EarlyStopRecognizer:
    """Knows the words of a recording and reads at most ``reach`` seconds per pass."""

    name = "early-stop"

    def __init__(self, script: list[Word], reach: float, noise: str = "") -> None:
        self.script = script
        self.reach = reach
        self.noise = noise
        self.passes: list[tuple[float, float]] = []

    def transcribe(
        self,
        audio: npt.NDArray[np.float32],
        options: DecodeOptions,
        *,
        offset: float = 0.0,
        **_: Any,
    ) -> WindowResult:
        end = offset + audio.size / SAMPLE_RATE
        self.passes.append((offset, end))
        stop = min(end, offset + self.reach)
        words = [w for w in self.script if w.start >= offset - 0.05 and w.end <= stop]
        if self.noise:
            # Punctuation alone after the words, as Whisper writes on silence.
            words += [Word(stop, stop, self.noise, 0.1)]

        def segments() -> Iterator[Segment]:
            if words:
                yield Segment(words[0].start, words[-1].end, "", tuple(words))

        return WindowResult(Language("en", 1.0), segments())


def _script(seconds: float) -> list[Word]:
    """A word every half second over the speech, named by its position."""
    return [
        Word(t, t + 0.4, f" w{i}", 0.9) for i, t in enumerate(np.arange(0.3, seconds - 0.5, 0.5))
    ]


def _run(recognizer: EarlyStopRecognizer, audio: Audio) -> str:
    live = LiveTranscriber(
        cast(SpeechRecognizer, recognizer),
        DecodeOptions(language="en"),
        emit=lambda _: None,
        cancel=threading.Event(),
        min_chunk_seconds=1.0,
    )
    step = SAMPLE_RATE // 5
    transcript = live.run(audio[i : i + step] for i in range(0, audio.size, step))
    return "".join(s.text for s in transcript.segments)


def test_the_last_pass_reads_what_an_early_stop_left(jfk_audio: Audio) -> None:
    script = _script(jfk_audio.size / SAMPLE_RATE)
    # Every pass stops 4 s after where it starts; mid-stream passes all start at 0.
    recognizer = EarlyStopRecognizer(script, reach=4.0)
    text = _run(recognizer, jfk_audio)
    assert text.split() == [w.word.strip() for w in script]


def test_silence_after_the_last_word_is_not_read_again(jfk_audio: Audio) -> None:
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    audio = np.concatenate([jfk_audio, silence])
    script = _script(jfk_audio.size / SAMPLE_RATE)
    recognizer = EarlyStopRecognizer(script, reach=60.0, noise=" . . .")
    text = _run(recognizer, audio)
    assert text.split() == [w.word.strip() for w in script]
    # Every pass reads from the stream's start: the 3 s of silence at the end
    # did not start a pass of its own.
    assert {offset for offset, _ in recognizer.passes} == {0.0}


def _commit_lags(audio: Audio, commit_seconds: float) -> tuple[list[float], str]:
    """Audio seconds that had arrived past each final segment's end when it was sent."""
    recognizer = EarlyStopRecognizer(_script(audio.size / SAMPLE_RATE), reach=60.0)
    fed = 0
    lags: list[float] = []

    def emit(event: Any) -> None:
        if isinstance(event, SegmentEvent) and event.segment.final:
            lags.append(fed / SAMPLE_RATE - event.segment.end)

    def chunks() -> Iterator[Audio]:
        nonlocal fed
        step = SAMPLE_RATE // 5
        for i in range(0, audio.size, step):
            fed = min(audio.size, i + step)
            yield audio[i : i + step]

    live = LiveTranscriber(
        cast(SpeechRecognizer, recognizer),
        DecodeOptions(language="en"),
        emit=emit,
        cancel=threading.Event(),
        min_chunk_seconds=1.0,
        commit_seconds=commit_seconds,
    )
    transcript = live.run(chunks())
    return lags, "".join(s.text for s in transcript.segments)


def test_commit_step_compares_hypotheses_that_far_apart(jfk_audio: Audio) -> None:
    script = [w.word.strip() for w in _script(jfk_audio.size / SAMPLE_RATE)]
    every_pass, text = _commit_lags(jfk_audio, 0.0)
    assert text.split() == script
    two_seconds, text = _commit_lags(jfk_audio, 2.0)
    assert text.split() == script  # the same words, committed later
    mid = len(every_pass) // 2
    assert sorted(two_seconds)[len(two_seconds) // 2] > sorted(every_pass)[mid]
