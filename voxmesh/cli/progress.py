"""``voxmesh transcribe``'s progress on stderr: a bar, a line per move in the queue, or nothing."""

from __future__ import annotations

from typing import IO, Any


class Progress:
    """Upload bytes, then transcribed audio seconds, on stderr (tqdm), or nothing.

    While the server is full the bar says the file's place in the line; with
    no bar (stderr is not a terminal) each move is a line of its own, unless
    the progress is off altogether (``never``).
    """

    def __init__(self, mode: str, size: int, duration: float, stream: IO[str]) -> None:
        self.enabled = mode == "always" or (mode == "auto" and stream.isatty())
        self._lines = not self.enabled and mode != "never"
        self._stream = stream
        self._duration = duration
        self._bar: Any = None
        self._queued = False
        self._uploaded = False
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=size, unit="B", unit_scale=True, desc="uploading", file=stream, leave=False
            )

    def sent(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def uploaded(self) -> None:
        self._uploaded = True
        if self._bar is not None and not self._queued:
            self._bar.set_description("decoding")

    def queued(self, position: int, active: int) -> None:
        """The server is full: ``position`` in line (1 runs next) behind ``active`` streams."""
        self._queued = True
        text = f"queued: #{position} in line, {active} running"
        if self._bar is not None:
            self._bar.set_description(text)
        elif self._lines:
            print(f"voxmesh transcribe: {text}", file=self._stream, flush=True)

    def started(self) -> None:
        """Out of the line: the server answered with something other than the queue."""
        if not self._queued:
            return
        self._queued = False
        if self._bar is not None and self._bar.unit == "B":
            self._bar.set_description("decoding" if self._uploaded else "uploading")

    def transcribed(self, upto: float, text: str) -> None:
        self.started()
        if self._bar is None:
            return
        if self._bar.unit == "B":
            # The first segment: from here the bar counts audio seconds, not bytes.
            self._bar.close()
            from tqdm import tqdm

            known = round(self._duration, 1) or None  # None: the container did not say
            self._bar = tqdm(
                total=known,
                unit="s",
                desc="transcribing",
                file=self._stream,
                leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio"
                if known
                else "{desc}: {n:.0f} s audio",
            )
        self._bar.write(text.strip(), file=self._stream)
        upto = min(upto, self._duration) if self._duration else upto
        self._bar.update(max(0.0, upto - self._bar.n))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
