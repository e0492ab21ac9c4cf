"""The transcriber's own metrics: streams, audio seconds, real-time factor, GPU memory."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from transcriber.admission import Admission

# processing seconds / audio seconds: 0.03 is ~35x faster than real time.
RTF_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)


def _readers(admission: Admission) -> tuple[Callable[[], float], Callable[[], float]]:
    return (lambda: admission.active), (lambda: admission.queued)


class TranscriberMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        admissions: dict[str, Admission],
        device: str,
        live_lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        active = Gauge(
            "voxmesh_transcriber_streams_active",
            "Streams being transcribed, by mode (file, live).",
            ["mode"],
            registry=registry,
        )
        queued = Gauge(
            "voxmesh_transcriber_streams_queued",
            "Streams waiting for a slot, by mode (file, live).",
            ["mode"],
            registry=registry,
        )
        for mode, admission in admissions.items():
            read_active, read_queued = _readers(admission)
            active.labels(mode).set_function(read_active)
            queued.labels(mode).set_function(read_queued)
        Gauge(
            "voxmesh_transcriber_live_lag_seconds",
            "Audio the live stream furthest behind has received and not yet read, in seconds.",
            registry=registry,
        ).set_function(live_lag)
        self.audio_seconds = Counter(
            "voxmesh_transcriber_audio_seconds", "Seconds of audio transcribed.", registry=registry
        )
        self.rtf = Histogram(
            "voxmesh_transcriber_rtf",
            "Real-time factor of finished jobs (processing seconds per audio second).",
            buckets=RTF_BUCKETS,
            registry=registry,
        )
        self.jobs = Counter(
            "voxmesh_transcriber_jobs", "Jobs finished, by outcome.", ["outcome"], registry=registry
        )
        if device == "cuda":
            self._gpu = _GpuMemory()
            Gauge(
                "voxmesh_transcriber_gpu_memory_bytes",
                "GPU memory in use on this pod's device.",
                registry=registry,
            ).set_function(self._gpu.used_bytes)

    def job_done(self, audio_seconds: float, processing_seconds: float) -> None:
        self.jobs.labels("ok").inc()
        self.audio_seconds.inc(audio_seconds)
        if audio_seconds > 0:
            self.rtf.observe(processing_seconds / audio_seconds)

    def job_failed(self, outcome: str) -> None:
        self.jobs.labels(outcome).inc()


class _GpuMemory:
    """nvidia-smi at most every 10 s: a scrape must not wait on the driver each time."""

    def __init__(self) -> None:
        self._value = 0.0
        self._at = 0.0

    def used_bytes(self) -> float:
        now = time.monotonic()
        if now - self._at > 10:
            self._at = now
            try:
                command = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"]
                out = subprocess.run(
                    command, capture_output=True, text=True, timeout=5, check=True
                ).stdout
                self._value = float(out.split()[0]) * 1024 * 1024
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                pass
        return self._value
