"""The pipeline's pieces: delivery shapes, failures, /cancel, money on every path."""

from __future__ import annotations

import asyncio

from gateway.pipeline import Job, Media, Pipeline
from tests.gateway.fakes import FakeFiles, fake_services, rpc_error, transcript
from transcriber.v1 import transcriber_pb2
from voxmesh.errors import InvalidArgument, Unavailable

NOTE = Media(kind="voice", file_id="file-1", duration=11, file_size=1000)


def job(**kwargs: object) -> Job:
    fields: dict[str, object] = {
        "user_id": 1,
        "chat_id": 1,
        "chat_type": "private",
        "message_id": 5,
        "media": NOTE,
        "lang": "en",
    }
    fields.update(kwargs)
    return Job(**fields)  # type: ignore[arg-type]


def rig(**kwargs: object):  # type: ignore[no-untyped-def]
    services, billing, transcriber, notifier = fake_services()
    options: dict[str, object] = {"download_limit": 20 << 20, "edit_interval_seconds": 0.01}
    options.update(kwargs)
    pipeline = Pipeline(services, FakeFiles(), **options)  # type: ignore[arg-type]
    return pipeline, billing, transcriber, notifier


async def test_short_text_replaces_the_placeholder_and_captures_the_real_price() -> None:
    pipeline, billing, transcriber, notifier = rig()
    transcriber.events = transcript("Ask not.", seconds=5.2)
    outcome = await pipeline.run(job())
    assert outcome.status == "done" and outcome.text == "Ask not."
    [reserve] = billing.requests("Reserve")
    assert (reserve.idempotency_key, reserve.amount_credits) == ("reserve:1:5", 2)
    [capture] = billing.requests("Capture")
    assert (capture.idempotency_key, capture.amount_credits) == ("capture:1:5", 1)
    [placeholder] = notifier.requests("Send")
    assert placeholder.text == "🎙 Transcribing…" and placeholder.reply_to_message_id == 5
    assert notifier.requests("Edit")[-1].text == "Ask not."
    assert billing.requests("Release") == []


async def test_long_text_is_split_and_longer_becomes_a_file() -> None:
    pipeline, _, transcriber, notifier = rig(text_document_threshold=10_000)
    long = "word " * 1200  # 6000 characters: past one message, under 10000
    transcriber.events = transcript(long.strip())
    await pipeline.run(job())
    assert notifier.requests("Edit")[-1].text.startswith("📝 The transcript is long; it follows")
    assert notifier.requests("Send")[-1].text == long.strip()

    pipeline, _, transcriber, notifier = rig(text_document_threshold=5000)
    transcriber.events = transcript(long.strip())
    await pipeline.run(job(message_id=6))
    [doc] = notifier.requests("SendDocument")
    assert (doc.filename, doc.content.decode()) == ("transcript.txt", long.strip())


async def test_srt_is_always_a_file() -> None:
    pipeline, _, transcriber, notifier = rig()
    srt = "1\n00:00:00,000 --> 00:00:02,000\nHi.\n"
    transcriber.events = transcript("Hi.", formatted=srt)
    await pipeline.run(job(output_format=transcriber_pb2.OUTPUT_FORMAT_SRT))
    [doc] = notifier.requests("SendDocument")
    assert doc.filename == "transcript.srt" and doc.content.decode() == srt.strip()
    assert notifier.requests("Edit")[-1].text == "📝 Here are the subtitles (SRT)."


async def test_bad_audio_releases_and_says_so_with_a_reference() -> None:
    pipeline, billing, transcriber, notifier = rig()
    transcriber.stream_error = rpc_error(
        InvalidArgument("not audio", reason="AUDIO_CORRUPT"), "transcriber.voxmesh"
    )
    outcome = await pipeline.run(job())
    assert outcome.status == "failed"
    [release] = billing.requests("Release")
    assert release.hold_id == "00000000-0000-0000-0000-000000000001"
    assert billing.requests("Capture") == []
    assert notifier.requests("Edit")[-1].text == (
        "I couldn't read this file as audio; your credits were released. Reference: -"
    )


async def test_unavailable_language_is_named() -> None:
    pipeline, _, transcriber, notifier = rig()
    transcriber.stream_error = rpc_error(
        InvalidArgument("English-only", metadata={"field": "config.language"}),
        "transcriber.voxmesh",
    )
    await pipeline.run(job(speech_language="ru"))
    assert notifier.requests("Edit")[-1].text.startswith("I can't transcribe that language")


async def test_cancel_stops_the_stream_and_releases_the_hold() -> None:
    pipeline, billing, transcriber, notifier = rig()
    transcriber.events = transcript("One.", "Two.", "Three.")
    transcriber.delay = 0.2
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(job(), stop))
    await asyncio.sleep(0.3)  # the stream is open and its first segment out
    assert notifier.requests("Edit")[-1].text == "One. …"
    stop.set()
    outcome = await asyncio.wait_for(running, 5)
    assert outcome.status == "cancelled"
    assert transcriber.streams[0].cancelled
    assert len(billing.requests("Release")) == 1 and billing.requests("Capture") == []
    assert notifier.requests("Edit")[-1].text == (
        "⏹ Stopped. Nothing was charged: your credits were released."
    )


async def test_too_big_is_refused_before_any_money_moves() -> None:
    pipeline, billing, transcriber, notifier = rig()
    await pipeline.run(job(media=Media("document", "f", 0, 25 << 20, "audio/mpeg")))
    assert billing.calls == [] and transcriber.streams == []
    assert notifier.requests("Send")[0].text.startswith("This file is larger than 20 MB")


async def test_a_queued_job_edits_its_queue_notice() -> None:
    pipeline, _, transcriber, notifier = rig()
    transcriber.events = transcript("Hi.")
    await pipeline.run(job().with_status(4242))
    assert notifier.requests("Send") == []
    edits = notifier.requests("Edit")
    assert {e.message_id for e in edits} == {4242}
    assert edits[0].text == "🎙 Transcribing…" and edits[-1].text == "Hi."


async def test_group_jobs_use_the_group_limit_and_reply_to_the_note() -> None:
    pipeline, _, transcriber, notifier = rig()
    transcriber.events = transcript("Hi.")
    await pipeline.run(job(chat_id=-100, chat_type="supergroup", message_id=9, reply_to=3))
    [send] = notifier.requests("Send")
    assert (send.reply_to_message_id, send.chat_kind, send.idempotency_key) == (
        3,
        2,  # CHAT_KIND_GROUP
        "placeholder:-100:9",
    )


async def test_text_that_cannot_be_delivered_is_not_charged() -> None:
    pipeline, billing, transcriber, notifier = rig()
    transcriber.events = transcript("Hi.", formatted="1\n00:00:00,000 --> 00:00:01,000\nHi.")
    notifier.errors["SendDocument"] = rpc_error(Unavailable("telegram down"), "notifier.voxmesh")
    outcome = await pipeline.run(job(output_format=transcriber_pb2.OUTPUT_FORMAT_SRT))
    assert outcome.status == "failed"
    assert len(billing.requests("Release")) == 1 and billing.requests("Capture") == []
    assert notifier.requests("Edit")[-1].text.startswith("Sorry, the transcription failed")


async def test_the_hold_outlives_the_job_by_a_few_minutes() -> None:
    # The default hold (billing's 15 minutes) would be returned by the reaper
    # while a two-hour note is still being transcribed, and never captured.
    for duration in (11, 7200):
        pipeline, billing, transcriber, _ = rig()
        transcriber.events = transcript("Ask not.", seconds=5.2)
        media = Media(kind="audio", file_id="f", duration=duration, file_size=1000)
        await pipeline.run(job(media=media))
        [reserve] = billing.requests("Reserve")
        deadline = pipeline.job_timeout(media)
        assert reserve.HasField("ttl") and reserve.ttl.nanos == 0
        assert deadline + 60 <= reserve.ttl.seconds <= deadline + 600, (duration, deadline)
