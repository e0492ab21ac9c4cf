"""``voxmesh transcribe``: stream a media file through the transcriber; the transcript to stdout."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import pathlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from voxmesh.cli.progress import Progress
from voxmesh.cli.targets import DEFAULT_TRANSCRIBER_TARGET, Subparsers, service_target
from voxmesh.cli.trace import cli_telemetry

FORMATS = ("text", "srt", "vtt", "json")


def add_transcribe(sub: Subparsers) -> None:
    p = sub.add_parser(
        "transcribe",
        help="stream a media file through the transcriber; the transcript goes to stdout",
        description=(
            "Stream a media file through the transcriber. Only the result goes to stdout (pipe "
            "it into a file); progress, the place in line while the transcriber is full, the "
            "detected language and the trace id go to stderr."
        ),
    )
    p.add_argument("file", help="any media file with audio (OGG/Opus, MP3, M4A, MP4, WAV, FLAC…)")
    p.add_argument(
        "--target",
        help="transcriber address host:port (default: TRANSCRIBER_TARGET, else the running "
        f"`voxmesh up`'s, else {DEFAULT_TRANSCRIBER_TARGET})",
    )
    p.add_argument("--format", choices=FORMATS, default="text", help="what stdout gets")
    p.add_argument(
        "--language", default="", help="ISO 639-1 code such as en or ru; default: detect"
    )
    p.add_argument(
        "--task",
        choices=("transcribe", "translate"),
        default="transcribe",
        help="translate: English text from any language (multilingual models only)",
    )
    p.add_argument(
        "--model", default="", help="a model name from ListModels; default: the server's"
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds the whole call may take")
    p.add_argument("--tls-ca", help="CA certificate (PEM) for mutual TLS (or VOXMESH_TLS_CA)")
    p.add_argument("--tls-cert", help="this client's certificate (PEM) (or VOXMESH_TLS_CERT)")
    p.add_argument("--tls-key", help="this client's private key (PEM) (or VOXMESH_TLS_KEY)")
    p.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="a progress bar on stderr (auto: when stderr is a terminal, else a line per move "
        "in the transcriber's queue; never: neither)",
    )
    p.set_defaults(func=cmd_transcribe)


@dataclasses.dataclass
class Transcript:
    """What one Transcribe stream answered."""

    language: str = ""
    language_probability: float = 0.0
    segments: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    duration: float = 0.0
    model: str = ""
    device: str = ""
    formatted: str = ""

    def render(self, fmt: str) -> str:
        if fmt != "json":
            return self.formatted.rstrip("\n") + "\n"
        return (
            json.dumps(
                {
                    "language": self.language,
                    "language_probability": round(self.language_probability, 4),
                    "duration": self.duration,
                    "model": self.model,
                    "device": self.device,
                    "text": " ".join(s["text"] for s in self.segments),
                    "segments": self.segments,
                },
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )


def _tls(args: argparse.Namespace) -> Any:
    from voxmesh.tls import TlsSettings

    flags = {
        "VOXMESH_TLS_CA": args.tls_ca,
        "VOXMESH_TLS_CERT": args.tls_cert,
        "VOXMESH_TLS_KEY": args.tls_key,
    }
    if any(flags.values()):
        return TlsSettings.from_env({k: v or "" for k, v in flags.items()})
    return TlsSettings.from_env(os.environ)


async def transcribe_file(
    path: pathlib.Path, target: str, args: argparse.Namespace, progress: Progress
) -> Transcript:
    """Stream ``path`` to the transcriber at ``target``; raises grpc.aio.AioRpcError."""
    from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
    from voxmesh.channels import dial

    pb = transcriber_pb2
    formats = {
        "text": pb.OUTPUT_FORMAT_TEXT,
        "json": pb.OUTPUT_FORMAT_TEXT,
        "srt": pb.OUTPUT_FORMAT_SRT,
        "vtt": pb.OUTPUT_FORMAT_VTT,
    }
    tasks = {"transcribe": pb.TASK_TRANSCRIBE, "translate": pb.TASK_TRANSLATE}

    async def requests() -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                output_format=formats[args.format],
                language=args.language,
                task=tasks[args.task],
                model=args.model,
            )
        )
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield pb.TranscribeRequest(audio=chunk)
                progress.sent(len(chunk))
        progress.uploaded()

    result = Transcript()
    async with dial(target, tls=_tls(args)) as channel:
        stub = transcriber_pb2_grpc.TranscriberServiceStub(channel)
        async for event in stub.Transcribe(requests(), timeout=args.timeout):
            kind = event.WhichOneof("event")
            if kind == "queued":
                progress.queued(event.queued.position, event.queued.active)
                continue
            progress.started()
            if kind == "language":
                result.language = event.language.language
                result.language_probability = event.language.probability
            elif kind == "segment" and event.segment.final:
                s = event.segment
                result.segments.append(
                    {
                        "id": s.segment_id,
                        "start": round(s.start_seconds, 3),
                        "end": round(s.end_seconds, 3),
                        "text": s.text.strip(),
                    }
                )
                progress.transcribed(s.end_seconds, s.text)
            elif kind == "done":
                d = event.done
                result.duration = d.audio_duration_seconds
                result.model, result.device = d.model, d.device
                result.formatted = d.formatted_text
    return result


def _probe_duration(path: pathlib.Path) -> float:
    """The file's length for the progress bar; 0 if the container does not say."""
    try:
        import av

        with av.open(str(path)) as container:
            return float(container.duration or 0) / av.time_base
    except Exception:  # noqa: BLE001 - the bar is a nicety; the server judges the file
        return 0.0


def cmd_transcribe(args: argparse.Namespace) -> int:
    import grpc
    from opentelemetry import trace

    from voxmesh import telemetry
    from voxmesh.errors import error_details

    path = pathlib.Path(args.file)
    if not path.is_file():
        print(f"voxmesh transcribe: {path}: no such file", file=sys.stderr)
        return 2
    target = service_target(args, "transcriber", DEFAULT_TRANSCRIBER_TARGET)
    provider = telemetry.setup(cli_telemetry(args))
    progress = Progress(args.progress, path.stat().st_size, _probe_duration(path), sys.stderr)
    try:
        with trace.get_tracer("voxmesh.cli").start_as_current_span("voxmesh.cli/transcribe"):
            ref = telemetry.current_trace_id()
            try:
                result = asyncio.run(transcribe_file(path, target, args, progress))
            except grpc.aio.AioRpcError as exc:
                progress.close()
                d = error_details(exc)
                print(f"voxmesh transcribe: {d.code.name} {d.reason}: {d.message}", file=sys.stderr)
                if d.code == grpc.StatusCode.UNAVAILABLE:
                    print(
                        f"voxmesh transcribe: is the mesh up? (tried {target}; start it with "
                        "`voxmesh up`, or pass --target)",
                        file=sys.stderr,
                    )
                print(f"reference: {ref}", file=sys.stderr)
                return 1
        progress.close()
        sys.stdout.write(result.render(args.format))
        sys.stdout.flush()
        print(
            f"language {result.language or '?'}, {result.duration:.1f} s audio, model "
            f"{result.model} on {result.device}; reference: {ref}",
            file=sys.stderr,
        )
        return 0
    finally:
        provider.shutdown()
