"""Paid seconds and the audio's duration, over a real gRPC server and real speech (tiny.en).

The caller says how many seconds it paid for; no audio past them reaches
Whisper, whatever the client or the container claims. The exact duration goes
out first (AudioInfo final), from the header or from decoding run ahead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from bench.transcriber.run import MIT_GRANT
from tests.transcriber.conftest import Audio, ServerFactory, chunks, encode, wer
from transcriber.audio import SAMPLE_RATE
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.errors import error_details

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minute(audio_dir: Path) -> tuple[Audio, str]:
    """60 s of English speech: the MIT grant read twice, and its text."""
    from faster_whisper import decode_audio

    grant = decode_audio(str(audio_dir / "multilingual.mp3"))[: int(29.5 * SAMPLE_RATE)]
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = np.concatenate([grant, gap, grant, gap]).astype(np.float32)
    return audio, f"{MIT_GRANT} {MIT_GRANT}"


@pytest.fixture(scope="module")
def minute_ogg(minute: tuple[Audio, str]) -> bytes:
    return encode(minute[0], "ogg", "libopus", rate=48000, layout="mono")


@dataclass
class Events:
    audio: list[tuple[float, pb.AudioInfo]] = field(default_factory=list)
    segments: list[tuple[float, pb.Segment]] = field(default_factory=list)
    done: pb.Done | None = None
    error: grpc.aio.AioRpcError | None = None
    ended_at: float = 0.0
    order: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for _, s in self.segments if s.final)


class Stream:
    """A Transcribe call whose request side the test drives: audio, end_of_audio, raises."""

    def __init__(self, stub: pb_grpc.TranscriberServiceAsyncStub, timeout: float = 120) -> None:
        self._queue: asyncio.Queue[pb.TranscribeRequest | None] = asyncio.Queue()
        self._call = stub.Transcribe(self._requests(), timeout=timeout)

    async def _requests(self) -> AsyncIterator[pb.TranscribeRequest]:
        while (request := await self._queue.get()) is not None:
            yield request

    def send(self, request: pb.TranscribeRequest) -> None:
        self._queue.put_nowait(request)

    def upload(self, config: pb.TranscriptionConfig, data: bytes) -> None:
        self.send(pb.TranscribeRequest(config=config))
        for piece in chunks(data, 64 * 1024):
            self.send(pb.TranscribeRequest(audio=piece))

    def half_close(self) -> None:
        self._queue.put_nowait(None)

    async def events(self, on_limit: Any = None, *, first_segment_only: bool = False) -> Events:
        """Read every event; ``on_limit(stream)`` runs at a non-final AudioInfo.

        ``first_segment_only`` cancels the call at the first segment.
        """
        events = Events()
        try:
            async for response in self._call:
                now = time.monotonic()
                kind = response.WhichOneof("event")
                events.order.append(kind if kind != "audio" else f"audio:{response.audio.final}")
                if kind == "audio":
                    events.audio.append((now, response.audio))
                    if not response.audio.final and on_limit is not None:
                        on_limit(self)
                elif kind == "segment":
                    events.segments.append((now, response.segment))
                    if first_segment_only:
                        self._call.cancel()
                        break
                elif kind == "done":
                    events.done = response.done
        except grpc.aio.AioRpcError as err:
            events.error = err
        events.ended_at = time.monotonic()
        self.half_close()
        return events


def assert_paid_exceeded(events: Events, paid: float) -> float:
    """The stream ended PAID_SECONDS_EXCEEDED; return the transcribed seconds it reports."""
    assert events.error is not None, events.order
    assert events.error.code() == grpc.StatusCode.FAILED_PRECONDITION, events.error.details()
    details = error_details(events.error)
    assert details.reason == "PAID_SECONDS_EXCEEDED"
    metadata = dict(details.metadata or {})
    assert float(metadata["paid_seconds"]) == pytest.approx(paid)
    transcribed = float(metadata["transcribed_seconds"])
    assert paid - 1.0 <= transcribed <= paid
    assert events.done is None
    return transcribed


async def test_a_minute_paid_for_20_seconds_stops_there(
    start_server: ServerFactory, minute: tuple[Audio, str], minute_ogg: bytes
) -> None:
    srv = await start_server(paid_wait_seconds=1.0)
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(paid_seconds=20), minute_ogg)
    # The caller keeps its side open (it could raise) but never does.
    stream.send(pb.TranscribeRequest(end_of_audio=True))
    events = await stream.events()
    assert_paid_exceeded(events, 20.0)
    # The exact duration first, then "decoded so far" at the limit.
    finals = [a for _, a in events.audio if a.final]
    assert len(finals) == 1 and finals[0].duration_seconds == pytest.approx(60.0, abs=0.1)
    assert events.order[0] == "audio:True"
    limit_at, limit = next((t, a) for t, a in events.audio if not a.final)
    assert limit.duration_seconds >= 20.0
    # The text of the paid audio came, and nothing past it.
    assert events.segments and all(s.end_seconds <= 20.0 + 1e-6 for _, s in events.segments)
    assert "permission is hereby granted" in events.text.lower()
    assert wer(MIT_GRANT, events.text) > 0.3  # only part of the first reading
    # It waited for a raise before giving up.
    assert events.ended_at - limit_at >= 0.9


async def test_a_raise_mid_stream_yields_the_whole_text(
    start_server: ServerFactory, minute: tuple[Audio, str], minute_ogg: bytes
) -> None:
    srv = await start_server(paid_wait_seconds=20.0)
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(paid_seconds=20), minute_ogg)
    stream.send(pb.TranscribeRequest(end_of_audio=True))
    raised: list[float] = []

    def pay_more(s: Stream) -> None:
        raised.append(time.monotonic())
        s.send(pb.TranscribeRequest(paid=pb.PaidSeconds(paid_seconds=61)))

    events = await stream.events(on_limit=pay_more)
    assert events.error is None, events.error
    assert raised and events.done is not None
    assert events.done.transcribed_seconds == pytest.approx(60.0, abs=0.1)
    assert events.done.audio_duration_seconds == pytest.approx(60.0, abs=0.1)
    assert wer(minute[1], events.text) <= 0.12, events.text
    assert max(s.end_seconds for _, s in events.segments) > 50


async def test_half_close_while_waiting_ends_it_at_once(
    start_server: ServerFactory, minute_ogg: bytes
) -> None:
    srv = await start_server(paid_wait_seconds=60.0)
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(paid_seconds=10), minute_ogg)
    stream.send(pb.TranscribeRequest(end_of_audio=True))
    closed: list[float] = []

    def give_up(s: Stream) -> None:
        closed.append(time.monotonic())
        s.half_close()

    events = await stream.events(on_limit=give_up)
    assert_paid_exceeded(events, 10.0)
    assert closed and events.ended_at - closed[0] < 15  # not the 60 s wait
    assert all(s.end_seconds <= 10.0 + 1e-6 for _, s in events.segments)


async def test_duration_comes_before_the_first_segment_of_an_ogg_note(
    start_server: ServerFactory, minute_ogg: bytes
) -> None:
    # OGG has no duration in its header: decoding runs ahead of Whisper, and
    # the first window waits a moment for it to reach the end.
    srv = await start_server()
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(), minute_ogg)
    stream.half_close()
    events = await stream.events()
    assert events.error is None and events.done is not None
    assert events.order[0] == "audio:True", events.order[:3]
    assert events.order.count("audio:True") == 1 and "audio:False" not in events.order
    (_, info), first_segment = events.audio[0], events.segments[0][0]
    assert info.duration_seconds == pytest.approx(60.0, abs=0.05)
    assert events.audio[0][0] <= first_segment
    assert events.done.transcribed_seconds == pytest.approx(60.0, abs=0.1)


async def test_duration_of_a_wav_comes_from_its_header(
    start_server: ServerFactory, minute: tuple[Audio, str]
) -> None:
    srv = await start_server()
    data = encode(minute[0], "wav", "pcm_s16le", rate=16000, layout="mono")
    stream = Stream(srv.stub)
    # Three quarters of the upload: the header says how long the whole is.
    stream.upload(pb.TranscriptionConfig(), data[: len(data) * 3 // 4])
    events = await stream.events(first_segment_only=True)
    assert events.order[0] == "audio:True", events.order[:3]
    assert events.audio[0][1].duration_seconds == pytest.approx(60.0, abs=0.01)
    assert events.segments and events.audio[0][0] <= events.segments[0][0]


async def test_a_client_cannot_get_more_than_it_paid_for(
    start_server: ServerFactory, minute_ogg: bytes
) -> None:
    srv = await start_server(paid_wait_seconds=1.0)
    # TranscribeFile cannot raise: it stops at the limit, whatever it sent.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await srv.stub.TranscribeFile(
            pb.TranscribeFileRequest(
                config=pb.TranscriptionConfig(paid_seconds=5), audio=minute_ogg
            ),
            timeout=60,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value).reason == "PAID_SECONDS_EXCEEDED"
    # A "raise" below what is paid changes nothing; a negative one is refused.
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(paid_seconds=5), minute_ogg)
    stream.send(pb.TranscribeRequest(paid=pb.PaidSeconds(paid_seconds=1)))
    stream.half_close()
    events = await stream.events()
    assert_paid_exceeded(events, 5.0)
    assert all(s.end_seconds <= 5.0 + 1e-6 for _, s in events.segments)
    stream = Stream(srv.stub)
    stream.upload(pb.TranscriptionConfig(paid_seconds=5), minute_ogg)
    stream.send(pb.TranscribeRequest(paid=pb.PaidSeconds(paid_seconds=-1)))
    stream.half_close()
    events = await stream.events()
    assert events.error is not None and events.error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_live_pcm_honours_paid_seconds(start_server: ServerFactory, jfk_audio: Audio) -> None:
    srv = await start_server(paid_wait_seconds=0.5)
    pcm = (np.clip(jfk_audio, -1, 1) * 32767).astype("<i2").tobytes()
    stream = Stream(srv.stub)
    stream.send(
        pb.TranscribeRequest(
            config=pb.TranscriptionConfig(
                input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=16000, paid_seconds=5
            )
        )
    )
    step = 16000 * 2 // 4
    for i in range(0, len(pcm), step):
        stream.send(pb.TranscribeRequest(audio=pcm[i : i + step]))
    stream.send(pb.TranscribeRequest(end_of_audio=True))
    events = await stream.events()
    assert assert_paid_exceeded(events, 5.0) == pytest.approx(5.0)
    finals = [s for _, s in events.segments if s.final]
    assert finals and all(s.end_seconds <= 5.0 + 1e-6 for s in finals)
    assert "fellow americans" in events.text.lower()
    assert "country" not in events.text.lower()  # said after 5 s
