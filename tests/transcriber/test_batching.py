"""Concurrent windows decoded together give what one-by-one decoding gives."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from faster_whisper import decode_audio

from tests.transcriber.conftest import Audio, encode, wer
from tests.transcriber.test_file_mode import transcribe
from transcriber.asr import DecodeOptions, Segment, SpeechRecognizer
from transcriber.batching import BatchingRecognizer, _shift
from transcriber.config import TranscriberConfig
from transcriber.errors import Cancelled
from transcriber.models import ModelRegistry
from transcriber.server import create_app
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.config import ConfigError
from voxmesh.server import ServerSettings

pytestmark = pytest.mark.slow

SR = 16_000
WORDS = DecodeOptions(word_timestamps=True)


@pytest.fixture(scope="module")
def plain(registry: ModelRegistry) -> SpeechRecognizer:
    model = registry.get()
    return SpeechRecognizer(model._model, name=model.name, multilingual=model.multilingual)


@pytest.fixture
def batching(plain: SpeechRecognizer) -> Iterator[BatchingRecognizer]:
    recognizer = BatchingRecognizer(plain._model, name=plain.name, multilingual=False)
    yield recognizer
    recognizer.close()


def load(audio_dir: Path, name: str) -> Audio:
    return decode_audio(str(audio_dir / name)).astype(np.float32)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def windows(audio_dir: Path) -> list[Audio]:
    """Four different 21-28 s windows of real speech."""

    mit = load(audio_dir, "multilingual.mp3")[: int(29.5 * SR)]
    jfk, wizard = load(audio_dir, "jfk.flac"), load(audio_dir, "stereo_diarization.wav")
    hotwords = load(audio_dir, "hotwords.mp3")
    gap = np.zeros(SR // 2, np.float32)
    return [
        mit[: 28 * SR],
        mit[6 * SR :],
        np.concatenate([jfk, gap, wizard, gap, hotwords]),
        np.concatenate([mit[15 * SR :], gap, jfk]),
    ]


def _text(segments: list[Segment]) -> str:
    return " ".join(s.text for s in segments)


@dataclass
class Concurrent:
    plain: list[list[Segment]]
    batched: list[list[Segment]]
    offsets: list[float]
    largest: int
    items: int


@pytest.fixture(scope="module")
def concurrent(plain: SpeechRecognizer, windows: list[Audio]) -> Iterator[Concurrent]:
    """The windows, with word timings, one by one and then from four threads at once."""
    offsets = [100.0 + 40.0 * i for i in range(len(windows))]
    expected = [
        list(plain.transcribe(w, WORDS, offset=o).segments)
        for w, o in zip(windows, offsets, strict=True)
    ]
    recognizer = BatchingRecognizer(plain._model, name=plain.name, multilingual=False)
    got: list[list[Segment]] = [[] for _ in windows]
    start = threading.Barrier(len(windows))

    def run(i: int) -> None:
        start.wait()
        got[i] = list(recognizer.transcribe(windows[i], WORDS, offset=offsets[i]).segments)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(windows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recognizer.close()
    yield Concurrent(expected, got, offsets, recognizer.stats.largest, recognizer.stats.items)


def test_concurrent_windows_are_batched_and_read_the_same(concurrent: Concurrent) -> None:
    assert concurrent.items == 4
    assert concurrent.largest > 1, "no two windows were decoded together"
    for expected, got in zip(concurrent.plain, concurrent.batched, strict=True):
        assert got, "a window lost its text"
        assert wer(_text(expected), _text(got)) <= 0.02, (_text(expected), _text(got))


def test_word_timings_and_offsets_match(concurrent: Concurrent) -> None:
    for offset, expected, got in zip(
        concurrent.offsets, concurrent.plain, concurrent.batched, strict=True
    ):
        assert offset <= got[0].start and got[-1].end <= offset + 30.0
        want = [w for s in expected for w in s.words]
        have = [w for s in got for w in s.words]
        assert [w.word for w in have] == [w.word for w in want]
        for a, b in zip(want, have, strict=True):
            assert abs(a.start - b.start) <= 0.1 and abs(a.end - b.end) <= 0.1, (a, b)
        for a_seg, b_seg in zip(expected, got, strict=True):
            assert abs(a_seg.start - b_seg.start) <= 0.1 and abs(a_seg.end - b_seg.end) <= 0.1


def test_silence_yields_no_segments(plain: SpeechRecognizer, batching: BatchingRecognizer) -> None:
    # Faint noise: Whisper's no-speech probability is high and its text improbable.
    hiss = np.random.default_rng(7).normal(0.0, 0.01, 20 * SR).astype(np.float32)
    assert list(plain.transcribe(hiss, WORDS).segments) == []
    result = batching.transcribe(hiss, WORDS, offset=5.0)
    assert list(result.segments) == []
    assert result.language.code == "en"
    assert batching.stats.items == 1 and batching.stats.rerun == 0


def test_failed_checks_rerun_on_the_plain_path(plain: SpeechRecognizer, jfk_audio: Audio) -> None:
    # Every pass fails the log-probability check: as a repetitive or improbable
    # pass would, it goes to the plain path (with its temperature fallback).
    strict = BatchingRecognizer(plain._model, name=plain.name, multilingual=False, rerun_below=0.0)
    try:
        expected = _text(list(plain.transcribe(jfk_audio, DecodeOptions()).segments))
        got = _text(list(strict.transcribe(jfk_audio, DecodeOptions()).segments))
        assert strict.stats.items == 1 and strict.stats.rerun == 1
        assert got == expected and "fellow americans" in got.lower()
        # A caller that declined the fallback keeps the greedy pass.
        no_fallback = strict.transcribe(jfk_audio, DecodeOptions(), fallback=False)
        assert _text(list(no_fallback.segments)) == expected
        assert strict.stats.items == 2 and strict.stats.rerun == 1
    finally:
        strict.close()


def test_token_budgets_in_one_batch(
    plain: SpeechRecognizer, batching: BatchingRecognizer, windows: list[Audio]
) -> None:
    # Live passes carry a token budget; one batch decodes to the largest, and a
    # window with a smaller budget must still read what it would have alone.
    options = DecodeOptions(word_timestamps=True)
    short = batching._request(windows[0], options, None, False, 12)
    full = batching._request(windows[1], options, None, False, None)
    assert short is not None and full is not None
    batching._decode([short, full])
    alone = list(plain.transcribe(windows[0], options, fallback=False, max_new_tokens=12).segments)
    got = list(_shift(short, 0.0))
    assert _text(got) == _text(alone) and _text(got)
    assert [w.word for s in got for w in s.words] == [w.word for s in alone for w in s.words]


def test_languages_share_a_batch(registry: ModelRegistry, audio_dir: Path) -> None:
    # The multilingual model: English and German windows (and a translation)
    # decode together, each with its own language and task tokens.
    base = registry.get("base")
    plain = SpeechRecognizer(base._model, name="base", multilingual=True)
    batching = BatchingRecognizer(base._model, name="base", multilingual=True)
    talk = decode_audio(str(audio_dir / "multilingual.mp3")).astype(np.float32)
    jobs = [
        (talk[: 28 * SR], DecodeOptions(language="en")),
        (talk[31 * SR : 59 * SR], DecodeOptions(language="de")),
    ]
    requests = [batching._request(audio, options, None, False, None) for audio, options in jobs]
    assert None not in requests
    batching._decode(requests)  # type: ignore[arg-type]
    assert batching.stats.largest == 2
    for (audio, options), request in zip(jobs, requests, strict=True):
        alone = plain.transcribe(audio, options, fallback=False)
        got = list(_shift(request, 0.0))  # type: ignore[arg-type]
        assert request is not None and request.tokenizer.language_code == options.language
        assert _text(got) == _text(list(alone.segments)) and _text(got)
    batching.close()


def test_one_stream_is_not_slowed(
    plain: SpeechRecognizer, batching: BatchingRecognizer, jfk_audio: Audio
) -> None:
    def timed(recognizer: SpeechRecognizer) -> float:
        start = time.perf_counter()
        list(recognizer.transcribe(jfk_audio, DecodeOptions()).segments)
        return time.perf_counter() - start

    timed(batching)  # starts the batcher thread
    plain_times, batched_times = [], []
    for _ in range(3):  # interleaved, best of three: the machine is shared
        plain_times.append(timed(plain))
        batched_times.append(timed(batching))
    assert min(batched_times) <= min(plain_times) * 1.1 + 0.05, (plain_times, batched_times)
    assert batching.stats.largest == 1


def test_cancel_ends_the_wait_for_a_batch(
    plain: SpeechRecognizer, windows: list[Audio], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one batcher is held busy with a first window; a second caller waits
    # for the next batch and must leave when its stream is cancelled.
    batching = BatchingRecognizer(plain._model, name=plain.name, multilingual=False, workers=1)
    release = threading.Event()
    decode = batching._decode

    def slow_decode(group: list[object]) -> None:
        release.wait(30)
        decode(group)  # type: ignore[arg-type]

    monkeypatch.setattr(batching, "_decode", slow_decode)
    busy = threading.Thread(target=lambda: list(batching.transcribe(windows[0], WORDS).segments))
    busy.start()
    try:
        while batching._queue or not batching._workers:
            time.sleep(0.005)  # until the batcher holds the first window
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            batching.transcribe(windows[1], WORDS, cancel=cancel)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        busy.join()
        batching.close()
    assert batching.stats.items == 1, "the cancelled window was decoded"


def test_config_switch() -> None:
    cpu = {"TRANSCRIBER_DEVICE": "cpu"}
    # Measured slower on CPU (bench.transcriber), so only a GPU batches by default.
    assert not TranscriberConfig.from_env(cpu).batch_streams
    assert TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cuda"}).batch_streams
    on = TranscriberConfig.from_env({**cpu, "TRANSCRIBER_BATCH_STREAMS": "on"})
    assert on.batch_streams and on.max_batch == 8
    assert TranscriberConfig.from_env({**cpu, "TRANSCRIBER_MAX_BATCH": "3"}).max_batch == 3
    with pytest.raises(ConfigError, match="TRANSCRIBER_BATCH_STREAMS"):
        TranscriberConfig.from_env({**cpu, "TRANSCRIBER_BATCH_STREAMS": "maybe"})
    assert isinstance(ModelRegistry(on).get(), BatchingRecognizer)
    assert not isinstance(ModelRegistry(TranscriberConfig.from_env(cpu)).get(), BatchingRecognizer)


async def test_streams_through_grpc_share_batches_and_keep_their_own_text(
    base_config: TranscriberConfig, audio_dir: Path, transcripts: dict[str, Any]
) -> None:
    config = replace(base_config, batch_streams=True, max_active_streams=4)
    registry = ModelRegistry(config)
    settings = ServerSettings(service="transcriber", listen="127.0.0.1:0", grace_seconds=1.0)
    app = create_app(config, settings, registry=registry)
    port = await app.start()
    jfk = load(audio_dir, "jfk.flac")
    left, right = decode_audio(str(audio_dir / "stereo_diarization.wav"), split_stereo=True)
    stereo = transcripts["stereo_diarization.wav"]["channels"]
    jfk_text = transcripts["jfk.flac"]["text"]
    gap = np.zeros(SR // 2, np.float32)
    # Each stream's clips in another order: text from another stream would fail its WER.
    talks = [
        ([jfk, gap, left], f"{jfk_text} {stereo['left']}"),
        ([left, gap, right, gap, jfk], f"{stereo['left']} {stereo['right']} {jfk_text}"),
        ([right, gap, jfk], f"{stereo['right']} {jfk_text}"),
        ([jfk, gap, right, gap, left], f"{jfk_text} {stereo['right']} {stereo['left']}"),
    ]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.TranscriberServiceStub(channel)
            results = await asyncio.gather(
                *(
                    transcribe(stub, encode(np.concatenate(parts), "ogg", "libopus"), timeout=120)
                    for parts, _ in talks
                )
            )
    finally:
        await app.stop(0)
    for (_, reference), result in zip(talks, results, strict=True):
        assert wer(reference, result.text) <= 0.1, (reference, result.text)
    recognizer = registry.get()
    assert isinstance(recognizer, BatchingRecognizer)
    assert recognizer.stats.largest >= 2, recognizer.stats
    recognizer.close()
