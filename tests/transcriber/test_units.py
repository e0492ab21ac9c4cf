"""Pure units: formatting, config parsing, the byte feed, admission bookkeeping."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from transcriber.admission import Admission, Place, Ticket
from transcriber.asr import Segment, Word
from transcriber.audio import ByteFeed
from transcriber.config import TranscriberConfig, TranscriberConfigError
from transcriber.errors import BadAudio, Cancelled, Overloaded
from transcriber.formatting import OutputFormat, format_transcript, srt_time, vtt_time
from transcriber.live import HypothesisBuffer

SEGMENTS = [
    Segment(0.0, 2.5, " Hello there."),
    Segment(2.5, 3661.042, " Second line --> with arrow"),
    Segment(4.0, 5.0, " partial", final=False),
]


def test_clock_formats() -> None:
    assert srt_time(0) == "00:00:00,000"
    assert srt_time(3661.042) == "01:01:01,042"
    assert vtt_time(59.9996) == "00:01:00.000"


def test_srt() -> None:
    assert format_transcript(SEGMENTS, OutputFormat.SRT) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
        "2\n00:00:02,500 --> 01:01:01,042\nSecond line -> with arrow\n"
    )


def test_vtt() -> None:
    assert format_transcript(SEGMENTS, OutputFormat.VTT) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "00:00:02.500 --> 01:01:01.042\nSecond line -> with arrow\n"
    )


def test_text_and_timestamped() -> None:
    assert format_transcript(SEGMENTS, OutputFormat.TEXT) == (
        "Hello there. Second line --> with arrow"
    )
    long = [Segment(65.4, 70, " a"), Segment(3725, 3730, " b")]
    assert format_transcript(long, OutputFormat.TIMESTAMPED_TEXT) == "[01:05] a\n[1:02:05] b"


def test_config_from_env(tmp_path: Path) -> None:
    cfg = TranscriberConfig.from_env(
        {
            "TRANSCRIBER_DEVICE": "cpu",
            "TRANSCRIBER_MAX_ACTIVE_STREAMS": "3",
            "TRANSCRIBER_EXTRA_MODELS": f"small={tmp_path}/small, big = {tmp_path}/big",
            "TRANSCRIBER_MODEL_CACHE": str(tmp_path),
        }
    )
    assert (cfg.device, cfg.compute_type, cfg.beam_size) == ("cpu", "int8", 1)
    assert cfg.max_active_streams == 3 and cfg.max_audio_seconds == 7200
    assert cfg.extra_models == (("small", tmp_path / "small"), ("big", tmp_path / "big"))
    cuda = TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cuda"})
    assert (cuda.compute_type, cuda.beam_size) == ("float16", 5)
    default = TranscriberConfig.from_env({})
    # Multilingual by default: base (bundled) detects the language; tiny.en by name.
    assert default.model_name == "base" and default.beam_size == 1
    assert default.paid_wait_seconds == 20.0
    tiny = TranscriberConfig.from_env({"TRANSCRIBER_MODEL_NAME": "tiny.en"})
    assert tiny.model_name == "tiny.en" and tiny.default_model_dir() is not None
    # A directory without a name is known by its own name, not as the bundled base.
    large = TranscriberConfig.from_env({"TRANSCRIBER_MODEL_DIR": str(tmp_path / "large-v3")})
    assert large.model_name == "large-v3" and large.default_model_dir() == tmp_path / "large-v3"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TRANSCRIBER_DEVICE": "tpu"}, "TRANSCRIBER_DEVICE"),
        ({"TRANSCRIBER_BEAM_SIZE": "11"}, "TRANSCRIBER_BEAM_SIZE"),
        ({"TRANSCRIBER_MAX_AUDIO_SECONDS": "lots"}, "TRANSCRIBER_MAX_AUDIO_SECONDS"),
        ({"TRANSCRIBER_EXTRA_MODELS": "oops"}, "TRANSCRIBER_EXTRA_MODELS"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(TranscriberConfigError, match=needle):
        TranscriberConfig.from_env({"TRANSCRIBER_DEVICE": "cpu", **env})


def test_byte_feed_blocks_until_bytes_arrive() -> None:
    feed = ByteFeed(max_bytes=100)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(feed.read(10)))
    reader.start()
    reader.join(0.1)
    assert reader.is_alive()  # nothing to read yet
    feed.write(b"abc")
    reader.join(2)
    assert got == [b"abc"]
    # Seeking ahead of the received bytes waits for them; the size stays unknown.
    assert feed.seek(0, os.SEEK_END) == -1
    assert feed.seek(5) == 5

    def late_bytes() -> None:
        feed.write(b"defgh")
        feed.finish()

    threading.Timer(0.05, late_bytes).start()
    assert feed.read(10) == b"fgh"
    assert feed.seek(0, os.SEEK_END) == 8
    with pytest.raises(BadAudio) as err:
        feed2 = ByteFeed(max_bytes=4)
        feed2.write(b"12345")
    assert err.value.reason == "AUDIO_TOO_LARGE"


def test_byte_feed_abort_wakes_reader() -> None:
    feed = ByteFeed(max_bytes=100)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            feed.read(10)
        except Cancelled as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    feed.abort()
    reader.join(2)
    assert len(errors) == 1


async def test_admission_bookkeeping() -> None:
    adm = Admission(1, 1, initial_job_seconds=3.0)
    first = await adm.acquire()
    waiting = asyncio.create_task(adm.acquire())
    await asyncio.sleep(0)
    assert (adm.active, adm.queued) == (1, 1)
    with pytest.raises(Overloaded) as err:
        await adm.acquire()
    assert err.value.retry_after >= 3.0
    adm.release(first)
    adm.release(first)  # idempotent
    second = await waiting
    assert (adm.active, adm.queued) == (1, 0)
    adm.release(second)
    assert adm.active == 0


async def test_admission_places_move_up_in_fifo_order() -> None:
    adm = Admission(1, 3)
    running = adm.join()
    assert isinstance(running, Ticket)
    b, c, d = adm.join(), adm.join(), adm.join()
    assert isinstance(b, Place) and isinstance(c, Place) and isinstance(d, Place)
    assert (b.position, c.position, d.position) == (1, 2, 3)
    b.leave()  # the first waiter goes away: those behind move up
    assert (adm.queued, c.position, d.position) == (2, 1, 2)
    assert await c.next() == 1 and await d.next() == 2
    adm.release(running)  # c runs, d is next
    assert isinstance(await c.next(), Ticket)
    assert await d.next() == 1 and adm.active == 1
    c.leave()  # a no-op: c holds its ticket
    assert adm.active == 1
    nothing_yet = asyncio.create_task(d.next())
    await asyncio.sleep(0)
    assert not nothing_yet.done()  # no change, no answer
    nothing_yet.cancel()
    d.leave()
    assert (adm.active, adm.queued) == (1, 0)


async def test_a_slot_handed_to_a_leaving_waiter_goes_to_the_next() -> None:
    adm = Admission(1, 2)
    running = adm.join()
    assert isinstance(running, Ticket)
    b, c = adm.join(), adm.join()
    assert isinstance(b, Place) and isinstance(c, Place)
    adm.release(running)  # b is admitted but has not taken its ticket...
    b.leave()  # ...and goes away: c gets the slot
    got = await c.next()
    assert isinstance(got, Ticket) and (adm.active, adm.queued) == (1, 0)
    adm.release(got)
    assert adm.active == 0


def _w(start: float, word: str) -> Word:
    return Word(start, start + 0.4, word, 0.9)


def test_local_agreement_commits_common_prefix() -> None:
    hyp = HypothesisBuffer.empty()
    assert hyp.insert([_w(0, " And"), _w(0.5, " so")]) == []
    committed = hyp.insert([_w(0, " and"), _w(0.5, " so,"), _w(1.0, " my")])
    assert [w.word for w in committed] == [" and", " so,"]
    assert [w.word for w in hyp.buffer] == [" my"]
    # A later pass that repeats committed words does not commit them twice.
    committed = hyp.insert([_w(0.5, " so"), _w(1.0, " my"), _w(1.5, " fellow")])
    assert [w.word for w in committed] == [" my"]
