"""The transcriber's result in OpenAI's response formats, and its streaming events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from babel import Locale, UnknownLocaleError

from facade.upload import AudioRequest
from transcriber.v1 import transcriber_pb2 as pb


@dataclass
class Result:
    language: str = ""
    segments: list[pb.Segment] = field(default_factory=list)
    done: pb.Done = field(default_factory=pb.Done)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    def add(self, event: pb.TranscribeResponse) -> None:
        kind = event.WhichOneof("event")
        if kind == "language":
            self.language = event.language.language
        elif kind == "segment" and event.segment.final:
            self.segments.append(event.segment)
        elif kind == "done":
            self.done = event.done


def output_format(req: AudioRequest) -> pb.OutputFormat:
    return {"srt": pb.OUTPUT_FORMAT_SRT, "vtt": pb.OUTPUT_FORMAT_VTT}.get(
        req.response_format, pb.OUTPUT_FORMAT_TEXT
    )


def language_name(code: str) -> str:
    """OpenAI's verbose_json names the language in English, lower case ("english")."""
    try:
        return str(Locale.parse(code).get_display_name("en")).lower()
    except (UnknownLocaleError, ValueError, TypeError):
        return code


def _usage(result: Result) -> dict[str, Any]:
    return {"type": "duration", "seconds": round(result.done.audio_duration_seconds, 3)}


def verbose(req: AudioRequest, result: Result) -> dict[str, Any]:
    # Whisper's per-segment log probabilities and compression ratios are not in
    # the transcriber's contract: null, not invented.
    out: dict[str, Any] = {
        "task": req.task,
        "language": language_name(result.language) if result.language else "",
        "duration": round(result.done.audio_duration_seconds, 3),
        "text": result.text,
        "segments": [
            {
                "id": s.segment_id,
                "seek": 0,
                "start": round(s.start_seconds, 3),
                "end": round(s.end_seconds, 3),
                "text": s.text,
                "tokens": [],
                "temperature": req.temperature,
                "avg_logprob": None,
                "compression_ratio": None,
                "no_speech_prob": None,
            }
            for s in result.segments
        ],
        "usage": _usage(result),
    }
    if "word" in req.granularities:
        out["words"] = [
            {
                "word": w.word.strip(),
                "start": round(w.start_seconds, 3),
                "end": round(w.end_seconds, 3),
            }
            for s in result.segments
            for w in s.words
        ]
    return out


def render(req: AudioRequest, result: Result, trace_id: str) -> web.Response:
    headers = {"x-request-id": trace_id} if trace_id else {}
    fmt = req.response_format
    if fmt == "json":
        body: dict[str, Any] = {"text": result.text, "usage": _usage(result)}
        return web.json_response(body, headers=headers, dumps=_dumps)
    if fmt == "verbose_json":
        return web.json_response(verbose(req, result), headers=headers, dumps=_dumps)
    text = result.text + "\n" if fmt == "text" else result.done.formatted_text
    content_type = "text/vtt" if fmt == "vtt" else "text/plain"
    return web.Response(text=text, content_type=content_type, headers=headers)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def sse(payload: dict[str, Any]) -> bytes:
    return f"data: {_dumps(payload)}\n\n".encode()


def segment_events(segment: pb.Segment) -> bytes:
    """One final segment: its timing (``transcript.text.segment``) and its text as a delta."""
    return sse(
        {
            "type": "transcript.text.segment",
            "id": str(segment.segment_id),
            "start": round(segment.start_seconds, 3),
            "end": round(segment.end_seconds, 3),
            "text": segment.text,
            "speaker": "",
        }
    ) + sse(
        {
            "type": "transcript.text.delta",
            "delta": segment.text,
            "segment_id": str(segment.segment_id),
        }
    )


def done_event(result: Result) -> bytes:
    return sse({"type": "transcript.text.done", "text": result.text, "usage": _usage(result)})
