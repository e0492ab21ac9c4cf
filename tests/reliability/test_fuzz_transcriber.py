"""Hostile configs and garbage audio to the transcriber over a real socket: only
documented statuses, always with ErrorInfo, well-formed result streams, no leaked
admission slots, and a server that still answers SERVING afterwards."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability import media
from tests.reliability.support import (
    FUZZ,
    QUIET_REPR,
    Code,
    ErrorLog,
    LoopThread,
    Outcomes,
    enums,
    expect,
    int32s,
    log_tail,
    oversize_bytes,
    requests,
    serving,
    strings,
)
from transcriber.config import TranscriberConfig
from transcriber.models import ModelRegistry
from transcriber.server import TranscriberApp, create_app
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc
from voxmesh.errors import error_details
from voxmesh.server import ServerSettings

pytestmark = [pytest.mark.slow, QUIET_REPR]  # slow: loads tiny.en (once for the module)

# transcriber.proto: bad audio or config is INVALID_ARGUMENT, a full server
# RESOURCE_EXHAUSTED, a deadline too short for the audio DEADLINE_EXCEEDED.
ALLOWED = frozenset(
    {
        Code.INVALID_ARGUMENT,
        Code.RESOURCE_EXHAUSTED,
        Code.DEADLINE_EXCEEDED,
        # paid_seconds shorter than the audio (PAID_SECONDS_EXCEEDED)
        Code.FAILED_PRECONDITION,
    }
)
MAX_UPLOAD = 2 * 1024 * 1024


@dataclass
class Transcriber:
    loop: LoopThread
    app: TranscriberApp
    target: str
    stub: Any
    errors: ErrorLog


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transcriber]:
    config = TranscriberConfig(
        # The mechanics under fuzzing, not the language: the faster tiny.en.
        model_name="tiny.en",
        device="cpu",
        compute_type="int8",
        beam_size=1,
        model_cache=pathlib.Path(tmp_path_factory.mktemp("models")),
        # Bounds on the Whisper work any one example may cause.
        max_audio_seconds=4.0,
        max_upload_bytes=MAX_UPLOAD,
        max_active_streams=2,
        max_queued_streams=4,
        # A stream at its paid limit waits this long for a raise the fuzzer never sends.
        paid_wait_seconds=0.5,
    )
    loop = LoopThread("transcriber-fuzz")
    registry = ModelRegistry(replace(config))

    async def start() -> Transcriber:
        app = create_app(
            config,
            ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0),
            registry=registry,
        )
        port = await app.start()  # loads the default model
        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", 8 << 20),
                ("grpc.max_receive_message_length", 8 << 20),
            ],
        )
        stub = transcriber_pb2_grpc.TranscriberServiceStub(channel)
        return Transcriber(loop, app, target, stub, ErrorLog())

    run = loop.run(start(), timeout=300)
    try:
        with run.errors:
            yield run
        assert loop.run(serving(run.target)), "transcriber is not SERVING after the fuzz run"
        assert run.app.service.admission.active == 0, "an admission slot leaked"
    finally:
        loop.run(run.app.stop(0))
        loop.close()


# ------------------------------------------------------------------ strategies

# Real speech: Whisper is quick on it (a pure tone sends it into temperature fallbacks).
_SPEECH = media.speech(str(pathlib.Path(__file__).parents[2].parent / "shared/audio/jfk.flac"), 2.0)
OGG = media.encode_pcm(_SPEECH, container="ogg", codec="libopus")
WAV = media.encode_pcm(_SPEECH, container="wav", codec="pcm_s16le", rate=media.SAMPLE_RATE)


def _flip(data: bytes, positions: list[int]) -> bytes:
    out = bytearray(data)
    for p in positions:
        out[p % len(out)] ^= 0xFF
    return bytes(out)


good_audio = st.sampled_from([OGG, WAV])
bad_audio = st.one_of(
    st.just(b""),
    oversize_bytes(3 * 1024 * 1024),
    st.binary(min_size=1, max_size=4096),
    st.tuples(good_audio, st.integers(1, 4000)).map(lambda t: t[0][: t[1]]),  # truncated
    st.tuples(good_audio, st.lists(st.integers(0, 40_000), min_size=1, max_size=8)).map(
        lambda t: _flip(*t)  # corrupted
    ),
    st.sampled_from(
        [
            media.zip_file(),
            media.png(),
            media.wav_claiming_rate(384_000),
            media.wav_claiming_rate(1_000_000),
            media.wav_claiming_rate(1),
            media.wav_claiming_rate(2**32 - 1),
            b"OggS" + bytes(100),
            b"RIFF\xff\xff\xff\xffWAVE",
            OGG[:200],
        ]
    ),
)
# Past the server's limits: 2.5 MiB (max upload 2 MiB), 6 s and 16 000 s by header (max 4 s).
over_limits = st.sampled_from(
    [
        bytes(range(256)) * (10 * 1024),
        media.encode_pcm(
            media.tone(6.0), container="wav", codec="pcm_s16le", rate=media.SAMPLE_RATE
        ),
        media.wav_claiming_rate(1),
    ]
)
audio = st.one_of(good_audio, bad_audio, over_limits)

configs = requests(
    pb.TranscriptionConfig,
    {
        "language": st.sampled_from(["", "auto", "en"]),
        "task": st.sampled_from([pb.TASK_UNSPECIFIED, pb.TASK_TRANSCRIBE]),
        "word_timestamps": st.booleans(),
        "output_format": st.sampled_from(list(pb.OutputFormat.values())),
        "input_mode": st.sampled_from([pb.INPUT_MODE_UNSPECIFIED, pb.INPUT_MODE_FILE]),
        "initial_prompt": st.text(max_size=40),
        "hotwords": st.text(max_size=20),
        "beam_size": st.integers(0, 2),
        "model": st.sampled_from(["", "tiny.en"]),
        "paid_seconds": st.sampled_from([0.0, 0.0, 1.0, 1e6]),
    },
    {
        # Huge values here are test_huge_model_or_language_name's (a known bug).
        "language": strings(16, huge=False),
        "task": enums(pb.Task.values()),
        "word_timestamps": st.booleans(),
        "output_format": enums(pb.OutputFormat.values()),
        "input_mode": enums(pb.InputMode.values()),
        "initial_prompt": strings(1000),
        "hotwords": strings(500),
        "beam_size": int32s,
        "model": strings(64, huge=False),
        "paid_seconds": st.floats(),
    },
)
live_configs = st.builds(
    lambda rate, lang: pb.TranscriptionConfig(
        input_mode=pb.INPUT_MODE_LIVE_PCM, sample_rate_hz=rate, language=lang
    ),
    st.one_of(st.sampled_from([8000, 16000, 48000]), int32s),
    st.sampled_from(["", "en"]),
)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, i = [], 0
    for size in sizes:
        if i >= len(data):
            break
        chunks.append(data[i : i + size])
        i += size
    if i < len(data):
        chunks.append(data[i:])
    return chunks


chunk_sizes = st.lists(st.sampled_from([1, 7, 4096, 65536, (1 << 20) + 1]), max_size=6)


@st.composite
def streams(draw: st.DrawFn) -> list[pb.TranscribeRequest]:
    """A whole upload: config first (or not), audio in odd chunks, stray configs."""
    shape = draw(
        st.sampled_from(
            ["normal", "normal", "normal", "live", "limits", "no-config", "empty", "extra-config"]
        )
    )
    if shape == "empty":
        return []
    if shape == "limits":
        data = draw(over_limits)
        return [pb.TranscribeRequest(config=pb.TranscriptionConfig())] + [
            pb.TranscribeRequest(audio=c) for c in _split(data, [1 << 20] * 4)
        ]
    if shape == "live":
        config = draw(live_configs)
        data = draw(st.one_of(st.binary(max_size=48_000), bad_audio.map(lambda b: b[:48_000])))
    else:
        config = draw(configs)
        data = draw(audio)
    chunks = [pb.TranscribeRequest(audio=c) for c in _split(data, draw(chunk_sizes))]
    messages = [pb.TranscribeRequest(config=config), *chunks]
    if shape == "no-config":
        messages = messages[1:] or [pb.TranscribeRequest(audio=b"x")]
    if shape == "extra-config":
        messages.insert(draw(st.integers(1, len(messages))), pb.TranscribeRequest(config=config))
    return messages


def _check_events(events: list[pb.TranscribeResponse]) -> None:
    """transcriber.proto: at most one language, then segments in order, then one done."""
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds and kinds[-1] == "done" and kinds.count("done") == 1, kinds
    assert kinds.count("language") <= 1, kinds
    if "language" in kinds:
        assert kinds.index("language") < (kinds.index("segment") if "segment" in kinds else 1e9)
    ids = [e.segment.segment_id for e in events if e.WhichOneof("event") == "segment"]
    assert ids == sorted(ids), ids
    # The exact duration (AudioInfo final) is sent at most once.
    finals = [e.audio for e in events if e.WhichOneof("event") == "audio" and e.audio.final]
    assert len(finals) <= 1, finals


def _fuzz(
    t: Transcriber,
    name: str,
    strategy: st.SearchStrategy[Any],
    call: Callable[[Any], Any],
    *,
    examples: int,
) -> Outcomes:
    outcomes = Outcomes()

    @settings(FUZZ, max_examples=examples)
    @given(value=strategy)
    def one(value: Any) -> None:
        t.loop.run(expect(lambda: call(value), ALLOWED, outcomes, _short(value)), timeout=90)

    one()
    print(f"{name}: {outcomes}")
    assert not t.errors.records, log_tail(t.errors.records)
    assert outcomes.codes["OK"] > 0, f"never succeeded: {outcomes}"
    assert outcomes.codes["INVALID_ARGUMENT"] > 0, f"never hit validation: {outcomes}"
    return outcomes


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 600 else text[:600] + f"... ({len(text)} chars)"


# ------------------------------------------------------------------ tests


def test_transcribe_stream(transcriber: Transcriber) -> None:
    async def call(messages: list[pb.TranscribeRequest]) -> list[pb.TranscribeResponse]:
        async def gen() -> AsyncIterator[pb.TranscribeRequest]:
            for m in messages:
                yield m

        events = [e async for e in transcriber.stub.Transcribe(gen(), timeout=60)]
        _check_events(events)
        return events

    _fuzz(transcriber, "Transcribe", streams(), call, examples=100)


def test_transcribe_file(transcriber: Transcriber) -> None:
    async def call(request: pb.TranscribeFileRequest) -> pb.TranscribeFileResponse:
        reply = await transcriber.stub.TranscribeFile(request, timeout=60)
        assert reply.HasField("done"), reply
        return reply

    strategy = st.builds(
        lambda c, a: (
            pb.TranscribeFileRequest(config=c, audio=a) if c else pb.TranscribeFileRequest(audio=a)
        ),
        st.one_of(st.none(), configs, live_configs),
        audio,
    )
    _fuzz(transcriber, "TranscribeFile", strategy, call, examples=80)


def _unknown_fields(fields: list[tuple[int, bytes]]) -> bytes:
    """Valid protobuf wire data made only of fields ListModelsRequest does not have."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return b"".join(varint(num << 3 | 2) + varint(len(v)) + v for num, v in fields)


def test_list_models(transcriber: Transcriber) -> None:
    """ListModels has no fields; unknown ones (a newer client's) must be ignored."""
    raw = transcriber.loop.run(_raw_list_models(transcriber))
    outcomes = Outcomes()

    @settings(FUZZ, max_examples=30)
    @given(fields=st.lists(st.tuples(st.integers(1, 10_000), st.binary(max_size=64)), max_size=4))
    def one(fields: list[tuple[int, bytes]]) -> None:
        payload = _unknown_fields(fields)

        async def call() -> pb.ListModelsResponse:
            reply = pb.ListModelsResponse.FromString(await raw(payload, timeout=10))
            assert any(m.is_default for m in reply.models), reply
            return reply

        transcriber.loop.run(expect(call, ALLOWED, outcomes, fields), timeout=30)

    one()
    assert outcomes.codes == {"OK": 30}, outcomes


async def _raw_list_models(t: Transcriber) -> Callable[..., Any]:
    channel = grpc.aio.insecure_channel(t.target)
    return channel.unary_unary(
        "/transcriber.v1.TranscriberService/ListModels",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )


@pytest.mark.parametrize("field", ["model", "language"])
def test_huge_model_or_language_name(transcriber: Transcriber, field: str) -> None:
    config = pb.TranscriptionConfig(**{field: "é" * 70_000})

    async def call() -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await transcriber.stub.TranscribeFile(
                pb.TranscribeFileRequest(config=config, audio=OGG), timeout=30
            )
        return err.value

    err = transcriber.loop.run(call())
    details = error_details(err)
    assert (err.code(), details.reason) == (Code.INVALID_ARGUMENT, "INVALID_REQUEST"), err
    assert (details.metadata or {}).get("field") == field
