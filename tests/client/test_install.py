"""The client package as another team gets it: built and installed into an empty virtualenv.

No faster-whisper, no voxmesh, no PyAV there; it transcribes a file and a live
PCM stream against a real transcriber running in this test's process. Needs
PyPI (or a pip cache) for grpcio, protobuf and opentelemetry-api.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.client.conftest import CLIENT_ROOT
from tests.transcriber.conftest import Audio, ServerFactory, wer

pytestmark = pytest.mark.slow

SCRIPT = """
import asyncio, json, sys, time
from voxmesh_client import Options, TranscriberClient

target, media, raw = sys.argv[1:4]

async def spoken(pcm: bytes):
    step = 3200 * 2  # 0.2 s at 16 kHz
    start = time.monotonic()
    for n, i in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.2 - time.monotonic()))
        yield pcm[i : i + step]

async def main() -> None:
    async with TranscriberClient(target, timeout=120) as client:
        models = [m.name for m in await client.list_models()]
        transcript = await client.transcribe_file(media)
        finals = {}
        with open(raw, "rb") as f:
            pcm = f.read()
        async for event in client.live(spoken(pcm), options=Options(language="en")):
            if event.WhichOneof("event") == "segment" and event.segment.final:
                finals[event.segment.segment_id] = event.segment.text
    live = "".join(finals[i] for i in sorted(finals))
    print(json.dumps({"models": models, "file": transcript.text, "live": live}))

asyncio.run(main())
"""


def _run(cwd: Path, *args: str, timeout: float = 600, **extra_env: str) -> str:
    # Nothing of this checkout may leak into the venv's interpreter (PYTHONPATH).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | extra_env
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd
    )
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


async def test_installs_without_whisper_and_transcribes(
    start_server: ServerFactory,
    tmp_path: Path,
    audio_dir: Path,
    jfk_audio: Audio,
    transcripts: dict[str, Any],
) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        CLIENT_ROOT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    await asyncio.to_thread(_run, tmp_path, sys.executable, "-m", "venv", str(venv))
    await asyncio.to_thread(
        _run,
        tmp_path,
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        str(source),
    )
    missing = await asyncio.to_thread(
        _run,
        tmp_path,
        python,
        "-c",
        "import importlib.util as u; "
        "print([m for m in ('faster_whisper', 'ctranslate2', 'av', 'voxmesh', 'numpy') "
        "if u.find_spec(m)])",
    )
    assert missing.strip() == "[]"

    raw = tmp_path / "jfk.s16le"
    raw.write_bytes((np.clip(jfk_audio, -1, 1) * 32767).astype("<i2").tobytes())
    script = tmp_path / "use_client.py"
    script.write_text(SCRIPT)
    srv = await start_server()
    out = await asyncio.to_thread(
        _run, tmp_path, python, str(script), srv.target, str(audio_dir / "jfk.flac"), str(raw)
    )
    result = json.loads(out.splitlines()[-1])
    reference = transcripts["jfk.flac"]["text"]
    assert result["models"]
    assert wer(reference, result["file"]) <= 0.1, result
    assert wer(reference, result["live"]) <= 0.15, result
    # The README's example, as written.
    example = await asyncio.to_thread(
        _run,
        tmp_path,
        python,
        str(CLIENT_ROOT / "examples" / "transcribe_file.py"),
        str(audio_dir / "jfk.flac"),
        "--srt",
        TRANSCRIBER_TARGET=srv.target,
    )
    assert example.startswith("1\n00:00:00,000 --> "), example
    assert wer(reference, " ".join(example.splitlines()[2::4])) <= 0.1, example
