"""The speech-recognition core: numpy audio in, dataclasses out.

Synchronous and free of gRPC; the service runs it on a worker thread. It
wraps one loaded faster-whisper model and shifts timestamps by the offset of
the piece of audio it was given, so callers can feed a long recording window
by window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)


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
    ) -> WindowResult:
        """Transcribe up to about 30 s of 16 kHz mono audio starting at ``offset`` seconds.

        ``prompt`` (the text before this window) conditions the decoder as
        faster-whisper's own condition_on_previous_text does across its
        30-second windows; it follows the caller's initial prompt.
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
        )
        detected = Language(
            info.language,
            1.0 if (language is not None or not self.multilingual) else info.language_probability,
        )

        def shifted() -> Iterator[Segment]:
            for seg in segments:
                words = tuple(
                    Word(w.start + offset, w.end + offset, w.word, w.probability)
                    for w in (seg.words or ())
                )
                yield Segment(seg.start + offset, seg.end + offset, seg.text, words)

        return WindowResult(detected, shifted())


def with_language(options: DecodeOptions, language: str) -> DecodeOptions:
    return replace(options, language=language)
