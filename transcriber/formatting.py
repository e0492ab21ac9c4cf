"""Render segments as plain text, timestamped text, SubRip or WebVTT."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from transcriber.asr import Segment


class OutputFormat(Enum):
    TEXT = "text"
    TIMESTAMPED_TEXT = "timestamped"
    SRT = "srt"
    VTT = "vtt"


def _clock(seconds: float, *, millis_sep: str | None) -> str:
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    if millis_sep is None:
        # [mm:ss], growing to [h:mm:ss] past an hour.
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{millis_sep}{ms:03d}"


def srt_time(seconds: float) -> str:
    """00:01:02,345"""
    return _clock(seconds, millis_sep=",")


def vtt_time(seconds: float) -> str:
    """00:01:02.345"""
    return _clock(seconds, millis_sep=".")


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats; "-->" would start a new timing line.
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines).replace("-->", "->")


def format_transcript(segments: Sequence[Segment], fmt: OutputFormat) -> str:
    finals = [s for s in segments if s.final and s.text.strip()]
    if fmt is OutputFormat.TEXT:
        return " ".join(s.text.strip() for s in finals)
    if fmt is OutputFormat.TIMESTAMPED_TEXT:
        return "\n".join(f"[{_clock(s.start, millis_sep=None)}] {s.text.strip()}" for s in finals)
    if fmt is OutputFormat.SRT:
        cues = [
            f"{i}\n{srt_time(s.start)} --> {srt_time(max(s.end, s.start))}\n{_cue_text(s.text)}\n"
            for i, s in enumerate(finals, start=1)
        ]
        return "\n".join(cues)
    cues = [
        f"{vtt_time(s.start)} --> {vtt_time(max(s.end, s.start))}\n{_cue_text(s.text)}\n"
        for s in finals
    ]
    return "WEBVTT\n\n" + "\n".join(cues)
