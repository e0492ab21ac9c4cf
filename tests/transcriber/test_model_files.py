"""Bundled model files are verified at every load; a GPU that fails to load falls back to CPU."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import ctranslate2
import grpc
import pytest

from transcriber import models
from transcriber.config import TranscriberConfig, builtin_tiny_en_dir
from transcriber.errors import ModelUnavailable
from transcriber.models import TINY_EN_SHA256, ModelRegistry, join_base_model
from transcriber.server import create_app
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.server import ServerSettings

pytestmark = pytest.mark.slow


def tiny_copy(tmp_path: Path) -> Path:
    """tiny.en's directory with small files copied and the big ones linked (never modified)."""
    source = builtin_tiny_en_dir()
    assert source is not None
    target = tmp_path / "tiny.en"
    target.mkdir()
    for name in TINY_EN_SHA256:
        if name in ("config.json", "vocabulary.txt"):
            shutil.copyfile(source / name, target / name)
        else:
            (target / name).symlink_to(source / name)
    return target


def test_a_tampered_bundled_file_refuses_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tiny_copy(tmp_path)
    monkeypatch.setattr(models, "_tiny_en_dir", lambda: copy)
    config = TranscriberConfig(model_name="tiny.en", model_cache=tmp_path / "cache")
    ModelRegistry(config).get()  # the pristine copy loads
    vocabulary = copy / "vocabulary.txt"
    vocabulary.write_bytes(vocabulary.read_bytes().replace(b"the", b"teh", 1))
    with pytest.raises(ModelUnavailable) as err:
        ModelRegistry(config).get()
    message = err.value.message
    assert "\n" not in message
    assert "vocabulary.txt" in message and TINY_EN_SHA256["vocabulary.txt"] in message
    assert "refusing to load" in message
    (copy / "config.json").unlink()
    with pytest.raises(ModelUnavailable, match=r"config\.json is missing"):
        ModelRegistry(config).get()


def test_a_tampered_base_in_the_cache_is_refused(tmp_path: Path) -> None:
    joined = join_base_model(tmp_path)
    # The join's marker still says "verified": only a check at load catches this.
    with (joined / "model.bin").open("r+b") as f:
        f.seek(1 << 20)
        byte = f.read(1)
        f.seek(1 << 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    config = TranscriberConfig(model_name="base", model_cache=tmp_path)
    with pytest.raises(ModelUnavailable, match=r"model 'base': .*model\.bin has SHA-256"):
        ModelRegistry(config).get()


async def test_cuda_failing_to_load_serves_on_cpu_int8(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    # ctranslate2 reports a GPU; loading on it then fails for real (this
    # machine has no CUDA driver), as a driver or cuBLAS mismatch would.
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    config = TranscriberConfig.from_env(
        {"TRANSCRIBER_MODEL_NAME": "tiny.en", "TRANSCRIBER_MAX_ACTIVE_STREAMS": "2"}
    )
    assert (config.device, config.compute_type) == ("cuda", "float16")
    config = replace(config, model_cache=Path("/nonexistent-unused"))
    settings = ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0)
    app = create_app(config, settings)
    with caplog.at_level(logging.WARNING, logger="transcriber.models"):
        port = await app.start()
    try:
        warnings = [r.getMessage() for r in caplog.records if "CUDA failed" in r.getMessage()]
        assert len(warnings) == 1 and "serving on cpu with int8" in warnings[0]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TranscriberServiceStub(channel)
            listed = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
            assert {(m.device, m.compute_type) for m in listed.models} == {("cpu", "int8")}
            reply = await stub.TranscribeFile(
                pb.TranscribeFileRequest(audio=(audio_dir / "jfk.flac").read_bytes()),
                timeout=60,
            )
        assert reply.done.device == "cpu" and reply.done.model == "tiny.en"
        assert "fellow americans" in reply.done.formatted_text.lower()
    finally:
        await app.stop(0)
