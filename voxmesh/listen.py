"""``voxmesh listen``: live transcription of a file, a URL or a microphone.

The source is decoded with PyAV (FFmpeg) to 16 kHz mono PCM and sent to the
transcriber's live mode (``INPUT_MODE_LIVE_PCM``) at real-time pace: a chunk
leaves when its last sample would have been spoken, so a file behaves as a
speaker would, and a live source (RTSP, live HLS, a microphone) is never
waited on longer than it takes to arrive. The screen shows the current
hypothesis as it changes and each committed segment with its latency: the
time from the moment the segment's last word was spoken (sent) to its commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from voxmesh.config import TelemetrySettings

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 0.1
# Input devices PyAV (libavdevice) can open as "the microphone", per platform.
_MICROPHONES: dict[str, list[tuple[str, str]]] = {
    "linux": [("pulse", "default"), ("alsa", "default")],
    "darwin": [("avfoundation", ":0")],
    "win32": [("dshow", "audio=default")],
}


class SourceError(Exception):
    """The source cannot be opened; the message is one line for the user."""


def _pcm_frames(container: Any) -> Iterator[bytes]:
    """Decode the first audio stream to s16 mono 16 kHz, in the source's frame sizes."""
    import av.audio.resampler

    if not container.streams.audio:
        raise SourceError("the source has no audio track")
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    for frame in container.decode(container.streams.audio[0]):
        for out in resampler.resample(frame):
            yield bytes(out.planes[0])[: out.samples * 2]
    for out in resampler.resample(None):
        yield bytes(out.planes[0])[: out.samples * 2]


def open_source(source: str) -> Callable[[], Any]:
    """A function that opens ``source`` with PyAV: ``mic``, a URL or a file path."""
    import av

    if source == "mic":
        devices = next((v for k, v in _MICROPHONES.items() if sys.platform.startswith(k)), [])

        def open_mic() -> Any:
            tried = []
            for fmt, name in devices:
                try:
                    return av.open(name, format=fmt)
                except (av.error.FFmpegError, ValueError, OSError) as exc:
                    tried.append(f"{fmt} ({exc})")
            raise SourceError(
                "no microphone found on this machine"
                + (f": tried {', '.join(tried)}" if tried else "")
            )

        return open_mic
    if "://" in source:
        options = {"rtsp_transport": "tcp"} if source.startswith("rtsp") else {}

        def open_url() -> Any:
            try:
                return av.open(source, options=options, timeout=15)
            except (av.error.FFmpegError, OSError) as exc:
                raise SourceError(f"cannot open {source}: {exc}") from None

        return open_url
    path = pathlib.Path(source)
    if not path.is_file():
        raise SourceError(f"{source}: no such file")

    def open_file() -> Any:
        try:
            return av.open(str(path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"{source}: not a media file PyAV can read ({exc})") from None

    return open_file


async def paced_pcm(container: Any, clock: Clock) -> AsyncIterator[bytes]:
    """PCM chunks of CHUNK_SECONDS from an open PyAV container, each released at
    real time after the first.

    Decoding runs in a thread (a network or device read blocks); the chunks
    come back through a bounded queue.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=200)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def decode() -> None:
        try:
            with container:
                for pcm in _pcm_frames(container):
                    if stop.is_set():
                        return
                    put(pcm)
            put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            if not stop.is_set():
                put(exc)

    thread = threading.Thread(target=decode, name="listen-decode", daemon=True)
    thread.start()
    step = int(CHUNK_SECONDS * SAMPLE_RATE) * 2
    buffered = b""
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                buffered += item
            while len(buffered) >= step or (item is None and buffered):
                chunk, buffered = buffered[:step], buffered[step:]
                await clock.release(len(chunk) / 2 / SAMPLE_RATE)
                yield chunk
            if item is None:
                return
    finally:
        stop.set()


@dataclass
class Clock:
    """Real time against audio time: when the first chunk left, and how much has."""

    start: float = 0.0
    sent_seconds: float = 0.0

    async def release(self, seconds: float) -> None:
        now = time.monotonic()
        if not self.start:
            self.start = now
        self.sent_seconds += seconds
        delay = self.start + self.sent_seconds - now
        if delay > 0:
            await asyncio.sleep(delay)

    def spoken_at(self, audio_seconds: float) -> float:
        """When the audio at ``audio_seconds`` was sent (its real-time moment)."""
        return self.start + audio_seconds


@dataclass
class Display:
    """Partial text as it changes, committed text as it firms up, with latency."""

    out: TextIO
    clock: Clock
    tty: bool = False
    committed: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    partial: str = ""

    def segment(self, text: str, end_seconds: float, final: bool) -> None:
        text = text.strip()
        if not final:
            if text != self.partial:
                self.partial = text
                if self.tty:
                    self.out.write(f"\r\033[K\033[2m… {text}\033[0m")
                else:
                    self.out.write(f"partial: {text}\n")
                self.out.flush()
            return
        latency = time.monotonic() - self.clock.spoken_at(end_seconds)
        self.committed.append(text)
        self.latencies.append(latency)
        self.partial = ""
        prefix = "\r\033[K" if self.tty else ""
        self.out.write(f"{prefix}commit {end_seconds:7.2f}s latency {latency:5.2f}s: {text}\n")
        self.out.flush()

    def summary(self) -> None:
        self.out.write(f"committed text: {' '.join(t for t in self.committed if t)}\n")
        if self.latencies:
            self.out.write(
                f"{len(self.latencies)} commits, latency first {self.latencies[0]:.2f}s, "
                f"median {statistics.median(self.latencies):.2f}s, "
                f"max {max(self.latencies):.2f}s\n"
            )
        self.out.flush()


async def listen(args: argparse.Namespace, out: TextIO) -> int:
    import grpc
    from opentelemetry import trace

    from transcriber.v1 import transcriber_pb2 as pb
    from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
    from voxmesh import telemetry
    from voxmesh.channels import dial
    from voxmesh.errors import error_details
    from voxmesh.tls import TlsSettings

    try:
        # Opened before the call, so a missing microphone or a bad URL is one line, at once.
        container = await asyncio.to_thread(open_source(args.source))
    except SourceError as exc:
        print(f"voxmesh listen: {exc}", file=sys.stderr)
        return 2
    clock = Clock()
    failure: list[BaseException] = []
    display = Display(out, clock, tty=out.isatty())

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM,
                sample_rate_hz=SAMPLE_RATE,
                language=args.language,
                model=args.model,
            )
        )
        try:
            async for chunk in paced_pcm(container, clock):
                yield pb.TranscribeRequest(audio=chunk)
        except (SourceError, OSError, ValueError) as exc:
            # The source broke mid-way (a dropped stream, a corrupt file): end the
            # audio here, so what was heard is still committed, and say so after.
            failure.append(exc)

    with trace.get_tracer("voxmesh.cli").start_as_current_span("voxmesh.cli/listen"):
        trace_id = telemetry.current_trace_id()
        async with dial(args.target, tls=TlsSettings.from_env(os.environ)) as channel:
            stub = pb_grpc.TranscriberServiceStub(channel)
            try:
                async for event in stub.Transcribe(requests(), timeout=args.timeout):
                    if event.HasField("segment"):
                        s = event.segment
                        display.segment(s.text, s.end_seconds, s.final)
            except grpc.aio.AioRpcError as exc:
                d = error_details(exc)
                print(f"\nerror: {d.code.name} {d.reason}: {d.message}", file=sys.stderr)
                print(f"trace {trace_id}", file=sys.stderr)
                return 1
    display.summary()
    out.write(f"trace {trace_id}\n")
    if failure:
        print(f"voxmesh listen: the source failed: {failure[0]}", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace, tracing: TelemetrySettings) -> int:
    """``voxmesh listen`` once the CLI resolved where the mesh is (args.target, tracing)."""
    from voxmesh import telemetry

    provider = telemetry.setup(tracing)
    try:
        return asyncio.run(listen(args, sys.stdout))
    except KeyboardInterrupt:
        return 130
    finally:
        provider.shutdown()


def add_parser(sub: Any) -> None:
    """Register ``voxmesh listen`` on the CLI's subcommands."""
    p = sub.add_parser(
        "listen",
        help="live transcription of a file (at real-time pace), a URL or the microphone",
    )
    p.add_argument("source", help="a media file, an http(s)/HLS/RTSP URL, or 'mic'")
    p.add_argument(
        "--target",
        default=None,
        help="the transcriber (default: TRANSCRIBER_TARGET, else the running `voxmesh up`'s, "
        "else 127.0.0.1:50052)",
    )
    p.add_argument("--language", default="", help="ISO 639-1 code; empty detects")
    p.add_argument("--model", default="", help="a model from ListModels; empty: the default")
    p.add_argument(
        "--timeout", type=float, default=4 * 3600.0, help="deadline of the stream, seconds"
    )
    # The CLI (voxmesh.cli) sets the command: it knows the running mesh's record.
