"""Live mode's accuracy against how often the stream is re-read, in audio time.

One command: ``python -m bench.transcriber.live_accuracy``. A live stream is
re-read every second when the server is idle and every few seconds when it
carries six streams (each pass waits for the others). This runs the live
transcriber (``transcriber.live``, the service's own) over the bench's live
speech at re-read steps of 1, 2 and 4 seconds, feeding audio as fast as the
passes allow, and reports for each step and commit policy:

* the WER of the final segments, next to an offline beam-1 transcription
  of the same audio (``transcriber.windowing``);
* the commit lag in audio seconds: how much audio had arrived past a final
  segment's end when it was committed (the wall-clock lag adds the pass time).

Commit policy 0 s is the old one (agreement of consecutive passes, however
close); the default compares hypotheses at least ``live_commit_seconds`` of
audio apart (``transcriber.config``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.transcriber.run import SR, live_corpus, wer  # noqa: E402
from transcriber.asr import DecodeOptions  # noqa: E402
from transcriber.config import TranscriberConfig  # noqa: E402
from transcriber.live import LiveTranscriber  # noqa: E402
from transcriber.models import ModelRegistry  # noqa: E402
from transcriber.windowing import Event, SegmentEvent, WindowedTranscriber  # noqa: E402


def run_live(
    registry: ModelRegistry,
    model: str,
    audio: np.ndarray,
    *,
    step: float,
    commit: float,
) -> tuple[str, float]:
    """Final text and median commit lag (audio seconds) of one live run."""
    fed = 0
    lags: list[float] = []

    def emit(event: Event) -> None:
        if isinstance(event, SegmentEvent) and event.segment.final:
            lags.append(fed / SR - event.segment.end)

    def chunks() -> Iterator[np.ndarray]:
        nonlocal fed
        size = SR // 5
        for i in range(0, audio.size, size):
            fed = min(audio.size, i + size)
            yield audio[i : i + size]

    live = LiveTranscriber(
        registry.get(model),
        DecodeOptions(language="en", beam_size=1),
        emit=emit,
        cancel=threading.Event(),
        min_chunk_seconds=step,
        commit_seconds=commit,
    )
    transcript = live.run(chunks())
    text = "".join(s.text for s in transcript.segments)
    return text, float(np.median(lags)) if lags else float("nan")


def offline(registry: ModelRegistry, model: str, audio: np.ndarray) -> str:
    windows = WindowedTranscriber(
        registry.get(model),
        DecodeOptions(language="en", beam_size=1),
        emit=lambda _: None,
        cancel=threading.Event(),
    )
    return " ".join(s.text for s in windows.run(iter([audio])).segments)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--seconds", type=float, default=60.0, help="live speech length")
    parser.add_argument("--steps", default="1,2,4", help="re-read steps to try, seconds")
    parser.add_argument("--commits", default="0,2", help="commit policies to try, seconds")
    args = parser.parse_args(argv)
    config = TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cpu"})
    registry = ModelRegistry(config)
    audio, reference = live_corpus(args.seconds)
    base = wer(reference, offline(registry, args.model, audio))
    print(f"{args.model}, {audio.size / SR:.0f} s of speech; offline beam-1 WER {base:.3f}")
    print(f"{'re-read step':>12} {'commit':>7} {'WER':>6} {'- offline':>9} {'commit lag':>10}")
    for step in (float(s) for s in args.steps.split(",")):
        for commit in (float(c) for c in args.commits.split(",")):
            text, lag = run_live(registry, args.model, audio, step=step, commit=commit)
            error = wer(reference, text)
            print(
                f"{step:>11.0f}s {commit:>6.0f}s {error:6.3f} {error - base:+9.3f} {lag:>9.1f}s",
                flush=True,
            )


if __name__ == "__main__":
    main()
