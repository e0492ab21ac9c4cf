"""The speech-recognition core: numpy audio in, dataclasses out.

Synchronous and free of gRPC; the service runs it on a worker thread. It
wraps one loaded faster-whisper model and shifts timestamps by the offset of
the piece of audio it was given, so callers can feed a long recording window
by window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES

from transcriber.audio import SAMPLE_RATE

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)
# faster-whisper's default schedule: retry at these temperatures when a
# decode looks like a hallucination (repetitive or improbable).
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode; every field maps to a faster-whisper transcribe argument."""

    #: ISO 639-1 code, or None to detect it.
    language: str | None = None
    #: "transcribe" or "translate".
    task: str = "transcribe"
    beam_size: int = 1
    word_timestamps: bool = False
    #: Caller's priming text (names, spelling).
    initial_prompt: str | None = None
    hotwords: str | None = None


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    #: False for a live hypothesis that may still change.
    final: bool = True


@dataclass(frozen=True)
class Language:
    code: str
    probability: float


@dataclass(frozen=True)
class WindowResult:
    """The language Whisper settled on and its lazy segments for one window."""

    language: Language
    segments: Iterator[Segment] = field(repr=False)


class _SecondWindow(Exception):
    """Raised inside faster-whisper's segment generator to end it after one window."""


class _WindowGuard(threading.local):
    armed = False


_window_guard = _WindowGuard()


class OneWindowWhisperModel(WhisperModel):  # type: ignore[misc]  # untyped package
    """A WhisperModel whose ``transcribe`` reads one window when called by SpeechRecognizer.

    faster-whisper has no option for this: its generator encodes the next
    window right after yielding the last segment of this one. The guard is
    armed (per thread) once a segment has been yielded, so the next encode
    ends the generator instead; language detection, which encodes before
    any segment, is unaffected.
    """

    def encode(self, features: npt.NDArray[np.float32]) -> ctranslate2.StorageView:
        if _window_guard.armed:
            raise _SecondWindow()
        return super().encode(features)


class SpeechRecognizer:
    """One loaded Whisper model, safe to call from several threads at once."""

    def __init__(self, model: WhisperModel, *, name: str, multilingual: bool) -> None:
        self._model = model
        self.name = name
        self.multilingual = multilingual
        self.device = str(getattr(model.model, "device", "cpu"))

    def transcribe(
        self,
        audio: npt.NDArray[np.float32],
        options: DecodeOptions,
        *,
        offset: float = 0.0,
        prompt: str | None = None,
        fallback: bool = True,
        max_new_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> WindowResult:
        """Transcribe one window (up to 30 s) of 16 kHz mono audio starting at ``offset`` seconds.

        ``prompt`` (the text before this window) conditions the decoder as
        faster-whisper's own condition_on_previous_text does across its
        30-second windows; it follows the caller's initial prompt.
        ``fallback=False`` decodes once, greedily, instead of retrying at
        higher temperatures when the text looks repetitive; with
        ``max_new_tokens`` it bounds the cost of a pass over short audio.
        ``cancel`` is the caller's stop flag: a recognizer that queues the
        window (batching) stops waiting when it is set; this one starts at
        once, and the caller checks the flag between segments.
        """
        language = options.language
        if not self.multilingual:
            language = "en"
        parts = [p for p in (options.initial_prompt, prompt) if p]
        segments, info = self._model.transcribe(
            audio,
            language=language,
            task=options.task if self.multilingual else "transcribe",
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            initial_prompt=" ".join(parts) if parts else None,
            hotwords=options.hotwords or None,
            condition_on_previous_text=True,
            vad_filter=False,
            temperature=_TEMPERATURES if fallback else 0.0,
            max_new_tokens=max_new_tokens,
        )
        detected = Language(
            info.language,
            1.0 if (language is not None or not self.multilingual) else info.language_probability,
        )

        seconds = audio.size / SAMPLE_RATE

        def shifted() -> Iterator[Segment]:
            try:
                for seg in segments:
                    # faster-whisper would go on to a second 30-second window for
                    # the few words after its last timestamp, at the full cost of
                    # the encoder; the callers carry that tail into their next
                    # window themselves, so the first window is the last.
                    _window_guard.armed = True
                    yield window_segment(
                        seg.start,
                        seg.end,
                        seg.text,
                        [(w.start, w.end, w.word, w.probability) for w in seg.words or ()],
                        offset=offset,
                        seconds=seconds,
                    )
            except _SecondWindow:
                return
            finally:
                _window_guard.armed = False

        return WindowResult(detected, shifted())


def window_segment(
    start: float,
    end: float,
    text: str,
    words: Iterable[tuple[float, float, str, float]],
    *,
    offset: float,
    seconds: float,
) -> Segment:
    """A segment of a window read at ``offset`` s, in the recording's time.

    Whisper reads audio padded to 30 s and may place a last timestamp in the
    padding: no time lies past the window's own ``seconds`` of audio.
    """
    limit = offset + seconds

    def at(t: float) -> float:
        return min(t + offset, limit)

    placed = tuple(Word(at(s), at(e), word, p) for s, e, word, p in words)
    return Segment(at(start), at(end), text, placed)


def with_language(options: DecodeOptions, language: str) -> DecodeOptions:
    return replace(options, language=language)
