"""Every server, as its own process: health, reflection (grpcurl) and drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
from faster_whisper.audio import decode_audio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers import readme_block, reference_text, wer
from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
from voxmesh.audiofiles import encode
from voxmesh_dev.embedded import free_port
from voxmesh_dev.mesh import Mesh

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

GRPCURL = shutil.which("grpcurl", path=str(pathlib.Path(sys.executable).parent)) or "grpcurl"


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("billing", "billing.v1.BillingService"),
        ("transcriber", "transcriber.v1.TranscriberService"),
        ("notifier", "notifier.v1.NotifierService"),
    ],
)
async def test_grpcurl_lists_service_and_health(mesh: Mesh, name: str, service: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        mesh.target(name),
        "list",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    listed = set(out.decode().split())
    assert {service, "grpc.health.v1.Health"} <= listed
    proc = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        "-d",
        f'{{"service": "{service}"}}',
        mesh.target(name),
        "grpc.health.v1.Health/Check",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert '"SERVING"' in out.decode()


async def run_readme(block: str, mesh: Mesh, cwd: pathlib.Path) -> str:
    """Run a README block word for word but for the mesh's ports and the venv's grpcurl."""
    for name, port in (("billing", 50051), ("transcriber", 50052), ("notifier", 50053)):
        block = block.replace(f"127.0.0.1:{port}", mesh.target(name))
    block = block.replace(".venv/bin/grpcurl", GRPCURL)
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        block,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, (block, err.decode())
    return out.decode()


async def test_the_readmes_grpcurl_lines_work(mesh: Mesh, tmp_path: pathlib.Path) -> None:
    out = await run_readme(readme_block("BillingService/Quote"), mesh, tmp_path)
    assert '"status": "SERVING"' in out and "billing.v1.BillingService" in out
    assert "tiny.en" in out or "base" in out  # ListModels


async def test_the_readmes_grpcurl_transcribe_stream_works(
    mesh: Mesh, shared_audio: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (tmp_path / "talk.ogg").write_bytes(encode(shared_audio / "jfk.flac"))
    out = await run_readme(readme_block("TranscriberService/Transcribe"), mesh, tmp_path)
    # grpcurl prints each event as JSON; the SRT arrives in the final Done event.
    [done] = [doc["done"] for doc in _json_docs(out) if "done" in doc]
    srt = done.get("formattedText") or done.get("formatted_text") or ""
    assert "00:00:00,000 -->" in srt
    assert wer(reference_text(shared_audio, "jfk.flac"), _srt_text(srt)) <= 0.2, srt


def _json_docs(out: str) -> list[dict[str, Any]]:
    """grpcurl prints one JSON object per response, pretty-printed, one after another."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while (i := out.find("{", i)) >= 0:
        obj, i = decoder.raw_decode(out, i)
        docs.append(obj)
    return docs


def _srt_text(srt: str) -> str:
    lines = [ln for ln in srt.splitlines() if ln and "-->" not in ln and not ln.isdigit()]
    return " ".join(lines)


async def test_sigterm_drains_an_open_transcription_stream(
    shared_audio: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "TRANSCRIBER_LISTEN_ADDR": target,
        "TRANSCRIBER_GRACE_SECONDS": "60",
        "VOXMESH_TRACES_EXPORTER": "none",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "transcriber.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on in a thread
        [sys.executable, "-m", "transcriber"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    # About 45 s of speech: long enough to be mid-stream when SIGTERM lands.
    speech = decode_audio(str(shared_audio / "jfk.flac"))
    pcm = np.concatenate([speech] * 4)
    wav = _wav(pcm)
    ogg = encode(wav)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(300):
                try:
                    got = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if got.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
            stub = transcriber_pb2_grpc.TranscriberServiceStub(channel)
            sent_half = asyncio.Event()

            async def requests() -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
                yield transcriber_pb2.TranscribeRequest(
                    config=transcriber_pb2.TranscriptionConfig()
                )
                chunk = 16 * 1024
                for i in range(0, len(ogg), chunk):
                    yield transcriber_pb2.TranscribeRequest(audio=ogg[i : i + chunk])
                    if i >= len(ogg) // 2:
                        sent_half.set()
                    await asyncio.sleep(0.05)

            call = stub.Transcribe(requests(), timeout=120)
            reader = asyncio.ensure_future(_collect(call))
            # A load balancer watches health on its own long-lived stream.
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=120)
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            await asyncio.wait_for(sent_half.wait(), 60)
            proc.send_signal(signal.SIGTERM)
            # Health says NOT_SERVING while the stream drains ...
            got = await asyncio.wait_for(watch.read(), 10)
            assert got.status == health_pb2.HealthCheckResponse.NOT_SERVING
            # ... a new stream is refused ...
            async with grpc.aio.insecure_channel(target) as fresh:
                with pytest.raises(grpc.aio.AioRpcError):
                    await transcriber_pb2_grpc.TranscriberServiceStub(fresh).ListModels(
                        transcriber_pb2.ListModelsRequest(), timeout=2
                    )
            # ... and the open one finishes with the whole text.
            texts, done = await asyncio.wait_for(reader, 90)
        assert done is not None and await call.code() == grpc.StatusCode.OK
        reference = " ".join([reference_text(shared_audio, "jfk.flac")] * 4)
        assert wer(reference, " ".join(texts)) <= 0.10
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


async def _collect(
    call: grpc.aio.StreamStreamCall,
) -> tuple[list[str], transcriber_pb2.Done | None]:
    texts: list[str] = []
    done = None
    async for event in call:
        if event.HasField("segment") and event.segment.final:
            texts.append(event.segment.text)
        elif event.HasField("done"):
            done = event.done
    return texts, done


def _wav(pcm: np.ndarray) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()
