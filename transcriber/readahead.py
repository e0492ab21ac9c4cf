"""Decode ahead of Whisper on a thread of its own.

A voice note's container (OGG/Opus) has no duration in its header: its exact
length is known only once its last packet is decoded. Decoding costs a few
milliseconds per second of audio and Whisper a hundred times more, so the
decoder runs ahead (bounded, since decoded audio takes 64 KB a second) and
reports the duration long before the first segments of a long note.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator

from transcriber.audio import AudioArray


class ReadAhead:
    """Runs ``source`` on a daemon thread, at most ``max_samples`` ahead of the reader.

    ``on_end(samples)`` is called on that thread once the source is exhausted,
    before the reader can see the end. A failure of the source reaches the
    reader at its next chunk, ahead of the audio still queued.
    """

    def __init__(
        self,
        source: Iterator[AudioArray],
        *,
        max_samples: int,
        on_end: Callable[[int], None],
        name: str = "decode-ahead",
    ) -> None:
        self._source = source
        self._max = max_samples
        self._on_end = on_end
        self._queue: collections.deque[AudioArray] = collections.deque()
        self._held = 0
        self._done = False
        self._stopped = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        #: Samples decoded so far (read from any thread).
        self.decoded = 0

    def start(self) -> ReadAhead:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for chunk in self._source:
                with self._cond:
                    self._cond.wait_for(lambda: self._held < self._max or self._stopped)
                    if self._stopped:
                        return
                    self._queue.append(chunk)
                    self._held += chunk.size
                    self.decoded += chunk.size
                    self._cond.notify_all()
            self._on_end(self.decoded)
        except BaseException as exc:  # noqa: BLE001  # handed to the reader's thread
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[AudioArray]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._done)
                if self._error is not None:
                    raise self._error
                if not self._queue:
                    return
                chunk = self._queue.popleft()
                self._held -= chunk.size
                self._cond.notify_all()
            yield chunk

    def wait_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the source to end (or fail); True if it has."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done, timeout)

    def stop(self, wake: Callable[[], None], timeout: float = 5.0) -> bool:
        """Stop the thread (``wake`` unblocks a read it waits in); True once it has ended."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            wake()
            self._thread.join(timeout)
        return not self._thread.is_alive()
