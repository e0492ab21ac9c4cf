"""Several streams' windows in one encoder and one decoder pass.

Each stream thread asks for one window at a time. Decoding windows together
costs less than one by one (tiny.en int8 on 2 cores: the decoder pass over 4
windows about half, the whole ~30 % less CPU; on a GPU far more), so a
:class:`BatchingRecognizer` hands windows to batcher threads (two) that run
what the streams have asked for together, as faster-whisper's
``BatchedInferencePipeline`` does for the chunks of one file: features
stacked, one ``encode``, one ``generate`` with a prompt per window, one
``align`` for the word timings, and faster-whisper's own helpers to split
and time the segments of each window.

Only the pass at temperature 0 is batched, over windows whose language is
known. A window that needs language detection, or whose pass fails
faster-whisper's checks (repetitive or improbable text) while the caller
allows the temperature fallback, goes through the plain
:class:`SpeechRecognizer` path, unchanged.

CTranslate2 batches prompts of one length only (``<|startoftranscript|>``
at one index), so file windows, which carry no prompt, share passes freely;
live passes, primed with their own previous text, share one only with passes
whose prompt has as many tokens.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, pad_or_trim

from transcriber.asr import (
    DecodeOptions,
    Language,
    Segment,
    SpeechRecognizer,
    WindowResult,
    window_segment,
)
from transcriber.audio import SAMPLE_RATE
from transcriber.errors import Cancelled

log = logging.getLogger(__name__)

# faster-whisper's transcribe defaults, which SpeechRecognizer relies on.
_DEFAULTS = inspect.signature(WhisperModel.transcribe).parameters
_PREPEND: str = _DEFAULTS["prepend_punctuations"].default
_APPEND: str = _DEFAULTS["append_punctuations"].default
_COMPRESSION_RATIO_THRESHOLD: float = _DEFAULTS["compression_ratio_threshold"].default
_LOG_PROB_THRESHOLD: float = _DEFAULTS["log_prob_threshold"].default
_NO_SPEECH_THRESHOLD: float = _DEFAULTS["no_speech_threshold"].default
_MAX_INITIAL_TIMESTAMP = 1.0
# A stream asks for its next window a while after its last result (VAD, audio
# decoding: 0.1-0.3 s on 2 busy cores). A gap longer than this is not between
# two windows of one pass (a live stream waiting for speech, a new job).
_LONGEST_GAP = 2.0
# Waits for a stream up to this multiple of its usual gap (plus the slack).
_GAP_SLACK = 2.0
_GAP_SLACK_SECONDS = 0.05
# A caller waiting for its batch looks at its cancel flag this often.
_CANCEL_POLL = 0.05

Raw = dict[str, Any]  # a faster-whisper segment dict: start, end, tokens, words


@dataclass
class BatchStats:
    """What the batcher did; a test or a metric reads it."""

    #: Encoder and decoder passes run, and the windows they decoded.
    batches: int = 0
    items: int = 0
    largest: int = 0
    #: Windows decoded in a batch and then re-run on the plain path (failed checks).
    rerun: int = 0
    #: Windows sent to the plain path at once (language detection, longer than 30 s).
    direct: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def batch(self, size: int) -> None:
        with self._lock:
            self.batches += 1
            self.items += size
            self.largest = max(self.largest, size)


@dataclass(eq=False)
class _Request:
    features: npt.NDArray[np.float32]  # (n_mels, 3000)
    frames: int  # of them, the window's own (not padding)
    seconds: float  # of audio: no time of the result lies past it
    tokenizer: Tokenizer
    suppress: list[int]
    prompt: list[int]
    #: Prompt plus new tokens allowed, as faster-whisper passes it to generate.
    max_length: int
    beam_size: int
    word_timestamps: bool
    fallback: bool
    thread: int
    done: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False
    #: Segments relative to the window, or None: run the plain path.
    segments: list[Raw] | None = None

    def key(self) -> tuple[object, ...]:
        # CTranslate2 wants <|startoftranscript|> at the same index in every
        # prompt of a batch (languages and tasks may differ), and aligns words
        # with one start sequence. Greedy results are cut to each window's own
        # token budget afterwards; beam search may end differently with
        # another budget, so it shares none.
        cap = _cap(len(self.prompt), self.max_length) if self.beam_size > 1 else 0
        start = tuple(self.tokenizer.sot_sequence) if self.word_timestamps else ()
        return (len(self.prompt), self.beam_size, cap, start)


def _average(old: float | None, new: float) -> float:
    """A running average that follows change quickly (a stream's pace changes with load)."""
    return new if old is None else (old + new) / 2


def _cap(prompt_length: int, max_length: int) -> int:
    """How many tokens CTranslate2's Whisper.generate may produce for this max_length."""
    start_step = prompt_length - 1 if prompt_length > 1 else 0
    return min(max_length // 2, max_length - start_step)


class _Aligned:
    """Stands in for the model in ``add_word_timestamps`` with one window's batched alignment.

    faster-whisper's ``add_word_timestamps`` aligns and then post-processes a
    list of windows, carrying the last word's time from one to the next as
    if they were consecutive. These windows are not, so the alignment runs
    once for the batch and the post-processing once per window.
    """

    def __init__(self, model: WhisperModel, alignment: list[dict[str, Any]]) -> None:
        self.frames_per_second = model.frames_per_second
        self._alignment = alignment

    def find_alignment(self, *_: object) -> list[list[dict[str, Any]]]:
        return [self._alignment]


class BatchingRecognizer(SpeechRecognizer):
    """A SpeechRecognizer that decodes concurrent callers' windows together."""

    def __init__(
        self,
        model: WhisperModel,
        *,
        name: str,
        multilingual: bool,
        max_batch: int = 8,
        workers: int = 2,
        max_wait: float = 2.0,
        wait_fraction: float = 0.5,
        rerun_below: float = _LOG_PROB_THRESHOLD,
    ) -> None:
        super().__init__(model, name=name, multilingual=multilingual)
        self.max_batch = max_batch
        #: Batches run at once. Two: a window that finds nothing to share a
        #: pass with does not wait for another's pass (on 2 cores two passes at
        #: once take no longer than one pass over both), while the windows that
        #: queue behind them still share one.
        self.workers = workers
        #: A batch waits for streams due back with their next window, up to
        #: wait_fraction of the last batch's duration (the pass it saves costs
        #: more) and never more than max_wait. A lone stream never waits.
        self.max_wait = max_wait
        self.wait_fraction = wait_fraction
        self._batch_seconds = 0.0
        #: A pass whose average log probability is below this fails the checks
        #: (faster-whisper's threshold; a test raises it to force a re-run).
        self._rerun_below = rerun_below
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        #: By caller thread: when its last batched result was ready, and how long
        #: it usually takes to ask again.
        self._served: dict[int, float] = {}
        self._gap: dict[int, float] = {}
        #: Any stream's: for one whose own gap is not known yet (its first windows).
        self._usual_gap: float | None = None
        self._tokenizers: dict[tuple[str, str], tuple[Tokenizer, list[int]]] = {}
        self._workers: list[threading.Thread] = []
        self._gathering = False
        self._closed = False

    def close(self) -> None:
        """Stop the batcher threads once the queue is empty; later windows go the plain path."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

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
        """As :meth:`SpeechRecognizer.transcribe`; ``cancel`` ends the wait for a batch early."""
        request = self._request(audio, options, prompt, fallback, max_new_tokens)
        if request is None:
            self.stats.add(direct=1)
        else:
            self._submit(request)
            while not request.done.wait(_CANCEL_POLL if cancel is not None else None):
                if cancel is not None and cancel.is_set():
                    request.abandoned = True
                    raise Cancelled()
            if request.segments is not None:
                language = Language(request.tokenizer.language_code, 1.0)
                return WindowResult(language, _shift(request, offset))
            self.stats.add(rerun=1)
        return super().transcribe(
            audio,
            options,
            offset=offset,
            prompt=prompt,
            fallback=fallback,
            max_new_tokens=max_new_tokens,
            cancel=cancel,
        )

    def _request(
        self,
        audio: npt.NDArray[np.float32],
        options: DecodeOptions,
        prompt: str | None,
        fallback: bool,
        max_new_tokens: int | None,
    ) -> _Request | None:
        """Everything a batch needs from one window, computed on the caller's thread.

        None: the window goes the plain path (its language is to be detected,
        it is longer than Whisper's 30 s, or the batcher is closed).
        """
        model = self._model
        if self._closed or not 0 < audio.size <= model.feature_extractor.n_samples:
            return None
        if self.multilingual and options.language is None:
            return None
        language = options.language if self.multilingual else "en"
        task = options.task if self.multilingual else "transcribe"
        try:
            tokenizer, suppress = self._tokenizer(task, language or "en")
        except ValueError:
            return None  # an unknown language: the plain path reports it
        features = model.feature_extractor(audio)
        frames = features.shape[-1] - 1
        if not 0 < frames <= model.feature_extractor.nb_max_frames:
            return None
        parts = [p for p in (options.initial_prompt, prompt) if p]
        previous = tokenizer.encode(" " + " ".join(parts).strip()) if parts else []
        tokens = model.get_prompt(
            tokenizer, previous, without_timestamps=False, hotwords=options.hotwords or None
        )
        max_length = model.max_length
        if max_new_tokens is not None:
            max_length = len(tokens) + max_new_tokens
        if max_length > model.max_length:
            return None  # faster-whisper refuses it; the plain path says why
        return _Request(
            features=pad_or_trim(features[:, :frames]),
            frames=frames,
            seconds=audio.size / SAMPLE_RATE,
            tokenizer=tokenizer,
            suppress=suppress,
            prompt=tokens,
            max_length=max_length,
            beam_size=options.beam_size,
            word_timestamps=options.word_timestamps,
            fallback=fallback,
            thread=threading.get_ident(),
        )

    def _tokenizer(self, task: str, language: str) -> tuple[Tokenizer, list[int]]:
        cached = self._tokenizers.get((task, language))
        if cached is None:
            model = self._model
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task=task, language=language
            )
            suppress = list(get_suppressed_tokens(tokenizer, [-1]))
            cached = self._tokenizers[(task, language)] = (tokenizer, suppress)
        return cached

    def _submit(self, request: _Request) -> None:
        with self._cond:
            if self._closed:
                request.done.set()  # no batcher to wait for: the plain path
                return
            if not self._workers:
                self._workers = [
                    threading.Thread(target=self._serve, name=f"batcher-{self.name}", daemon=True)
                    for _ in range(self.workers)
                ]
                for worker in self._workers:
                    worker.start()
            served = self._served.pop(request.thread, None)
            if served is not None:
                gap = time.monotonic() - served
                if gap < _LONGEST_GAP:
                    self._gap[request.thread] = _average(self._gap.get(request.thread), gap)
                    self._usual_gap = _average(self._usual_gap, gap)
            self._queue.append(request)
            self._cond.notify_all()

    def _serve(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            if not batch:
                continue  # every caller left
            started = time.monotonic()
            groups: dict[tuple[object, ...], list[_Request]] = {}
            for request in batch:
                groups.setdefault(request.key(), []).append(request)
            for group in groups.values():
                try:
                    self._decode(group)
                except Exception:  # the plain path raises it again, to its caller
                    log.exception("batched decode of %d windows failed", len(group))
                    for request in group:
                        request.segments = None
                finally:
                    now = time.monotonic()
                    with self._cond:
                        for request in group:
                            if request.segments is not None:
                                self._served[request.thread] = now
                    for request in group:
                        request.done.set()
            self._batch_seconds = time.monotonic() - started

    def _collect(self) -> list[_Request] | None:
        """The next batch: what is queued, after a short wait for streams about to ask."""
        with self._cond:
            # One worker gathers at a time; the other takes what arrives meanwhile.
            while not self._queue or self._gathering:
                if self._closed and not self._queue:
                    return None
                self._cond.wait()
            self._gathering = True
            try:
                wait = min(self.max_wait, self.wait_fraction * self._batch_seconds)
                deadline = time.monotonic() + wait
                while len(self._queue) < self.max_batch:
                    until = self._expected(deadline)
                    if until is None:
                        break
                    self._cond.wait(until - time.monotonic())
            finally:
                self._gathering = False
                self._cond.notify_all()
            batch = [r for r in self._queue[: self.max_batch] if not r.abandoned]
            del self._queue[: self.max_batch]
            return batch

    def _expected(self, deadline: float) -> float | None:
        """Until when to wait for streams due back with their next window before deadline."""
        now = time.monotonic()
        until = None
        for thread, served in list(self._served.items()):
            if now - served > _LONGEST_GAP:
                del self._served[thread]  # its job ended, or it waits for audio
                continue
            gap = self._gap.get(thread, self._usual_gap)
            if gap is None:
                continue
            due = served + gap * _GAP_SLACK + _GAP_SLACK_SECONDS
            if now < due <= deadline:
                until = due if until is None else max(until, due)
        return until

    def _decode(self, group: Sequence[_Request]) -> None:
        """One encoder and one decoder pass over windows that can share them.

        Mirrors faster-whisper's ``generate_segments`` and
        ``generate_with_fallback`` at temperature 0 for each window.
        """
        model = self._model
        first = group[0]
        encoder_output = model.encode(np.stack([r.features for r in group]))
        max_length = max(r.max_length for r in group)
        results = model.model.generate(
            encoder_output,
            [r.prompt for r in group],
            beam_size=first.beam_size,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=first.suppress,
            max_initial_timestamp_index=round(_MAX_INITIAL_TIMESTAMP / model.time_precision),
        )
        self.stats.batch(len(group))
        group_cap = _cap(len(first.prompt), max_length)
        decoded = [self._check(r, res, group_cap) for r, res in zip(group, results, strict=True)]
        if first.word_timestamps:  # then every window of the group wants them, in one language
            self._add_words(group, decoded, encoder_output)
        for request, segments in zip(group, decoded, strict=True):
            request.segments = segments

    def _add_words(
        self,
        group: Sequence[_Request],
        decoded: list[list[Raw] | None],
        encoder_output: Any,
    ) -> None:
        """Word timings for the group's windows, with one alignment pass for them all."""
        model = self._model
        tokenizer = group[0].tokenizer
        text_tokens = [
            [t for s in segments or () for t in s["tokens"] if t < tokenizer.eot]
            for segments in decoded
        ]
        if not any(text_tokens):
            return
        alignments = model.find_alignment(
            tokenizer, text_tokens, encoder_output, [r.frames for r in group]
        )
        for request, segments, alignment in zip(group, decoded, alignments, strict=True):
            if segments:
                WhisperModel.add_word_timestamps(
                    _Aligned(model, alignment),
                    [segments],
                    tokenizer,
                    None,
                    request.frames,
                    _PREPEND,
                    _APPEND,
                    0.0,
                )

    def _check(self, request: _Request, result: Any, group_cap: int) -> list[Raw] | None:
        """One window's segments from its pass, or None where the plain path must decide."""
        model = self._model
        tokenizer = request.tokenizer
        tokens: list[int] = result.sequences_ids[0]
        no_speech: float = result.no_speech_prob
        # The score of the whole sequence (faster-whisper's avg_logprob, with
        # its length penalty of 1).
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        cap = _cap(len(request.prompt), request.max_length)
        if cap < group_cap and len(tokens) >= cap:
            # Decoded past this window's own budget: the tokens it would have
            # stopped at are known, their score is not. It matters only for the
            # fallback and for the no-speech skip.
            if request.fallback or no_speech > _NO_SPEECH_THRESHOLD:
                return None
            tokens = tokens[:cap]
        else:
            text = tokenizer.decode(tokens).strip()
            silent = no_speech > _NO_SPEECH_THRESHOLD and avg_logprob < _LOG_PROB_THRESHOLD
            failed = (
                get_compression_ratio(text) > _COMPRESSION_RATIO_THRESHOLD
                or avg_logprob < self._rerun_below
            )
            if request.fallback and failed and not silent:
                return None
            if no_speech > _NO_SPEECH_THRESHOLD and not avg_logprob > _LOG_PROB_THRESHOLD:
                return []  # faster-whisper's no-speech skip
        segments, _, _ = model._split_segments_by_timestamps(
            tokenizer=tokenizer,
            tokens=tokens,
            time_offset=0.0,
            segment_size=request.frames,
            segment_duration=request.frames * model.feature_extractor.time_per_frame,
            seek=0,
        )
        return segments  # type: ignore[no-any-return]  # untyped package


def _shift(request: _Request, offset: float) -> Iterator[Segment]:
    tokenizer = request.tokenizer
    for raw in request.segments or ():
        text = tokenizer.decode(raw["tokens"])
        if raw["start"] == raw["end"] or not text.strip():
            continue
        words = raw.get("words") or ()
        timed = [(w["start"], w["end"], w["word"], w["probability"]) for w in words]
        yield window_segment(
            raw["start"], raw["end"], text, timed, offset=offset, seconds=request.seconds
        )
