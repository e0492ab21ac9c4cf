"""A file stream that waits for a slot is told its place in the line, over real gRPC."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.transcriber.conftest import ServerFactory, chunks, normalise
from transcriber.v1 import transcriber_pb2 as pb
from voxmesh.cli import progress as cli_progress
from voxmesh.cli import transcribe


def _requests(
    data: bytes, hold: asyncio.Event | None = None
) -> AsyncIterator[pb.TranscribeRequest]:
    async def gen() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig(language="en"))
        for piece in chunks(data, 64 * 1024):
            yield pb.TranscribeRequest(audio=piece)
        if hold is not None:
            await hold.wait()  # keep the upload open: the stream holds its slot

    return gen()


async def _next(call: Any) -> pb.TranscribeResponse:
    async with asyncio.timeout(20):
        event = await call.read()
    assert event is not grpc.aio.EOF
    return event  # type: ignore[no-any-return]


async def _rest(call: Any) -> tuple[list[int], str]:
    """Queue positions still to come, then the text, to the end of the stream."""
    positions: list[int] = []
    texts: list[str] = []
    while (event := await call.read()) is not grpc.aio.EOF:
        kind = event.WhichOneof("event")
        if kind == "queued":
            assert not texts, "a queued event after the transcription started"
            positions.append(event.queued.position)
        elif kind == "segment" and event.segment.final:
            texts.append(event.segment.text)
    return positions, normalise(" ".join(texts))


async def test_waiters_learn_their_place_and_move_up(
    start_server: ServerFactory, audio_dir: Path
) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=3)
    admission = srv.service.admission
    jfk = (audio_dir / "jfk.flac").read_bytes()
    hold = asyncio.Event()

    a = srv.stub.Transcribe(_requests(jfk, hold), timeout=60)
    first = await _next(a)
    assert first.WhichOneof("event") == "audio"  # admitted at once: no queued event

    b = srv.stub.Transcribe(_requests(jfk), timeout=60)
    assert (await _next(b)).queued == pb.Queued(position=1, active=1)
    c = srv.stub.Transcribe(_requests(jfk), timeout=60)
    assert (await _next(c)).queued == pb.Queued(position=2, active=1)
    d = srv.stub.Transcribe(_requests(jfk), timeout=60)
    assert (await _next(d)).queued == pb.Queued(position=3, active=1)
    assert (admission.active, admission.queued) == (1, 3)

    b.cancel()  # the first waiter gives up: the others move up
    assert (await _next(c)).queued == pb.Queued(position=1, active=1)
    assert (await _next(d)).queued == pb.Queued(position=2, active=1)
    assert (admission.active, admission.queued) == (1, 2)

    a.cancel()  # the slot frees: c runs, d is next
    assert (await _next(d)).queued.position == 1
    (c_moves, c_text), (d_moves, d_text) = await asyncio.gather(_rest(c), _rest(d))
    assert c_moves == [] and d_moves == []
    assert "fellow americans" in c_text and "fellow americans" in d_text
    assert (admission.active, admission.queued) == (0, 0)


async def test_a_waiter_past_its_deadline_leaves_the_line(
    start_server: ServerFactory, audio_dir: Path
) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=2)
    admission = srv.service.admission
    jfk = (audio_dir / "jfk.flac").read_bytes()
    hold = asyncio.Event()

    a = srv.stub.Transcribe(_requests(jfk, hold), timeout=60)
    await _next(a)
    b = srv.stub.Transcribe(_requests(jfk), timeout=1.0)
    assert (await _next(b)).queued.position == 1
    c = srv.stub.Transcribe(_requests(jfk), timeout=60)
    assert (await _next(c)).queued.position == 2

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _next(b)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (await _next(c)).queued.position == 1
    assert (admission.active, admission.queued) == (1, 1)

    hold.set()  # a's upload ends: a finishes, then c runs
    _, a_text = await _rest(a)
    moves, c_text = await _rest(c)
    assert moves == []
    assert "fellow americans" in a_text and "fellow americans" in c_text
    assert (admission.active, admission.queued) == (0, 0)


async def test_the_cli_shows_its_place_in_line(
    start_server: ServerFactory, audio_dir: Path
) -> None:
    srv = await start_server(max_active_streams=1, max_queued_streams=2)
    path = audio_dir / "jfk.flac"
    hold = asyncio.Event()
    a = srv.stub.Transcribe(_requests(path.read_bytes(), hold), timeout=60)
    await _next(a)

    told = asyncio.Event()

    class Progress(cli_progress.Progress):
        def queued(self, position: int, active: int) -> None:
            super().queued(position, active)
            told.set()

    stderr = io.StringIO()  # not a terminal: a plain line per move
    progress = Progress("auto", path.stat().st_size, 11.0, stderr)
    args = argparse.Namespace(
        format="srt", language="", task="transcribe", model="", timeout=60.0, tls_ca=None
    )
    args.tls_cert = args.tls_key = None
    waiting = asyncio.create_task(transcribe.transcribe_file(path, srv.target, args, progress))
    async with asyncio.timeout(20):
        await told.wait()
    assert stderr.getvalue() == "voxmesh transcribe: queued: #1 in line, 1 running\n"
    hold.set()
    result = await waiting
    assert "fellow americans" in normalise(result.formatted)
    assert result.formatted.startswith("1\n00:00:00,000 --> ")
    await _rest(a)
