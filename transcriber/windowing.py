"""File mode: cut a growing recording into windows at pauses and transcribe each.

Whisper reads 30 seconds at a time anyway. Cutting at a pause near that
length, and carrying audio Whisper left unread into the next window (as
faster-whisper's seek does between its own windows), keeps the result as
accurate as a one-shot run while segments of a long file come out long before
its upload ends, and no more than one window of decoded audio is held.

Windows are not primed with the text of the one before: a plain-text prompt
(faster-whisper's own carries timestamp tokens) makes Whisper answer without
timestamps, in one segment per window, and skip sentences it thinks it has
already heard; on 5 minutes of speech that doubled tiny.en's WER.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps
from opentelemetry import trace

from transcriber.asr import DecodeOptions, Language, Segment, SpeechRecognizer, with_language
from transcriber.audio import SAMPLE_RATE, AudioArray
from transcriber.errors import Cancelled
from transcriber.hallucinations import is_stock_phrase
from transcriber.paid import AudioEvent

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("voxmesh.transcriber")

# Pauses as short as 200 ms are enough to cut between words; the padding
# keeps VAD from shaving the quiet ends of words.
_CUT_VAD = VadOptions(min_silence_duration_ms=200, speech_pad_ms=100)
# Whisper sometimes ends a window early, leaving its last words out (tiny.en
# does near the window's end). Audio this long after the last segment is
# carried into the next window, as faster-whisper's own seek does (it reads
# one window per call: see OneWindowWhisperModel). At 2 s, words were lost
# (WER 0.093 vs 0.062 on the benchmark's 71 s); at 0.5 s, windows were added.
_UNREAD_SECONDS = 1.0
_CUT_MARGIN = SAMPLE_RATE


@dataclass(frozen=True)
class LanguageEvent:
    language: Language


@dataclass(frozen=True)
class SegmentEvent:
    segment_id: int
    segment: Segment


@dataclass(frozen=True)
class LagEvent:
    """A live stream's backlog after a pass: audio received that no pass has read yet.

    For the service's admission and metrics; never sent to the caller.
    """

    seconds: float


Event = LanguageEvent | SegmentEvent | AudioEvent | LagEvent
Emit = Callable[[Event], None]


@dataclass
class WorkCounters:
    """Progress counters a test or a metric can watch; shared by every job."""

    windows: int = 0
    segments: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, windows: int = 0, segments: int = 0) -> None:
        with self._lock:
            self.windows += windows
            self.segments += segments


@dataclass(frozen=True)
class Transcript:
    """Everything a finished job produced."""

    language: Language
    segments: tuple[Segment, ...]
    audio_seconds: float


# has_speech listens to this much at a time, newest first, and stops at the
# first speech: on speech it costs a sixth of VAD over a whole window.
_SPEECH_PROBE = 5 * SAMPLE_RATE


def has_speech(audio: AudioArray) -> bool:
    """Whether VAD hears any speech in ``audio``."""
    for end in range(audio.size, 0, -_SPEECH_PROBE):
        # A last piece shorter than a probe is read with the one after it.
        start = 0 if end < 2 * _SPEECH_PROBE else end - _SPEECH_PROBE
        if get_speech_timestamps(audio[start:end], _CUT_VAD, sampling_rate=SAMPLE_RATE):
            return True
        if start == 0:
            break
    return False


def find_cut(audio: AudioArray, min_samples: int, max_samples: int | None = None) -> int:
    """Where to cut: in the middle of the longest pause between min_samples and max_samples.

    Falls back to the quietest 100 ms there when VAD finds no pause (or no
    speech: music, a tone). max_samples defaults to the end of ``audio``.
    """
    n = audio.size if max_samples is None else min(audio.size, max_samples)
    if n <= min_samples:
        return n
    # Only a pause whose middle lies in the range can be chosen, so VAD reads
    # just that (a third of a window, not all of it: ~3x less work). The
    # margins let a pause that begins or ends a little outside count at full length.
    start = max(0, min_samples - _CUT_MARGIN)
    stop = min(audio.size, n + _CUT_MARGIN)
    speech = [
        {"start": s["start"] + start, "end": s["end"] + start}
        for s in get_speech_timestamps(audio[start:stop], _CUT_VAD, sampling_rate=SAMPLE_RATE)
    ]
    best, best_len = -1, 0
    gaps = [(speech[i]["end"], speech[i + 1]["start"]) for i in range(len(speech) - 1)]
    if speech:
        gaps.append((speech[-1]["end"], stop))
        gaps.insert(0, (start, speech[0]["start"]))
    for gap_start, gap_end in gaps:
        mid = (gap_start + gap_end) // 2
        if min_samples <= mid <= n and gap_end - gap_start > best_len:
            best, best_len = mid, gap_end - gap_start
    if best > 0:
        return best
    frame = SAMPLE_RATE // 10
    tail = audio[min_samples : n - (n - min_samples) % frame]
    if tail.size < frame:
        return n
    energy = np.square(tail.reshape(-1, frame)).mean(axis=1)
    return min_samples + int(np.argmin(energy)) * frame + frame // 2


class WindowedTranscriber:
    """Transcribes 16 kHz chunks as they arrive, one window at a time."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        options: DecodeOptions,
        *,
        emit: Emit,
        cancel: threading.Event,
        window_seconds: float = 30.0,
        counters: WorkCounters | None = None,
        before_first_window: Callable[[], object] | None = None,
    ) -> None:
        self._recognizer = recognizer
        #: Runs once, right before the first Whisper call (the job lets the
        #: decoder reach the end of a note first, so its duration goes out
        #: before any text).
        self._before_first = before_first_window
        self._options = options
        self._emit = emit
        self._cancel = cancel
        self._window = int(window_seconds * SAMPLE_RATE)
        # Never cut in the first two thirds: short windows lose context.
        self._min_cut = self._window * 2 // 3
        self._counters = counters or WorkCounters()
        self._language: Language | None = None
        self._segments: list[Segment] = []
        self._buffer: list[AudioArray] = []
        self._buffered = 0
        self._start = 0  # sample index of the buffer's first sample

    def run(self, chunks: Iterable[AudioArray]) -> Transcript:
        for chunk in chunks:
            if self._cancel.is_set():
                raise Cancelled()
            self._buffer.append(chunk)
            self._buffered += chunk.size
            while self._buffered >= self._window:
                audio = self._take(self._window)
                with _tracer.start_as_current_span("transcriber.vad"):
                    cut = find_cut(audio, self._min_cut)
                self._push_back(audio[cut:])
                read = self._transcribe(audio[:cut])
                self._push_back(audio[read:cut])
        while self._buffered:
            audio = self._take(min(self._buffered, self._window))
            read = self._transcribe(audio)
            self._push_back(audio[read:])
        total = self._start / SAMPLE_RATE
        language = self._language or Language(self._options.language or "en", 0.0)
        return Transcript(language, tuple(self._segments), total)

    def _take(self, n: int) -> AudioArray:
        audio = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer = [audio[n:]] if audio.size > n else []
        self._buffered = audio.size - n if audio.size > n else 0
        return audio[:n]

    def _push_back(self, rest: AudioArray) -> None:
        if rest.size:
            self._buffer.insert(0, rest)
            self._buffered += rest.size

    def _transcribe(self, audio: AudioArray) -> int:
        """Transcribe one window; return how many of its samples were read."""
        if self._cancel.is_set():
            raise Cancelled()
        offset = self._start / SAMPLE_RATE
        if audio.size < SAMPLE_RATE // 10:
            self._start += audio.size
            return audio.size  # a sliver left by a cut; nothing Whisper could read
        if not has_speech(audio):
            # Silence, music, a tone, noise: Whisper would fill them with
            # stock phrases ("Thank you for watching!"); nothing is said.
            self._start += audio.size
            self._counters.add(windows=1)
            return audio.size
        if self._before_first is not None:
            self._before_first()
            self._before_first = None
        options = self._options
        if self._language is not None:
            options = with_language(options, self._language.code)
        seconds = audio.size / SAMPLE_RATE
        # One span per inference window: where the time of a long note went.
        with _tracer.start_as_current_span(
            "transcriber.window",
            attributes={
                "transcriber.audio_seconds": seconds,
                "transcriber.offset_seconds": offset,
                "transcriber.model": self._recognizer.name,
                "transcriber.device": self._recognizer.device,
            },
        ) as span:
            started = time.monotonic()
            result = self._recognizer.transcribe(audio, options, offset=offset, cancel=self._cancel)
            if self._language is None:
                self._language = result.language
                self._emit(LanguageEvent(result.language))
            last_end = offset
            for segment in result.segments:
                last_end = max(last_end, segment.end)
                if is_stock_phrase(segment.text):
                    continue
                self._segments.append(segment)
                self._counters.add(segments=1)
                self._emit(SegmentEvent(len(self._segments) - 1, segment))
                if self._cancel.is_set():
                    raise Cancelled()
            span.set_attribute("transcriber.rtf", (time.monotonic() - started) / seconds)
        self._counters.add(windows=1)
        read = audio.size
        unread = int((offset + seconds - last_end) * SAMPLE_RATE)
        # Only after real text, and only the tail: a window that yields nothing
        # (silence, music) or almost nothing is not read again, so every pass
        # moves on by at least a third of a window.
        if last_end > offset and unread > _UNREAD_SECONDS * SAMPLE_RATE:
            read = max(audio.size - unread, self._window // 3)
        read = min(read, audio.size)
        self._start += read
        log.debug("window at %.1fs (%.1fs) done", offset, read / SAMPLE_RATE)
        return read
