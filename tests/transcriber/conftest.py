"""Fixtures for transcriber tests: reference audio, encoders, a real gRPC server."""

from __future__ import annotations

import io
import json
import re
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import av.audio.resampler
import grpc
import jiwer
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from transcriber.audio import SAMPLE_RATE
from transcriber.config import TranscriberConfig
from transcriber.models import ModelRegistry
from transcriber.server import create_app
from transcriber.service import TranscriberService
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.server import ServerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]

Audio = npt.NDArray[np.float32]


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """The shared reference recordings: <repo>/../shared/audio (CI) or /work/shared/audio."""
    for candidate in (REPO_ROOT.parent / "shared" / "audio", Path("/work/shared/audio")):
        if (candidate / "transcripts.json").exists():
            return candidate
    pytest.fail("reference audio not found beside the repository (../shared/audio)")


@pytest.fixture(scope="session")
def transcripts(audio_dir: Path) -> dict[str, Any]:
    return json.loads((audio_dir / "transcripts.json").read_text())  # type: ignore[no-any-return]


def normalise(text: str) -> str:
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


@pytest.fixture(scope="session")
def jfk_audio(audio_dir: Path) -> Audio:
    from faster_whisper import decode_audio

    return decode_audio(str(audio_dir / "jfk.flac")).astype(np.float32)  # type: ignore[no-any-return]


def encode(
    audio: Audio,
    container: str,
    codec: str,
    *,
    rate: int = 48000,
    layout: str = "stereo",
    video: bool = False,
    audio_track: bool = True,
    options: dict[str, str] | None = None,
) -> bytes:
    """Encode 16 kHz mono float audio (and optionally a black video track) with PyAV."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container, options=options or {}) as out:
        vstream = None
        if video:
            vstream = out.add_stream("libx264", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        if audio_track:
            astream = out.add_stream(codec, rate=rate, layout=layout)
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            assert isinstance(astream, av.AudioStream)
            resampler = av.audio.resampler.AudioResampler(
                format=astream.format.name, layout=layout, rate=rate
            )
            for f in resampler.resample(frame) + resampler.resample(None):
                out.mux(astream.encode(f))
            out.mux(astream.encode(None))
        if vstream is not None:
            black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for i in range(int(audio.size / SAMPLE_RATE * 5)):
                vf = black.reformat(format="yuv420p")
                vf.pts = i
                out.mux(vstream.encode(vf))
            out.mux(vstream.encode(None))
    return buf.getvalue()


@pytest.fixture(scope="session")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> TranscriberConfig:
    # Tests of mechanics (streaming, limits, errors) pin tiny.en, which loads
    # and runs about three times faster than the default multilingual base;
    # the language tests ask for base by name.
    return TranscriberConfig(
        model_name="tiny.en",
        device="cpu",
        compute_type="int8",
        beam_size=1,
        model_cache=tmp_path_factory.mktemp("models"),
    )


@pytest.fixture(scope="session")
def registry(base_config: TranscriberConfig) -> ModelRegistry:
    """tiny.en, loaded once for the whole session."""
    reg = ModelRegistry(replace(base_config, max_active_streams=4))
    reg.get()
    return reg


@dataclass
class RunningServer:
    service: TranscriberService
    channel: grpc.aio.Channel
    stub: pb_grpc.TranscriberServiceAsyncStub
    target: str


ServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest_asyncio.fixture
async def start_server(
    registry: ModelRegistry, base_config: TranscriberConfig
) -> AsyncIterator[ServerFactory]:
    """Start a transcriber on 127.0.0.1:0 with config overrides; stop everything after."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(**overrides: Any) -> RunningServer:
        config = replace(base_config, **overrides)
        settings = ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0)
        app = create_app(config, settings, registry=registry)
        port = await app.start()
        service = app.service

        async def stop() -> None:
            await app.stop(0)

        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", 32 << 20),
                ("grpc.max_send_message_length", 32 << 20),
            ],
        )

        async def cleanup() -> None:
            await channel.close()
            await stop()
            service.close()

        cleanups.append(cleanup)
        stub = pb_grpc.TranscriberServiceStub(channel)
        return RunningServer(service, channel, stub, target)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


def chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
