"""Transcriber benchmark: raw faster-whisper against the gRPC streaming path.

One command: ``python -m bench.transcriber`` (or ``python bench/transcriber/run.py``).
Everything is measured in this run on this machine, and reported as ratios
to a baseline measured alongside:

* one-shot faster-whisper (decode the whole file, transcribe) vs the same
  file streamed through Transcribe over a real socket, same model and settings;
* 4 concurrent streams vs the same 4 one after another (throughput ratio);
* time to the first segment, real-time factor, WER of both paths, peak RSS;
* live mode: 16 kHz PCM sent at real-time pace, time to the first segment,
  and how many such streams at once still keep up with real time (each
  stream's last final segment within a few seconds of the end of its audio);
  at each number of streams, the live WER next to an offline beam-1
  transcription of the same audio, and the commit lag (how long after a
  final segment's end was spoken it arrived);
* WER on the English clips and CER on the Russian one (tests/data), through
  TranscribeFile with the language detected where the model can.

Each model of ``--models`` (default: the multilingual base, the default,
next to tiny.en) is measured in turn and reported in a column of its own.

The input is real speech from ../shared/audio (the MIT licence grant from
multilingual.mp3, JFK, the licence again: about 71 s), encoded as OGG/Opus
like a Telegram voice note.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import resource
import string
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import av  # noqa: E402
import av.audio.resampler  # noqa: E402
import grpc  # noqa: E402
import jiwer  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from transcriber.config import TranscriberConfig  # noqa: E402
from transcriber.models import ModelRegistry  # noqa: E402
from transcriber.server import create_app  # noqa: E402
from transcriber.v1 import transcriber_pb2 as pb  # noqa: E402
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc  # noqa: E402
from voxmesh.server import ServerSettings  # noqa: E402

MIT_GRANT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files (the Software), to deal in the Software "
    "without restriction, including without limitation the rights to use, copy, modify, merge, "
    "publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons "
    "to whom the Software is furnished to do so, subject to the following conditions: The above "
    "copyright notice and this permission notice shall be included in all copies or substantial "
    "portions of the Software."
)
SR = 16_000


def shared_audio() -> Path:
    for candidate in (REPO.parent / "shared" / "audio", Path("/work/shared/audio")):
        if (candidate / "jfk.flac").exists():
            return candidate
    raise SystemExit("reference audio not found: expected ../shared/audio beside the repo")


def normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def corpus(repeat: int) -> tuple[npt.NDArray[np.float32], str]:
    import json

    from faster_whisper import decode_audio

    audio_dir = shared_audio()
    jfk_text = json.loads((audio_dir / "transcripts.json").read_text())["jfk.flac"]["text"]
    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SR)]
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    gap = np.zeros(SR // 2, np.float32)
    parts, texts = [], []
    for _ in range(repeat):
        parts += [mit, gap, jfk, gap, mit, gap]
        texts += [MIT_GRANT, jfk_text, MIT_GRANT]
    return np.concatenate(parts).astype(np.float32), " ".join(texts)


def encode_ogg(audio: npt.NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1),
            format="s16",
            layout="mono",
        )
        frame.sample_rate = SR
        resampler = av.audio.resampler.AudioResampler(
            format=stream.format.name, layout="mono", rate=48000
        )
        for f in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return buf.getvalue()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class StreamRun:
    wall: float
    first_segment: float
    text: str


async def stream_once(
    stub: pb_grpc.TranscriberServiceAsyncStub, data: bytes, beam: int, chunk: int = 64 * 1024
) -> StreamRun:
    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig(language="en", beam_size=beam))
        for i in range(0, len(data), chunk):
            yield pb.TranscribeRequest(audio=data[i : i + chunk])

    start = time.perf_counter()
    first = float("nan")
    texts: list[str] = []
    async for response in stub.Transcribe(requests(), timeout=600):
        if response.WhichOneof("event") == "segment":
            if not texts:
                first = time.perf_counter() - start
            texts.append(response.segment.text)
    return StreamRun(time.perf_counter() - start, first, " ".join(texts))


@dataclass
class LiveRun:
    first_segment: float
    #: Seconds from the last audio chunk sent to the Done message.
    lag: float
    text: str
    #: Median seconds from the end of a final segment's audio being sent to its arrival.
    commit_lag: float = float("nan")


async def live_once(
    stub: pb_grpc.TranscriberServiceAsyncStub, audio: npt.NDArray[np.float32], step: float = 0.2
) -> LiveRun:
    """Send 16 kHz s16le PCM at real-time pace, one chunk per ``step`` seconds."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = int(step * SR) * 2
    start = 0.0
    sent_all = float("nan")

    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        nonlocal start, sent_all
        yield pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=SR, language="en"
            )
        )
        start = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm), size)):
            delay = start + (n + 1) * step - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield pb.TranscribeRequest(audio=pcm[i : i + size])
        sent_all = time.perf_counter()

    first = float("nan")
    finals: dict[int, str] = {}
    lags: list[float] = []
    ended = float("nan")
    async for response in stub.Transcribe(requests(), timeout=audio.size / SR + 300):
        kind = response.WhichOneof("event")
        if kind == "segment":
            now = time.perf_counter() - start
            if first != first:  # nan: nothing yet
                first = now
            if response.segment.final:
                finals[response.segment.segment_id] = response.segment.text
                lags.append(now - response.segment.end_seconds)
        elif kind == "done":
            ended = time.perf_counter()
    text = "".join(finals[i] for i in sorted(finals))
    commit = float(np.median(lags)) if lags else float("nan")
    return LiveRun(first, ended - sent_all, text, commit)


async def live_capacity(
    stub: pb_grpc.TranscriberServiceAsyncStub,
    audio: npt.NDArray[np.float32],
    reference: str,
    counts: list[int],
    max_lag: float,
) -> tuple[int, list[str], list[str]]:
    """The most concurrent real-time streams whose results all end within max_lag of the audio.

    Also each count's mean live WER and median commit lag, whether or not it kept up.
    """
    best = 0
    notes: list[str] = []
    accuracy: list[str] = []
    behind = False
    for n in counts:
        runs = await asyncio.gather(*(live_once(stub, audio) for _ in range(n)))
        worst = max(r.lag for r in runs)
        ok = worst <= max_lag
        notes.append(f"{n}: worst lag {worst:.1f} s{'' if ok else ' (falls behind)'}")
        mean_wer = float(np.mean([wer(reference, r.text) for r in runs]))
        commit = float(np.median([r.commit_lag for r in runs]))
        accuracy.append(f"{n}: WER {mean_wer:.3f}, commit lag {commit:.1f} s")
        if not ok:
            behind = True
        if not behind:
            best = n
    return best, notes, accuracy


async def file_accuracy(
    stub: pb_grpc.TranscriberServiceAsyncStub, model: str, multilingual: bool
) -> list[tuple[str, str]]:
    """WER on the English clips, CER on the Russian one, through TranscribeFile."""
    from bench.transcriber.accuracy import cer, clips

    rows: list[tuple[str, str]] = []
    for name, language, audio, reference in clips():
        if language != "en" and not multilingual:
            rows.append((f"{name} ({language}) error, language detected", "n/a (English-only)"))
            continue
        reply = await stub.TranscribeFile(
            pb.TranscribeFileRequest(
                config=pb.TranscriptionConfig(model=model, language="" if multilingual else "en"),
                audio=encode_ogg(audio),
            ),
            timeout=600,
        )
        text = " ".join(s.text for s in reply.segments)
        if language == "ru":
            error = f"CER {cer(reference, text):.3f}"
        else:
            error = f"WER {wer(reference, text):.3f}"
        key = f"{name} ({language}) error, language detected"
        rows.append((key, f"{error}, {reply.language.language}"))
    return rows


async def bench(args: argparse.Namespace) -> list[tuple[str, str]]:
    from faster_whisper import decode_audio

    audio, reference = corpus(args.repeat)
    seconds = audio.size / SR
    data = encode_ogg(audio)
    config = replace(
        TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": args.device}),
        model_name=args.model,
        beam_size=args.beam,
    )
    if args.max_active:
        config = replace(config, max_active_streams=args.max_active)
    if args.cpu_threads is not None:
        config = replace(config, cpu_threads=args.cpu_threads)
    if args.batch is not None:
        config = replace(config, batch_streams=args.batch)
    counts = [int(c) for c in args.live_streams.split(",") if c.strip()]
    # Capacity is measured past the server's admission limit, which would refuse the rest.
    config = replace(config, max_live_streams=max([config.max_live_streams, *counts]))
    registry = ModelRegistry(config)
    recognizer = registry.get(args.model)
    rows: list[tuple[str, str]] = [
        (
            "device / model / compute / beam",
            f"{config.device} / {args.model} / {config.compute_type} / {args.beam}",
        ),
        ("audio", f"{seconds:.1f} s OGG/Opus, {len(data) / 1024:.0f} KiB"),
        ("max active streams", str(config.max_active_streams)),
        ("batch streams", f"{'on' if config.batch_streams else 'off'} (max {config.max_batch})"),
    ]

    # Baseline: one-shot faster-whisper, decoding included, as its README does it.
    model = recognizer._model

    def raw() -> tuple[float, str]:
        start = time.perf_counter()
        pcm = decode_audio(io.BytesIO(data))
        segments, _ = model.transcribe(pcm, language="en", beam_size=args.beam)
        text = " ".join(s.text for s in segments)
        return time.perf_counter() - start, text

    # Best of two for both paths: the first call of a process pays one-off warm-up.
    raw_wall, raw_text = min(raw(), raw())

    settings = ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0)
    app = create_app(config, settings, registry=registry)
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TranscriberServiceStub(channel)
            one = min(
                [await stream_once(stub, data, args.beam) for _ in range(2)], key=lambda r: r.wall
            )
            n = args.streams
            start = time.perf_counter()
            for _ in range(n):
                await stream_once(stub, data, args.beam)
            sequential = time.perf_counter() - start
            start = time.perf_counter()
            runs = await asyncio.gather(*(stream_once(stub, data, args.beam) for _ in range(n)))
            concurrent = time.perf_counter() - start
            live_audio, live_reference = live_corpus(args.live_seconds)
            live = await live_once(stub, live_audio) if args.live_seconds else None
            sustained, live_notes, live_accuracy = (
                await live_capacity(stub, live_audio, live_reference, counts, args.max_lag)
                if args.live_seconds and counts
                else (0, [], [])
            )
            offline_wer = float("nan")
            if args.live_seconds:
                # The live mode's yardstick: the same audio, offline, beam 1.
                reply = await stub.TranscribeFile(
                    pb.TranscribeFileRequest(
                        config=pb.TranscriptionConfig(language="en", beam_size=1),
                        audio=encode_ogg(live_audio),
                    ),
                    timeout=600,
                )
                offline_wer = wer(live_reference, " ".join(s.text for s in reply.segments))
            accuracy = await file_accuracy(stub, args.model, recognizer.multilingual)
    finally:
        await app.stop(0)

    rows += [
        (
            "raw faster-whisper wall (baseline)",
            f"{raw_wall:.2f} s  ({seconds / raw_wall:.1f}x real time)",
        ),
        ("gRPC stream wall", f"{one.wall:.2f} s  ({seconds / one.wall:.1f}x real time)"),
        ("gRPC / raw wall ratio", f"{one.wall / raw_wall:.2f}"),
        (
            "time to first segment (gRPC)",
            f"{one.first_segment:.2f} s  ({one.first_segment / one.wall:.0%} of the stream)",
        ),
        ("WER raw / gRPC", f"{wer(reference, raw_text):.3f} / {wer(reference, one.text):.3f}"),
        (f"{n} sequential streams wall", f"{sequential:.2f} s"),
        (f"{n} concurrent streams wall", f"{concurrent:.2f} s"),
        (f"throughput ratio {n} concurrent / sequential", f"{sequential / concurrent:.2f}"),
        (
            "first segment, concurrent (median)",
            f"{float(np.median([r.first_segment for r in runs])):.2f} s",
        ),
    ]
    if live is not None:
        live_seconds = live_audio.size / SR
        rows += [
            (
                f"live: time to first segment ({live_seconds:.0f} s PCM at real time)",
                f"{live.first_segment:.2f} s  (goal < {0.1 * live_seconds + 3:.1f} s)",
            ),
            ("live: final lag after the audio ends", f"{live.lag:.2f} s"),
            ("live: WER", f"{wer(live_reference, live.text):.3f}"),
            ("live: commit lag (median)", f"{live.commit_lag:.2f} s"),
            ("offline beam-1 WER of the live audio", f"{offline_wer:.3f}"),
        ]
    if live_notes:
        rows += [
            (
                f"live streams sustained at real time (lag <= {args.max_lag:.0f} s)",
                f"{sustained}  ({'; '.join(live_notes)})",
            ),
            ("live WER and commit lag by streams", "; ".join(live_accuracy)),
        ]
    rows += accuracy
    stats = getattr(recognizer, "stats", None)
    if stats is not None:
        rows.append(
            (
                "batches run (windows, largest)",
                f"{stats.batches} ({stats.items}, {stats.largest}); {stats.rerun} re-run",
            )
        )
    rows.append(("peak RSS", f"{peak_rss_mib():.0f} MiB"))
    return rows


def live_corpus(seconds: float) -> tuple[npt.NDArray[np.float32], str]:
    """About ``seconds`` of English for live mode: whole sentences of the corpus, in order."""
    import json

    from faster_whisper import decode_audio

    audio_dir = shared_audio()
    jfk_text = json.loads((audio_dir / "transcripts.json").read_text())["jfk.flac"]["text"]
    jfk = decode_audio(str(audio_dir / "jfk.flac"))
    mit = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SR)]
    gap = np.zeros(SR // 2, np.float32)
    pieces = [(mit, MIT_GRANT), (jfk, jfk_text)]
    parts: list[npt.NDArray[np.float32]] = []
    texts: list[str] = []
    total = 0.0
    i = 0
    while total < seconds - 5:
        clip, text = pieces[i % 2]
        parts += [clip, gap]
        texts.append(text)
        total += (clip.size + gap.size) / SR
        i += 1
    if not parts:
        return np.zeros(0, np.float32), ""
    return np.concatenate(parts).astype(np.float32), " ".join(texts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="corpus repetitions (~71 s each)")
    parser.add_argument(
        "--models", default="base,tiny.en", help="models to measure, one column each"
    )
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--max-active", type=int, default=0, help="0: the server default")
    parser.add_argument("--cpu-threads", type=int, default=None, help="default: the server's")
    parser.add_argument(
        "--batch",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode concurrent streams' windows together (default: TRANSCRIBER_BATCH_STREAMS)",
    )
    parser.add_argument(
        "--live-seconds", type=float, default=30.0, help="live clip length (0: skip live mode)"
    )
    parser.add_argument(
        "--live-streams", default="1,2,4,6", help="concurrent live streams to try, in order"
    )
    parser.add_argument(
        "--max-lag", type=float, default=5.0, help="seconds after its audio a live stream may end"
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    columns = [asyncio.run(bench(argparse.Namespace(**vars(args), model=m))) for m in models]
    keys = list(dict.fromkeys(k for rows in columns for k, _ in rows))
    values = [dict(rows) for rows in columns]
    width = max(len(k) for k in keys)
    print(f"{'measure'.ljust(width)}  " + "  |  ".join(models))
    print(f"{'-' * width}  {'-' * 30}")
    for key in keys:
        print(f"{key.ljust(width)}  " + "  |  ".join(v.get(key, "") for v in values))


if __name__ == "__main__":
    main()
