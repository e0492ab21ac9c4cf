"""``voxmesh``: run the mesh, one service, a migration, a transcription, a trace lookup."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import pathlib
import sys
import time
from collections.abc import AsyncIterator, Sequence

from voxmesh.config import ConfigError, TelemetrySettings

REPO = pathlib.Path(__file__).resolve().parent.parent
SERVICE_MAINS = {
    "billing": "billing.server",
    "transcriber": "transcriber.server",
    "notifier": "notifier.server",
    "gateway": "gateway.app",
    "facade": "facade.app",
}


def _shared_audio() -> pathlib.Path | None:
    for candidate in (REPO.parent / "shared" / "audio", REPO / "shared" / "audio"):
        if (candidate / "jfk.flac").exists():
            return candidate
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    module = importlib.import_module(SERVICE_MAINS[args.service])
    module.main()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from billing.migrate import migrate

    url = os.environ.get("DATABASE_URL")
    if not url:
        print("voxmesh migrate: DATABASE_URL is required but not set", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(url))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    settings = TelemetrySettings.from_env(os.environ, "cli")
    ref = args.ref.strip().lower()
    if len(ref) not in (16, 32) or any(c not in "0123456789abcdef" for c in ref):
        print(
            f"voxmesh trace: {args.ref!r} is not a trace id (16 or 32 hex digits)", file=sys.stderr
        )
        return 2
    print(f"{settings.zipkin_ui_url.rstrip('/')}/traces/{ref}")
    return 0


async def _transcribe(path: pathlib.Path, target: str, fmt: str, language: str) -> int:
    import grpc
    from opentelemetry import trace

    from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
    from voxmesh import telemetry
    from voxmesh.channels import dial
    from voxmesh.errors import error_details

    formats = {
        "text": transcriber_pb2.OUTPUT_FORMAT_TEXT,
        "srt": transcriber_pb2.OUTPUT_FORMAT_SRT,
        "vtt": transcriber_pb2.OUTPUT_FORMAT_VTT,
    }

    async def requests() -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
        yield transcriber_pb2.TranscribeRequest(
            config=transcriber_pb2.TranscriptionConfig(
                output_format=formats[fmt],
                language=language,
            )
        )
        with path.open("rb") as f:
            while chunk := f.read(256 * 1024):
                yield transcriber_pb2.TranscribeRequest(audio=chunk)

    tracer = trace.get_tracer("voxmesh.cli")
    with tracer.start_as_current_span("voxmesh.cli/transcribe"):
        trace_id = telemetry.current_trace_id()
        async with dial(target) as channel:
            stub = transcriber_pb2_grpc.TranscriberServiceStub(channel)
            try:
                async for event in stub.Transcribe(requests(), timeout=3600):
                    if event.HasField("segment") and event.segment.final:
                        s = event.segment
                        print(f"[{s.start_seconds:7.2f} → {s.end_seconds:7.2f}] {s.text.strip()}")
                        sys.stdout.flush()
                    elif event.HasField("done") and fmt != "text":
                        print(event.done.formatted_text)
            except grpc.aio.AioRpcError as exc:
                d = error_details(exc)
                print(f"error: {d.code.name} {d.reason}: {d.message}", file=sys.stderr)
                print(f"trace {trace_id}", file=sys.stderr)
                return 1
    print(f"trace {trace_id}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from voxmesh import telemetry

    path = pathlib.Path(args.file)
    if not path.is_file():
        print(f"voxmesh transcribe: {path}: no such file", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if not any(
        env.get(name)
        for name in (
            "OTEL_TRACES_EXPORTER",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        )
    ):
        # Nowhere to send spans was named: the OTLP exporter would retry a collector
        # that is not there for seconds after the text is printed.
        env["OTEL_TRACES_EXPORTER"] = "none"
    provider = telemetry.setup(TelemetrySettings.from_env(env, "voxmesh-cli"))
    try:
        return asyncio.run(_transcribe(path, args.target, args.format, args.language))
    finally:
        provider.shutdown()


async def _demo(mesh: object) -> None:
    """Send a real voice note through the emulator and show the chat as it changes."""
    from voxmesh.audiofiles import encode
    from voxmesh.devmesh import Mesh

    assert isinstance(mesh, Mesh)
    audio = _shared_audio()
    if audio is None or mesh.emulator is None:
        print("demo skipped: no ../shared/audio/jfk.flac or a real Telegram token is in use")
        return
    emu = mesh.emulator
    ogg = encode(audio / "jfk.flac")
    file_id = emu.add_file(ogg, mime_type="audio/ogg")
    chat = 424242
    emu.push_update(
        emu.make_message_update(chat_id=chat, user_id=chat, voice=(file_id, 11), username="demo")
    )
    print("demo: a voice note (jfk.flac as OGG/Opus) was sent to the bot in chat 424242")
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        msgs = emu.messages(chat)
        for m in msgs:
            history = [m.first_text or "", *m.edits]
            for text in history:
                if text and text not in seen:
                    seen.append(text)
                    print(f"  bot: {text}")
        if msgs and msgs[-1].edits and not msgs[-1].edits[-1].endswith("…"):
            break
        await asyncio.sleep(0.3)
    if mesh.collector is not None:
        await asyncio.sleep(1.5)
        for trace_id, spans in mesh.collector.traces().items():
            # The update's trace: the one an SRE would open from the user's reference.
            if not any(s["name"].startswith("telegram.update/") for s in spans):
                continue
            services = sorted({s["localEndpoint"]["serviceName"] for s in spans})
            print(f"trace {trace_id}: {len(spans)} spans from {', '.join(services)}")


async def _up(args: argparse.Namespace, state: pathlib.Path) -> int:
    import signal

    from voxmesh.devmesh import Mesh, MeshOptions

    options = MeshOptions.from_env(os.environ, state)
    if not options.bot_token:
        print("TELEGRAM_BOT_TOKEN is not set: running against the local Bot API emulator")
    mesh = Mesh(options)
    print(f"starting voxmesh (state in {state})…")
    await mesh.start()
    print("voxmesh is up:")
    for name in ("billing", "transcriber", "notifier"):
        addr = mesh.target(name)
        print(f"  {name:12} grpc://{addr}   (grpcurl -plaintext {addr} list)")
    for name in ("billing", "transcriber", "notifier", "gateway"):
        print(f"  {name + ' metrics':20} {mesh.metrics_url(name)}")
    if mesh.emulator is not None:
        print(f"  Bot API emulator {mesh.emulator.base_url}")
    if mesh.collector is not None:
        print(f"  Zipkin v2 API    {mesh.collector.endpoint.rsplit('/api', 1)[0]}/api/v2/traces")
    try:
        if not args.no_demo:
            await _demo(mesh)
        if args.demo_only:
            return 0
        print("press Ctrl-C to stop")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        print("stopping…")
        await mesh.stop()


def cmd_certs(args: argparse.Namespace) -> int:
    from voxmesh.tls import IDENTITIES, make_dev_pki

    out = pathlib.Path(args.out)
    made = make_dev_pki(out, args.identity or IDENTITIES, hosts=args.host)
    print(f"development CA and certificates in {out}/ (not for production):")
    for identity, tls in made.items():
        print(
            f"  {identity:12} VOXMESH_TLS_CA={tls.ca} VOXMESH_TLS_CERT={tls.cert} "
            f"VOXMESH_TLS_KEY={tls.key}"
        )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    return asyncio.run(_up(args, pathlib.Path(args.state_dir).resolve()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxmesh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole mesh (embedded PostgreSQL/Redis if unset)")
    up.add_argument("--state-dir", default=str(REPO / ".state"), help="where embedded data lives")
    up.add_argument("--no-demo", action="store_true", help="do not send the demo voice note")
    up.add_argument("--demo-only", action="store_true", help="stop after the demo")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=sorted(SERVICE_MAINS))
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply migrations/ to DATABASE_URL")
    mig.set_defaults(func=cmd_migrate)

    tr = sub.add_parser("transcribe", help="stream a file through the running transcriber")
    tr.add_argument("file")
    tr.add_argument("--target", default=os.environ.get("TRANSCRIBER_TARGET", "127.0.0.1:50052"))
    tr.add_argument("--format", choices=("text", "srt", "vtt"), default="text")
    tr.add_argument("--language", default="", help="ISO 639-1 code; empty detects")
    tr.set_defaults(func=cmd_transcribe)

    certs = sub.add_parser("certs", help="make a development CA and per-service certificates")
    certs.add_argument("--out", default=str(REPO / ".state" / "certs"))
    certs.add_argument("--identity", action="append", help="repeat; default: every service")
    certs.add_argument(
        "--host", action="append", default=["localhost", "127.0.0.1"], help="extra SAN"
    )
    certs.set_defaults(func=cmd_certs)

    from voxmesh import listen

    listen.add_parser(sub)

    ref = sub.add_parser("trace", help="print the Zipkin URL of a reference (trace id)")
    ref.add_argument("ref")
    ref.set_defaults(func=cmd_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        print(f"voxmesh: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
