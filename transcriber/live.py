"""Live mode: transcribe PCM as it is spoken, with the local-agreement policy.

As in whisper_streaming (Macháček et al., 2023): every time about a second
of new audio arrives, the unconfirmed tail of the buffer is transcribed
again; words on which two consecutive hypotheses agree are committed and sent
as final segments, the rest as one partial segment that later messages
replace. Confirmed audio is dropped from the buffer once it grows long.

Unlike whisper_streaming, a pass is not primed with the text already
committed (only with the caller's own prompt). Behind on a busy machine, the
buffer is cut mid-sentence, and the prompt's end then made Whisper skip
speech that resembles it, or add a sentence after the last one; two passes
agreed on the mistake and it was committed for good. Without it, live WER
on the CI's replayed load fell from 0.035 to 0.017 (tiny.en; worst stream
0.227 -> 0.068): tests/transcriber/test_live_load.py.
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from transcriber.asr import DecodeOptions, Language, Segment, SpeechRecognizer, Word
from transcriber.audio import SAMPLE_RATE, AudioArray
from transcriber.errors import Cancelled
from transcriber.hallucinations import is_anomalous, is_stock_phrase
from transcriber.windowing import (
    Emit,
    LagEvent,
    LanguageEvent,
    SegmentEvent,
    Transcript,
    WorkCounters,
    find_cut,
    has_speech,
)

log = logging.getLogger(__name__)

# Whisper reads at most 30 s; a buffer past this must be cut whatever happened.
_HARD_LIMIT_SECONDS = 28.0
_TIME_SLACK = 0.5
# Fast speech is about 4 words, 5-6 tokens, a second; timestamps add a few.
_TOKENS_PER_SECOND = 8
# faster-whisper refuses prompt + max_new_tokens above Whisper's 448 tokens;
# its prompt holds at most 223 tokens of earlier text plus the start sequence.
_MAX_NEW_TOKENS = 448 - 228
# At the end of a stream, speech this long after the last word is read again
# (Whisper may end a pass early, and no later pass re-reads it); as in file mode.
_UNREAD_SECONDS = 1.0
_MAX_TAIL_PASSES = 4
# A trimmed buffer is cut in the longest pause this far before the last
# committed word's end (the buffer then starts at most this much earlier).
_CUT_SEARCH_SECONDS = 4.0
_STRIP = string.punctuation + string.whitespace


def _key(word: str) -> str:
    return word.strip(_STRIP).casefold()


@dataclass
class HypothesisBuffer:
    """Words of the last hypothesis and what has been committed (whisper_streaming)."""

    committed_in_buffer: list[Word]
    buffer: list[Word]
    last_committed_time: float = 0.0

    @classmethod
    def empty(cls) -> HypothesisBuffer:
        return cls([], [])

    def fresh(self, new: list[Word]) -> list[Word]:
        """The words of a hypothesis past what has been committed."""
        # Word timings move between passes; a tolerant cut plus the n-gram
        # check below loses fewer words at the boundary than a strict one.
        fresh = [w for w in new if w.start > self.last_committed_time - _TIME_SLACK]
        if fresh and abs(fresh[0].start - self.last_committed_time) < 1.0:
            # The hypothesis may repeat the last committed words; drop the longest repeat.
            cn, nn = len(self.committed_in_buffer), len(fresh)
            for i in range(min(cn, nn, 5), 0, -1):
                tail = [_key(w.word) for w in self.committed_in_buffer[-i:]]
                head = [_key(w.word) for w in fresh[:i]]
                if tail == head:
                    return fresh[i:]
        return fresh

    def insert(self, new: list[Word]) -> list[Word]:
        """Take a new hypothesis; return the words both it and the previous one agree on."""
        fresh = self.fresh(new)
        commit: list[Word] = []
        while fresh and self.buffer and _key(fresh[0].word) == _key(self.buffer[0].word):
            word = fresh.pop(0)
            self.buffer.pop(0)
            commit.append(word)
            self.last_committed_time = word.end
        self.buffer = fresh
        self.committed_in_buffer.extend(commit)
        return commit

    def pop_committed(self, time: float) -> None:
        while self.committed_in_buffer and self.committed_in_buffer[0].end <= time:
            self.committed_in_buffer.pop(0)


def _segment(words: list[Word], *, final: bool) -> Segment:
    return Segment(
        words[0].start, words[-1].end, "".join(w.word for w in words), tuple(words), final
    )


class LiveTranscriber:
    """Runs the local-agreement loop over 16 kHz chunks as they arrive."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        options: DecodeOptions,
        *,
        emit: Emit,
        cancel: threading.Event,
        min_chunk_seconds: float = 1.0,
        buffer_seconds: float = 15.0,
        commit_seconds: float = 0.0,
        counters: WorkCounters | None = None,
        received_seconds: Callable[[], float] | None = None,
    ) -> None:
        self._recognizer = recognizer
        # Agreement works on words, so word timings are always computed.
        self._options = replace(options, word_timestamps=True)
        self._keep_words = options.word_timestamps
        self._emit = emit
        self._cancel = cancel
        self._min_chunk = self._base_chunk = int(min_chunk_seconds * SAMPLE_RATE)
        self._max_buffer = buffer_seconds
        # Agreement between passes only a second apart commits words heard
        # with a second of context. Comparing only hypotheses at least this
        # much audio apart makes that context independent of the load; the
        # passes in between still refresh the partial segment every step.
        # Off by default: see TranscriberConfig.live_commit_seconds.
        self._commit_step = commit_seconds
        self._compared_at = float("-inf")
        self._counters = counters or WorkCounters()
        # Seconds of audio the caller has sent so far: after each pass, what
        # it sent beyond what the pass read is reported as this stream's lag.
        self._received = received_seconds
        self._audio = np.zeros(0, dtype=np.float32)
        self._offset = 0.0  # seconds of audio dropped from the buffer's front
        self._hyp = HypothesisBuffer.empty()
        self._committed: list[Word] = []
        self._finals: list[Segment] = []
        self._language: Language | None = None
        self._last_partial: str | None = None

    def run(self, chunks: Iterable[AudioArray]) -> Transcript:
        pending: list[AudioArray] = []
        pending_samples = 0
        for chunk in chunks:
            if self._cancel.is_set():
                raise Cancelled()
            pending.append(chunk)
            pending_samples += chunk.size
            if pending_samples >= self._min_chunk:
                self._audio = np.concatenate([self._audio, *pending])
                pending, pending_samples = [], 0
                started = time.monotonic()
                self._step()
                self._report_lag()
                # A pass that took longer than the audio it added means this
                # stream (or the machine) is behind: take bigger steps until it
                # catches up, instead of re-reading the buffer every second.
                took = time.monotonic() - started
                self._min_chunk = min(
                    max(self._base_chunk, int(took * 1.25 * SAMPLE_RATE)), 5 * SAMPLE_RATE
                )
        if pending:
            self._audio = np.concatenate([self._audio, *pending])
        self._finish()
        total = self._offset + self._audio.size / SAMPLE_RATE
        language = self._language or Language(self._options.language or "en", 0.0)
        return Transcript(language, tuple(self._finals), total)

    def _report_lag(self) -> None:
        if self._received is not None:
            heard = self._offset + self._audio.size / SAMPLE_RATE
            self._emit(LagEvent(max(0.0, self._received() - heard)))

    def _finish(self) -> None:
        """The last passes: nothing comes after them to re-read what they leave unread."""
        for tail_pass in range(_MAX_TAIL_PASSES):
            known = len(self._committed)
            self._step(last=True)
            # The end of speech confirms whatever the last hypothesis holds,
            # unless it is what Whisper makes up over the fading end of the
            # last word ("here." at probability 0.04): no later pass can
            # disagree with it.
            if self._hyp.buffer and not is_anomalous(self._hyp.buffer):
                self._commit(list(self._hyp.buffer))
            self._hyp.buffer = []
            if not self._committed or (tail_pass and len(self._committed) == known):
                return  # a re-read that found nothing would find nothing again
            end = self._committed[-1].end
            cut = max(0, int((end - self._offset) * SAMPLE_RATE))
            tail = self._audio[cut:]
            # Whisper hallucinates on silence ("Thank you.", dots): only speech
            # that VAD hears is worth another pass.
            if tail.size <= _UNREAD_SECONDS * SAMPLE_RATE or not has_speech(tail):
                return
            self._audio = tail
            self._offset = max(self._offset, end)
            self._hyp.pop_committed(self._offset)

    def _step(self, *, last: bool = False) -> None:
        if self._audio.size < SAMPLE_RATE // 2:
            return
        if has_speech(self._audio):
            words = self._hypothesis()
        else:
            # Nothing said (silence, music, noise): no pass, so no stock phrase.
            words = []
        heard = self._offset + self._audio.size / SAMPLE_RATE
        if last or heard - self._compared_at >= self._commit_step:
            self._compared_at = heard
            committed = self._hyp.insert(words)
            if committed:
                self._commit(committed)
            tail = self._hyp.buffer
        else:
            tail = self._hyp.fresh(words)
        text = "".join(w.word for w in tail)
        if tail and text != self._last_partial:
            self._emit(SegmentEvent(len(self._finals), self._public(_segment(tail, final=False))))
            self._last_partial = text
        self._trim()

    def _hypothesis(self) -> list[Word]:
        """One pass over the buffer: its words, timed in the recording."""
        options = self._options
        if self._language is not None:
            options = replace(options, language=self._language.code)
        seconds = self._audio.size / SAMPLE_RATE
        # One greedy decode with a token budget: a temperature fallback or a
        # repetition loop on a half-spoken word cost 20x a normal pass here
        # and stalled every other stream; the next pass re-reads the tail anyway.
        result = self._recognizer.transcribe(
            self._audio,
            options,
            offset=self._offset,
            fallback=False,
            max_new_tokens=min(int(_TOKENS_PER_SECOND * seconds) + 16, _MAX_NEW_TOKENS),
            cancel=self._cancel,
        )
        # A word of punctuation alone (". . .") is Whisper's noise, not speech.
        words = [
            w
            for seg in result.segments
            if not is_stock_phrase(seg.text)
            for w in seg.words
            if _key(w.word)
        ]
        if self._cancel.is_set():
            raise Cancelled()
        self._counters.add(windows=1)
        if self._language is None:
            self._language = result.language
            self._emit(LanguageEvent(result.language))
        return words

    def _public(self, segment: Segment) -> Segment:
        return segment if self._keep_words else replace(segment, words=())

    def _commit(self, words: list[Word]) -> None:
        self._committed.extend(words)
        segment = _segment(words, final=True)
        self._finals.append(segment)
        self._counters.add(segments=1)
        self._emit(SegmentEvent(len(self._finals) - 1, self._public(segment)))
        self._last_partial = None

    def _trim(self) -> None:
        seconds = self._audio.size / SAMPLE_RATE
        if seconds > _HARD_LIMIT_SECONDS:
            # No agreement for a whole Whisper window (noise, music): confirm the
            # hypothesis as it stands, or drop audio that produced no words, so
            # the buffer stays bounded.
            if self._hyp.buffer:
                self._commit(list(self._hyp.buffer))
                self._hyp.buffer = []
            else:
                keep = SAMPLE_RATE
                self._offset += (self._audio.size - keep) / SAMPLE_RATE
                self._audio = self._audio[-keep:]
                return
        elif seconds <= self._max_buffer:
            return
        if not self._committed:
            return
        # Cut in a pause among the last committed words, not at the last one's
        # end: Whisper's word timings are a guess, and a cut there took the
        # start of the next word with it ("distribute, | sublicense" lost the
        # word for good). Committed words left past the cut are known to the
        # hypothesis buffer, which drops them when the next pass repeats them.
        last_end = int((self._committed[-1].end - self._offset) * SAMPLE_RATE)
        if last_end <= 0:
            return
        search = max(0, last_end - int(_CUT_SEARCH_SECONDS * SAMPLE_RATE))
        cut = find_cut(self._audio, search, last_end)
        if cut <= 0:
            return
        cut_time = self._offset + cut / SAMPLE_RATE
        self._audio = self._audio[cut:]
        self._offset = cut_time
        self._hyp.pop_committed(cut_time)
