"""Facade benchmark: the HTTP facade's overhead over a direct gRPC call on the same file.

One command: ``python -m bench.facade``. A transcriber and a facade run as
their own processes (as in k8s); this process alternates the two arms on the
same OGG/Opus file, one request at a time:

* direct: ``Transcribe`` over gRPC, the file in 256 KiB chunks (what the facade sends);
* facade: ``POST /v1/audio/transcriptions`` (multipart, response_format=json).

It prints each arm's median wall time and their ratio (goal: facade / direct
<= 1.05), and checks both arms return the same text. The default input is the
transcriber bench's 71 s of speech (``--repeat`` scales it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import grpc  # noqa: E402

from bench.transcriber.run import corpus, encode_ogg, wer  # noqa: E402
from transcriber.v1 import transcriber_pb2 as pb  # noqa: E402
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc  # noqa: E402
from voxmesh_dev.embedded import free_port  # noqa: E402

API_KEY = "sk-bench-0123456789abcdef"
CHUNK = 256 * 1024


def start(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module],
        env={**os.environ, "PYTHONPATH": str(REPO), "VOXMESH_TRACES_EXPORTER": "none", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_ready(stub: pb_grpc.TranscriberServiceAsyncStub, facade_url: str) -> None:
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                await stub.ListModels(pb.ListModelsRequest(), timeout=2)
                async with http.get(f"{facade_url}/readyz") as resp:
                    if resp.status == 200:
                        return
            except (grpc.aio.AioRpcError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("the transcriber or the facade did not become ready in 180 s")


async def direct(stub: pb_grpc.TranscriberServiceAsyncStub, data: bytes) -> tuple[float, str]:
    async def requests() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for i in range(0, len(data), CHUNK):
            yield pb.TranscribeRequest(audio=data[i : i + CHUNK])

    start_at = time.perf_counter()
    texts = [
        e.segment.text
        async for e in stub.Transcribe(requests(), timeout=600)
        if e.WhichOneof("event") == "segment" and e.segment.final
    ]
    return time.perf_counter() - start_at, "".join(texts).strip()


async def through_facade(http: aiohttp.ClientSession, url: str, data: bytes) -> tuple[float, str]:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", data, filename="speech.ogg", content_type="audio/ogg")
    start_at = time.perf_counter()
    async with http.post(
        f"{url}/v1/audio/transcriptions",
        data=form,
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise SystemExit(f"facade answered {resp.status}: {body}")
    return time.perf_counter() - start_at, str(body["text"])


async def bench(args: argparse.Namespace) -> None:
    audio, reference = corpus(args.repeat)
    data = encode_ogg(audio)
    seconds = audio.size / 16_000
    grpc_port, http_port = free_port(), free_port()
    facade_url = f"http://127.0.0.1:{http_port}"
    procs = [
        start("transcriber", {"TRANSCRIBER_LISTEN_ADDR": f"127.0.0.1:{grpc_port}"}),
        start(
            "facade",
            {
                "FACADE_HTTP_ADDR": f"127.0.0.1:{http_port}",
                "TRANSCRIBER_TARGET": f"127.0.0.1:{grpc_port}",
                "FACADE_API_KEYS": f"bench:{API_KEY}",
            },
        ),
    ]
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
            aiohttp.ClientSession() as http,
        ):
            stub: pb_grpc.TranscriberServiceAsyncStub = pb_grpc.TranscriberServiceStub(channel)
            await wait_ready(stub, facade_url)
            print(f"input: {seconds:.1f} s of speech, OGG/Opus, {len(data) / 1024:.0f} KiB")
            # One of each first: model warm-up and connection set-up are not measured.
            await direct(stub, data)
            await through_facade(http, facade_url, data)
            times: dict[str, list[float]] = {"direct": [], "facade": []}
            texts: dict[str, str] = {}
            for n in range(args.rounds):
                # Alternate which arm goes first, so drift in the machine's speed hits both.
                order = ("direct", "facade") if n % 2 == 0 else ("facade", "direct")
                for arm in order:
                    if arm == "direct":
                        wall, text = await direct(stub, data)
                    else:
                        wall, text = await through_facade(http, facade_url, data)
                    times[arm].append(wall)
                    texts[arm] = text
                print(
                    f"round {n + 1}: direct {times['direct'][-1]:.2f} s, "
                    f"facade {times['facade'][-1]:.2f} s"
                )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    d, f = statistics.median(times["direct"]), statistics.median(times["facade"])
    pairs = [b / a for a, b in zip(times["direct"], times["facade"], strict=True)]
    print(f"direct gRPC (baseline): median {d:.3f} s")
    print(f"through the facade:     median {f:.3f} s")
    print(
        f"ratio facade/direct: {f / d:.3f} (median of pairs {statistics.median(pairs):.3f}; "
        "goal <= 1.05)"
    )
    print(
        f"same text: {texts['direct'] == texts['facade']}; WER direct "
        f"{wer(reference, texts['direct']):.3f}, facade {wer(reference, texts['facade']):.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.facade", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="requests per arm")
    parser.add_argument("--repeat", type=int, default=1, help="copies of the 71 s corpus")
    asyncio.run(bench(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
