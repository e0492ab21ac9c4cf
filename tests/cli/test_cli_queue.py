"""`voxmesh transcribe` against a full transcriber: the place in line on stderr, stdout clean."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from tests.cli.support import clean_env
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]

SRT = "1\n00:00:00,000 --> 00:00:01,500\nAsk not.\n"


class _FullTranscriber(pb_grpc.TranscriberServiceServicer):
    """Two other files ahead, then this one's turn: the events a full server sends."""

    def Transcribe(
        self, request_iterator: Iterator[pb.TranscribeRequest], context: Any
    ) -> Iterator[pb.TranscribeResponse]:
        config = next(request_iterator).config
        assert config.output_format == pb.OUTPUT_FORMAT_SRT
        for position in (2, 1):
            yield pb.TranscribeResponse(queued=pb.Queued(position=position, active=1))
            time.sleep(0.1)
        size = sum(len(r.audio) for r in request_iterator)
        assert size == 300_000
        yield pb.TranscribeResponse(audio=pb.AudioInfo(duration_seconds=1.5, final=True))
        yield pb.TranscribeResponse(language=pb.LanguageDetected(language="en", probability=1))
        yield pb.TranscribeResponse(
            segment=pb.Segment(start_seconds=0, end_seconds=1.5, text=" Ask not.", final=True)
        )
        yield pb.TranscribeResponse(
            done=pb.Done(
                audio_duration_seconds=1.5, model="tiny.en", device="cpu", formatted_text=SRT
            )
        )


@pytest.fixture
def full_transcriber() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    servicer = _FullTranscriber()  # type: ignore[abstract]  # only Transcribe is called
    pb_grpc.add_TranscriberServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


@pytest.mark.parametrize("mode", ["always", "auto", "never"])
def test_the_place_in_line_goes_to_stderr_and_stdout_stays_clean(
    full_transcriber: str, tmp_path: pathlib.Path, mode: str
) -> None:
    media = tmp_path / "talk.ogg"
    media.write_bytes(b"\0" * 300_000)
    env = clean_env(
        PYTHONPATH=str(REPO),
        VOXMESH_STATE_DIR=str(tmp_path / "state"),
        OTEL_TRACES_EXPORTER="none",
    )
    env.pop("VOXMESH_TRACES_EXPORTER", None)
    command = ["transcribe", str(media), "--format", "srt", "--target", full_transcriber]
    proc = subprocess.run(
        [sys.executable, "-m", "voxmesh.cli", *command, "--progress", mode],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SRT  # nothing but the subtitles
    if mode == "always":  # the bar's description: its last state of each redraw
        assert "queued: #2 in line, 1 running" in proc.stderr
        assert "queued: #1 in line, 1 running" in proc.stderr
        assert "Ask not." in proc.stderr  # the text as it comes, above the bar
    elif mode == "auto":  # not a terminal: one plain line per move
        assert proc.stderr.splitlines()[:2] == [
            "voxmesh transcribe: queued: #2 in line, 1 running",
            "voxmesh transcribe: queued: #1 in line, 1 running",
        ]
    else:
        assert "queued" not in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("language en, 1.5 s audio")
