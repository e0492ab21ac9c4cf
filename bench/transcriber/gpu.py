"""The transcriber's CUDA path, measured on a lent GPU machine.

Runs faster-whisper raw and the service's own windowed core (the code the
gRPC stream drives, minus the container decoding, which is CPU work) on the
same audio, on CUDA float16 and on the CPU with int8 in the same run, and
prints real-time factors, GPU memory and the core/raw ratio as JSON.

    python bench/transcriber/gpu.py --model DIR --audio DIR [--out FILE]

The audio directory holds jfk.npy and long.npy: 16 kHz mono int16 arrays
(decoded ahead of time, so the machine needs no FFmpeg).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

try:  # The device image has no PyAV; only the decoders need it.
    import av  # noqa: F401
except ImportError:  # pragma: no cover - device only
    for name in ("av", "av.audio", "av.audio.resampler", "av.error"):
        sys.modules[name] = types.ModuleType(name)

from faster_whisper import WhisperModel

from transcriber.asr import DecodeOptions, SpeechRecognizer
from transcriber.windowing import WindowedTranscriber

JFK = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)


def gpu_memory_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return int(out.splitlines()[0]) if out else -1


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(1, len(r))


def raw(model: WhisperModel, audio: np.ndarray, beam: int) -> tuple[float, str]:
    start = time.perf_counter()
    segments, _ = model.transcribe(audio, language="en", beam_size=beam, vad_filter=False)
    text = " ".join(s.text for s in segments)
    return time.perf_counter() - start, text


def core(model: WhisperModel, audio: np.ndarray, beam: int) -> tuple[float, str]:
    recognizer = SpeechRecognizer(model, name="tiny.en", multilingual=False)
    out: list[str] = []

    def emit(event: Any) -> None:
        seg = getattr(event, "segment", None)
        if seg is not None:
            out.append(seg.text)

    chunks = [audio[i : i + 16000] for i in range(0, audio.size, 16000)]
    start = time.perf_counter()
    WindowedTranscriber(
        recognizer,
        DecodeOptions(language="en", beam_size=beam),
        emit=emit,
        cancel=threading.Event(),
    ).run(chunks)
    return time.perf_counter() - start, " ".join(out)


def concurrent(model: WhisperModel, audio: np.ndarray, n: int, beam: int) -> float:
    def one() -> None:
        raw(model, audio, beam)

    start = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def bench(
    device: str, compute: str, model_dir: str, jfk: np.ndarray, long: np.ndarray
) -> dict[str, Any]:
    before = gpu_memory_mib() if device == "cuda" else 0
    t0 = time.perf_counter()
    model = WhisperModel(
        model_dir,
        device=device,
        compute_type=compute,
        num_workers=4,
        cpu_threads=16 if device == "cpu" else 0,
    )
    load = time.perf_counter() - t0
    raw(model, jfk, 1)  # warm-up
    seconds = long.size / 16000
    res: dict[str, Any] = {"device": device, "compute_type": compute, "load_s": round(load, 2)}
    _t, text = raw(model, jfk, 5)
    res["jfk_wer_beam5"] = round(wer(JFK, text), 3)
    for beam in (1, 5):
        t_raw, _ = raw(model, long, beam)
        t_core, _text_core = core(model, long, beam)
        res[f"beam{beam}"] = {
            "raw_s": round(t_raw, 2),
            "raw_rtf_x": round(seconds / t_raw, 1),
            "core_s": round(t_core, 2),
            "core_over_raw": round(t_core / t_raw, 3),
        }
    t_seq = 4 * raw(model, long, 1)[0]
    t_par = concurrent(model, long, 4, 1)
    res["four_streams_throughput_vs_sequential"] = round(t_seq / t_par, 2)
    if device == "cuda":
        res["gpu_memory_mib_model_and_work"] = gpu_memory_mib() - before
    res["audio_seconds"] = seconds
    return res


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--audio", required=True)
    p.add_argument("--out", default="")
    p.add_argument("--skip-cpu", action="store_true")
    a = p.parse_args()
    jfk = np.load(Path(a.audio) / "jfk.npy").astype(np.float32) / 32767
    long = np.load(Path(a.audio) / "long.npy").astype(np.float32) / 32767
    results = {"cuda": bench("cuda", "float16", a.model, jfk, long)}
    print(json.dumps(results, indent=1), flush=True)
    if not a.skip_cpu:
        results["cpu"] = bench("cpu", "int8", a.model, jfk, long)
    text = json.dumps(results, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
