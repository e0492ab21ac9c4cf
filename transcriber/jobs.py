"""One transcription job, from a validated request to a finished transcript.

Synchronous: it runs on a worker thread, pulls bytes from a :class:`ByteFeed`
filled by the transport, pushes events through a callback, and stops with
:class:`Cancelled` soon after ``cancel`` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from opentelemetry import trace

from transcriber.asr import LANGUAGE_CODES, DecodeOptions, SpeechRecognizer
from transcriber.audio import SAMPLE_RATE, AudioArray, AudioDecoder, ByteFeed, PcmResampler
from transcriber.config import TranscriberConfig
from transcriber.errors import (
    BadAudio,
    BadRequest,
    Cancelled,
    DeadlineTooShort,
    PaidSecondsExceeded,
)
from transcriber.formatting import OutputFormat, format_transcript
from transcriber.live import LiveTranscriber
from transcriber.models import ModelRegistry
from transcriber.paid import AudioEvent, PaidBudget, PaidGate
from transcriber.readahead import ReadAhead
from transcriber.windowing import Emit, Transcript, WindowedTranscriber, WorkCounters

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("voxmesh.transcriber")

MAX_PROMPT_CHARS = 1000
MAX_HOTWORDS_CHARS = 500
MIN_LIVE_RATE, MAX_LIVE_RATE = 8000, 48000
# Live PCM is drained from the feed in reads of at most this many bytes.
_LIVE_READ = 256 * 1024
# Before the first window and at the paid limit, how long to let the decoder
# reach the end of the input first, so the exact duration is reported before
# any text and before the pause.
_SETTLE_SECONDS = 2.0
# Containers whose header states the exact length of the audio (a sample
# count or a track duration written by the muxer). MP3's is estimated from
# the bit rate, OGG has none: their duration is reported once decoded.
_EXACT_HEADER_DURATION = frozenset({"wav", "flac", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})


@dataclass(frozen=True)
class JobRequest:
    """What the caller asked for, before validation (transport-free)."""

    language: str = ""
    translate: bool = False
    word_timestamps: bool = False
    output_format: OutputFormat = OutputFormat.TEXT
    live: bool = False
    sample_rate_hz: int = 0
    initial_prompt: str = ""
    hotwords: str = ""
    beam_size: int = 0
    model: str = ""
    #: Seconds of audio paid for; 0: no limit.
    paid_seconds: float = 0.0


@dataclass(frozen=True)
class JobSpec:
    """A validated request."""

    model: str
    options: DecodeOptions
    output_format: OutputFormat
    live: bool
    sample_rate_hz: int
    paid_seconds: float = 0.0


@dataclass(frozen=True)
class JobOutcome:
    transcript: Transcript
    processing_seconds: float
    model: str
    device: str
    formatted_text: str
    #: Audio handed to Whisper (at most the seconds paid for).
    transcribed_seconds: float = 0.0


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def validate(request: JobRequest, registry: ModelRegistry, config: TranscriberConfig) -> JobSpec:
    """Check every field before any work starts; raises BadRequest naming the field."""
    model = request.model or registry.default_name
    # Caller text is never echoed whole: a huge value would overflow the
    # status trailers (gRPC caps metadata at 16 KiB) and lose the ErrorInfo.
    if len(model) > 64 or not registry.has(model):
        raise BadRequest("model", f"unknown model {_short(model)}; ListModels lists them")
    multilingual = registry.multilingual(model)
    language = request.language.strip().lower()
    if language in ("", "auto"):
        language = ""
    elif len(language) > 8 or language not in LANGUAGE_CODES:
        raise BadRequest(
            "language", f"{_short(request.language)} is not an ISO 639-1 code Whisper knows"
        )
    if not multilingual and language not in ("", "en"):
        raise BadRequest("language", f"model {model!r} is English-only")
    if request.translate and not multilingual:
        raise BadRequest("task", f"model {model!r} is English-only and cannot translate")
    if request.beam_size and not 1 <= request.beam_size <= 10:
        raise BadRequest("beam_size", "beam_size must be 1 to 10 (0: server default)")
    if len(request.initial_prompt) > MAX_PROMPT_CHARS:
        raise BadRequest("initial_prompt", f"initial_prompt is over {MAX_PROMPT_CHARS} characters")
    if len(request.hotwords) > MAX_HOTWORDS_CHARS:
        raise BadRequest("hotwords", f"hotwords is over {MAX_HOTWORDS_CHARS} characters")
    if request.live and not MIN_LIVE_RATE <= request.sample_rate_hz <= MAX_LIVE_RATE:
        raise BadRequest(
            "sample_rate_hz",
            f"sample_rate_hz must be {MIN_LIVE_RATE} to {MAX_LIVE_RATE} for live PCM",
        )
    if not 0.0 <= request.paid_seconds <= 1e7:  # also refuses NaN
        raise BadRequest("paid_seconds", "paid_seconds must be 0 (no limit) or positive")
    options = DecodeOptions(
        language=language or ("en" if not multilingual else None),
        task="translate" if request.translate else "transcribe",
        beam_size=request.beam_size or config.beam_size,
        word_timestamps=request.word_timestamps,
        initial_prompt=request.initial_prompt.strip() or None,
        hotwords=request.hotwords.strip() or None,
    )
    return JobSpec(
        model,
        options,
        request.output_format,
        request.live,
        request.sample_rate_hz,
        request.paid_seconds,
    )


class _PcmSource:
    """Live PCM from the feed, resampled; reports the exact duration when the input ends."""

    def __init__(self, feed: ByteFeed, resampler: PcmResampler, emit: Emit) -> None:
        self._feed = feed
        self._resampler = resampler
        self._emit = emit
        self.samples = 0

    def __iter__(self) -> Iterator[AudioArray]:
        carry = b""
        while data := self._feed.read(_LIVE_READ):
            data = carry + data
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            yield from self._counted(self._resampler.push(data[:usable]))
        yield from self._counted(self._resampler.flush())
        self._emit(AudioEvent(self.samples / SAMPLE_RATE, final=True))

    def _counted(self, chunk: AudioArray) -> Iterator[AudioArray]:
        if chunk.size:
            self.samples += chunk.size
            yield chunk


def run_job(
    spec: JobSpec,
    feed: ByteFeed,
    *,
    registry: ModelRegistry,
    config: TranscriberConfig,
    cancel: threading.Event,
    emit: Emit,
    deadline_at: float | None = None,
    counters: WorkCounters | None = None,
    clock: Callable[[], float] = time.monotonic,
    budget: PaidBudget | None = None,
) -> JobOutcome:
    """Transcribe what arrives in ``feed`` (until it finishes) and return the outcome.

    Raises PaidSecondsExceeded, after the segments of the paid audio were
    emitted, when the audio outlasts ``budget`` and no raise came in time.
    """
    started = clock()
    recognizer = registry.get(spec.model)
    if budget is None:
        budget = PaidBudget(spec.paid_seconds)
        budget.close()  # nobody can raise it
    job = _Job(spec, feed, recognizer, config, cancel, emit, counters, budget)
    if spec.live:
        transcript, paid = job.live()
    else:
        transcript, paid = job.file(deadline_at, clock)
    if cancel.is_set():
        raise Cancelled()
    if paid.exceeded:
        raise PaidSecondsExceeded(budget.seconds, paid.passed_seconds)
    return JobOutcome(
        transcript=transcript,
        processing_seconds=clock() - started,
        model=recognizer.name,
        device=recognizer.device,
        formatted_text=format_transcript(transcript.segments, spec.output_format),
        transcribed_seconds=paid.passed_seconds,
    )


@dataclass
class _Job:
    """What one run_job call works with; its two modes."""

    spec: JobSpec
    feed: ByteFeed
    recognizer: SpeechRecognizer
    config: TranscriberConfig
    cancel: threading.Event
    emit: Emit
    counters: WorkCounters | None
    budget: PaidBudget

    def _gate(
        self, decoded_seconds: Callable[[], float], settle: Callable[[], object] | None = None
    ) -> PaidGate:
        return PaidGate(
            self.budget,
            wait_seconds=self.config.paid_wait_seconds,
            emit=self.emit,
            cancel=self.cancel,
            decoded_seconds=decoded_seconds,
            settle=settle,
        )

    def live(self) -> tuple[Transcript, PaidGate]:
        config = self.config
        live = LiveTranscriber(
            self.recognizer,
            self.spec.options,
            emit=self.emit,
            cancel=self.cancel,
            min_chunk_seconds=config.live_min_chunk_seconds,
            buffer_seconds=config.live_buffer_seconds,
            commit_seconds=config.live_commit_seconds,
            counters=self.counters,
            # s16le mono at the caller's rate.
            received_seconds=lambda: self.feed.received / (2 * self.spec.sample_rate_hz),
        )
        if not self.feed.peek_head(1):
            raise BadAudio("the upload has no bytes", reason="AUDIO_EMPTY")
        pcm = _PcmSource(self.feed, PcmResampler(self.spec.sample_rate_hz), self.emit)
        paid = self._gate(lambda: pcm.samples / SAMPLE_RATE)
        return live.run(paid.chunks(pcm)), paid

    def file(
        self, deadline_at: float | None, clock: Callable[[], float]
    ) -> tuple[Transcript, PaidGate]:
        config = self.config
        decoder = AudioDecoder(self.feed, max_seconds=config.max_audio_seconds, cancel=self.cancel)
        ahead: ReadAhead | None = None
        try:
            with _tracer.start_as_current_span("transcriber.decode.open") as span:
                info = decoder.open()
                span.set_attribute("transcriber.container", str(info.container))
                span.set_attribute("transcriber.codec", str(info.codec))
            log.debug("decoding %s/%s, %s s", info.container, info.codec, info.duration_seconds)
            from_header = (
                info.duration_seconds is not None and info.container in _EXACT_HEADER_DURATION
            )
            if from_header:
                self.emit(AudioEvent(float(info.duration_seconds or 0.0), final=True))
            if deadline_at is not None and info.duration_seconds is not None:
                _check_deadline(info.duration_seconds, config, deadline_at - clock())
            emit = self.emit
            ahead = decoding = ReadAhead(
                decoder.chunks(),
                max_samples=int(config.decode_ahead_seconds * SAMPLE_RATE),
                on_end=(
                    (lambda _: None)
                    if from_header
                    else (lambda n: emit(AudioEvent(n / SAMPLE_RATE, final=True)))
                ),
            ).start()
            # Decoding is ~100x faster than real time, but competes with the
            # first window for the cores: give it a moment to reach the end
            # (the rest of a long upload may not be here yet, so only a moment).
            settle = partial(decoding.wait_done, _SETTLE_SECONDS)
            paid = self._gate(lambda: decoding.decoded / SAMPLE_RATE, settle)
            windows = WindowedTranscriber(
                self.recognizer,
                self.spec.options,
                emit=self.emit,
                cancel=self.cancel,
                window_seconds=config.window_seconds,
                counters=self.counters,
                before_first_window=None if from_header else settle,
            )
            return windows.run(paid.chunks(ahead)), paid
        finally:
            # The decoder thread may still wait for bytes (the job stopped
            # early): wake it, and close the container once it let go of it.
            if ahead is None or ahead.stop(self.feed.abort):
                decoder.close()


def _check_deadline(seconds: float, config: TranscriberConfig, remaining: float) -> None:
    expected = seconds * config.realtime_factor
    if remaining < expected:
        raise DeadlineTooShort(
            f"{seconds:.0f} s of audio needs about {expected:.1f} s; "
            f"the deadline leaves {max(remaining, 0.0):.1f} s",
            metadata={
                "expected_seconds": f"{expected:.1f}",
                "remaining_seconds": f"{max(remaining, 0.0):.1f}",
            },
        )


__all__ = ["BadRequest", "JobOutcome", "JobRequest", "JobSpec", "run_job", "validate"]
