"""Paid seconds: no audio past what the caller paid for reaches Whisper.

The caller (the gateway, after billing holds credits for the audio) sends
TranscriptionConfig.paid_seconds and may raise it mid-stream. The gate counts
the decoded samples it hands on, whatever the client or the container claims
about the length; at the limit it reports how much audio is decoded and waits
a while for a raise, then ends the input so the windows already paid for are
still transcribed, and the job ends PAID_SECONDS_EXCEEDED.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from transcriber.audio import SAMPLE_RATE, AudioArray
from transcriber.errors import Cancelled

#: A waiting gate checks the caller's cancel flag this often.
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class AudioEvent:
    """How long the audio is (final) or how much of it is decoded so far."""

    seconds: float
    final: bool


class PaidBudget:
    """Seconds paid for, raised by the transport thread and read by the job's thread."""

    def __init__(self, seconds: float = 0.0) -> None:
        #: 0: no limit (callers outside billing).
        self._samples = max(0, round(seconds * SAMPLE_RATE))
        self.limited = self._samples > 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE

    @property
    def samples(self) -> int:
        return self._samples

    def raise_to(self, seconds: float) -> None:
        """A new total; a lower one than already paid changes nothing."""
        with self._cond:
            self._samples = max(self._samples, round(seconds * SAMPLE_RATE))
            self._cond.notify_all()

    def close(self) -> None:
        """No raise can come any more (the client half-closed, or the upload failed)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_past(self, samples: int, timeout: float, cancel: threading.Event) -> bool:
        """Wait until more than ``samples`` are paid for; False on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._samples <= samples:
                left = deadline - time.monotonic()
                if self._closed or cancel.is_set() or left <= 0:
                    return False
                self._cond.wait(min(left, _POLL_SECONDS))
            return True


class PaidGate:
    """Passes audio chunks on up to the paid samples; pauses, then stops, at the limit."""

    def __init__(
        self,
        budget: PaidBudget,
        *,
        wait_seconds: float,
        emit: Callable[[AudioEvent], None],
        cancel: threading.Event,
        decoded_seconds: Callable[[], float],
        settle: Callable[[], object] | None = None,
    ) -> None:
        self._budget = budget
        self._wait = wait_seconds
        self._emit = emit
        self._cancel = cancel
        self._decoded = decoded_seconds
        #: Called at the limit before reporting it: lets a decoder running
        #: ahead finish, so the exact duration goes out before the pause.
        self._settle = settle
        #: Samples handed on to Whisper.
        self.passed = 0
        #: True when the input was cut at the paid limit.
        self.exceeded = False

    @property
    def passed_seconds(self) -> float:
        return self.passed / SAMPLE_RATE

    def chunks(self, source: Iterable[AudioArray]) -> Iterator[AudioArray]:
        for chunk in source:
            rest = chunk
            while rest.size:
                if not self._budget.limited:
                    piece, rest = rest, rest[:0]
                else:
                    room = self._budget.samples - self.passed
                    if room <= 0:
                        if not self._wait_for_raise():
                            return
                        continue
                    piece, rest = rest[:room], rest[room:]
                self.passed += piece.size
                yield piece

    def _wait_for_raise(self) -> bool:
        if self._settle is not None:
            self._settle()
        self._emit(AudioEvent(max(self._decoded(), self.passed_seconds), final=False))
        if self._budget.wait_past(self.passed, self._wait, self._cancel):
            return True
        if self._cancel.is_set():
            raise Cancelled()
        self.exceeded = True
        return False
