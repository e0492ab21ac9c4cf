"""One job's saga against fake stubs: the price follows the audio, money on every path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from billing.v1 import billing_pb2
from gateway.jobs.model import Job, JobSpec, Media
from gateway.jobs.queue import JobQueue, Lease
from gateway.jobs.saga import RetryLaterError, Saga
from tests.gateway.fakes import (
    FakeCall,
    FakeFiles,
    audio_info,
    fake_services,
    rpc_error,
    transcript,
)
from transcriber.v1 import transcriber_pb2
from voxmesh.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable

NOTE = Media(kind="voice", file_id="file-1", file_unique_id="u-1", duration=11, file_size=1000)
HOLD = "00000000-0000-0000-0000-000000000001"


def job(*, attempt: int = 1, hold_id: str = "", status: int = 0, **kwargs: Any) -> Job:
    fields: dict[str, Any] = {
        "user_id": 1,
        "chat_id": 1,
        "chat_type": "private",
        "message_id": 5,
        "media": NOTE,
        "lang": "en",
    }
    fields.update(kwargs)
    return Job(
        job_id="job-1",
        attempt=attempt,
        spec=JobSpec(**fields),
        status_message_id=status,
        hold_id=hold_id,
        trace_id="ab" * 16,
    )


class Rig:
    def __init__(self, **options: Any) -> None:
        self.services, self.billing, self.transcriber, self.notifier = fake_services()
        settings: dict[str, Any] = {"download_limit": 20 << 20, "edit_interval_seconds": 0.01}
        settings.update(options)
        self.saga = Saga(self.services, FakeFiles(), **settings)
        self.queue = JobQueue(self.services, bot_id=42, owner="test")
        self.attached: list[int] = []

    async def attach(self, job_id: str, message_id: int) -> int:
        self.attached.append(message_id)
        return message_id

    async def run(self, the_job: Job, stop: asyncio.Event | None = None) -> Any:
        lease = Lease(self.queue, the_job, lease_seconds=15, renew_seconds=5)
        if stop is not None:
            lease.stop = stop
        return await self.saga.run(the_job, lease, self.attach)

    def stream(self) -> FakeCall:
        [call] = self.transcriber.streams
        return call


async def test_an_honest_note_is_held_at_its_length_and_charged_its_real_price() -> None:
    rig = Rig()
    rig.transcriber.events = transcript("Ask not.", seconds=5.2)
    outcome = await rig.run(job())
    assert outcome.status == "done" and outcome.text == "Ask not."
    [reserve] = rig.billing.requests("Reserve")
    # 11 s declared: 2 credits held (10 a minute), linked to the durable job.
    assert reserve.amount_credits == 2 and reserve.job.job_id == "job-1"
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 1  # 5.2 s of real audio
    assert rig.billing.requests("ExtendHold") == []
    [status] = rig.notifier.requests("Send")
    assert status.text == "🎙 Transcribing…" and status.reply_to_message_id == 5
    assert status.idempotency_key == "status:1:5" and rig.attached == [status_id(rig)]
    assert rig.notifier.requests("Edit")[-1].text == "Ask not."
    # What the hold pays for: 2 credits at 10 a minute are 12 s.
    assert rig.stream().uploaded[0].config.paid_seconds == 12


async def test_a_wait_in_the_transcriber_s_queue_changes_nothing() -> None:
    rig = Rig()
    queued = [
        transcriber_pb2.TranscribeResponse(queued=transcriber_pb2.Queued(position=p, active=4))
        for p in (2, 1)
    ]
    rig.transcriber.events = queued + transcript("Ask not.", seconds=5.2)
    outcome = await rig.run(job())
    assert outcome.status == "done" and outcome.text == "Ask not."
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 1
    assert rig.notifier.requests("Edit")[-1].text == "Ask not."


def status_id(rig: Rig) -> int:
    return rig.attached[0]


async def test_a_note_declared_as_one_second_is_charged_for_all_of_it() -> None:
    rig = Rig()
    events = transcript("word " * 50, seconds=600)
    rig.transcriber.events = events
    outcome = await rig.run(job(media=Media("voice", "file-1", duration=1)))
    assert outcome.status == "done"
    [reserve] = rig.billing.requests("Reserve")
    assert reserve.amount_credits == 1  # what the client claimed
    [extend] = rig.billing.requests("ExtendHold")
    assert extend.amount_credits == 100  # ten minutes, as the transcriber measured
    assert rig.stream().paid() == [600.0]  # raised only after the hold grew
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 100


async def test_a_document_with_no_length_is_held_provisionally_then_at_its_length() -> None:
    rig = Rig()
    rig.transcriber.events = transcript("short", seconds=20)
    doc = Media("document", "file-1", duration=0, mime_type="audio/mpeg")
    outcome = await rig.run(job(media=doc))
    assert outcome.status == "done"
    [reserve] = rig.billing.requests("Reserve")
    assert reserve.amount_credits == 10  # a minute, not the old flat 600 s
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 4  # 20 s


async def test_a_trial_user_low_on_credits_gets_a_short_document_transcribed() -> None:
    rig = Rig()

    # 5 credits left: a provisional minute (10) is refused, so the hold is what
    # the balance covers, and the 20 s document (4 credits) fits in it.
    def reserve(request: billing_pb2.ReserveRequest) -> billing_pb2.ReserveResponse:
        if request.amount_credits > 5:
            raise rpc_error(
                FailedPrecondition(
                    "no funds",
                    reason="INSUFFICIENT_FUNDS",
                    metadata={"balance_credits": "5", "required_credits": "10"},
                )
            )
        return billing_pb2.ReserveResponse(
            hold=billing_pb2.Hold(
                hold_id=HOLD,
                amount_credits=request.amount_credits,
                state=billing_pb2.HOLD_STATE_PENDING,
            )
        )

    rig.billing.replies["Reserve"] = reserve
    rig.transcriber.events = transcript("short", seconds=20)
    outcome = await rig.run(job(media=Media("document", "file-1", duration=0)))
    assert outcome.status == "done"
    assert [r.amount_credits for r in rig.billing.requests("Reserve")] == [10, 5]
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 4


async def test_audio_the_user_cannot_afford_is_refused_before_any_text() -> None:
    rig = Rig()
    rig.billing.errors["ExtendHold"] = rpc_error(
        FailedPrecondition(
            "no funds", reason="INSUFFICIENT_FUNDS", metadata={"balance_credits": "3"}
        )
    )
    rig.transcriber.events = transcript("never shown", seconds=600)
    outcome = await rig.run(job())
    assert outcome.status == "no_funds"
    assert rig.billing.requests("Capture") == []
    [release] = rig.billing.requests("Release")
    assert release.hold_id == HOLD
    edits = [e.text for e in rig.notifier.requests("Edit")]
    assert "never shown" not in " ".join(edits)
    assert rig.stream().paid() == []


async def test_cancel_after_half_the_text_charges_about_half() -> None:
    rig = Rig()
    stop = asyncio.Event()
    texts = [f"sentence {i}." for i in range(6)]
    events: list[Any] = transcript(*texts, seconds=60)
    # Three segments (0-30 s) arrive, then the user cancels.
    events.insert(4, lambda call: stop.set() or audio_info(60))
    rig.transcriber.events = events
    rig.transcriber.delay = 0.05
    outcome = await rig.run(job(media=Media("voice", "file-1", duration=60)), stop)
    assert outcome.status == "cancelled"
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 5  # 30 s of 60, at 10 a minute
    assert rig.stream().cancelled
    final = rig.notifier.requests("Edit")[-1].text
    assert final.startswith("sentence 0.") and "you paid only for the part above" in final


async def test_cancel_before_any_text_releases_everything() -> None:
    rig = Rig()
    stop = asyncio.Event()
    stop.set()
    rig.transcriber.events = transcript("late", seconds=30)
    outcome = await rig.run(job(), stop)
    assert outcome.status == "cancelled"
    assert rig.billing.requests("Capture") == []
    assert len(rig.billing.requests("Release")) == 1


async def test_a_stream_that_outgrows_the_credits_stops_and_charges_what_was_delivered() -> None:
    rig = Rig()
    rig.billing.errors["ExtendHold"] = rpc_error(
        FailedPrecondition(
            "no funds", reason="INSUFFICIENT_FUNDS", metadata={"balance_credits": "0"}
        )
    )
    first = transcriber_pb2.TranscribeResponse(
        segment=transcriber_pb2.Segment(text="paid part.", final=True, end_seconds=11)
    )
    stopped = rpc_error(
        FailedPrecondition(
            "paid seconds reached",
            reason="PAID_SECONDS_EXCEEDED",
            metadata={"paid_seconds": "11", "transcribed_seconds": "11"},
        ),
        domain="transcriber.voxmesh",
    )
    rig.transcriber.events = [first, audio_info(11, final=False), stopped]
    doc = Media("document", "file-1", duration=11)
    outcome = await rig.run(job(media=doc))
    assert outcome.status == "out_of_credits"
    [capture] = rig.billing.requests("Capture")
    assert capture.amount_credits == 2
    assert "credits ran out" in rig.notifier.requests("Edit")[-1].text


async def test_a_transcriber_failure_releases_everything_and_says_so() -> None:
    rig = Rig()
    rig.transcriber.stream_error = rpc_error(
        InvalidArgument("corrupt", reason="AUDIO_CORRUPT"), domain="transcriber.voxmesh"
    )
    outcome = await rig.run(job())
    assert outcome.status == "failed"
    assert rig.billing.requests("Capture") == []
    assert len(rig.billing.requests("Release")) == 1
    assert "ab" * 16 in rig.notifier.requests("Edit")[-1].text


async def test_no_text_goes_out_whose_capture_could_still_fail() -> None:
    rig = Rig()
    rig.billing.errors["Capture"] = rpc_error(Unavailable("billing restarting"))
    rig.transcriber.events = transcript("secret text", seconds=5)
    with pytest.raises(RetryLaterError):
        await rig.run(job())
    finals = [e for e in rig.notifier.requests("Edit") if e.idempotency_key.startswith("final")]
    assert finals == []
    assert rig.billing.requests("Release") == []  # the hold stays for the next try


async def test_a_redrive_resumes_its_pending_hold_with_a_fresh_expiry() -> None:
    rig = Rig()
    rig.billing.replies["GetHold"] = billing_pb2.GetHoldResponse(
        hold=billing_pb2.Hold(hold_id=HOLD, amount_credits=2, state=billing_pb2.HOLD_STATE_PENDING)
    )
    rig.transcriber.events = transcript("again", seconds=11)
    outcome = await rig.run(job(attempt=2, hold_id=HOLD, status=77))
    assert outcome.status == "done"
    assert rig.billing.requests("Reserve") == []
    [extend] = rig.billing.requests("ExtendHold")
    assert extend.amount_credits == 2 and extend.ttl.seconds > 300
    assert rig.notifier.requests("Send") == []  # the same status message
    assert {e.message_id for e in rig.notifier.requests("Edit")} == {77}
    assert len(rig.billing.requests("Capture")) == 1


async def test_a_redrive_of_a_captured_job_delivers_without_charging_again() -> None:
    rig = Rig()
    rig.billing.replies["GetHold"] = billing_pb2.GetHoldResponse(
        hold=billing_pb2.Hold(
            hold_id=HOLD,
            amount_credits=2,
            captured_credits=2,
            state=billing_pb2.HOLD_STATE_CAPTURED,
        )
    )
    rig.transcriber.events = transcript("paid already", seconds=11)
    outcome = await rig.run(job(attempt=2, hold_id=HOLD, status=77))
    assert outcome.status == "done"
    assert rig.billing.requests("Capture") == [] and rig.billing.requests("Reserve") == []
    assert rig.notifier.requests("Edit")[-1].text == "paid already"


async def test_a_redrive_whose_hold_expired_reserves_again_under_a_new_key() -> None:
    rig = Rig()
    rig.billing.replies["GetHold"] = billing_pb2.GetHoldResponse(
        hold=billing_pb2.Hold(hold_id=HOLD, amount_credits=2, state=billing_pb2.HOLD_STATE_EXPIRED)
    )
    rig.transcriber.events = transcript("fresh", seconds=11)
    await rig.run(job(attempt=3, hold_id=HOLD, status=77))
    [reserve] = rig.billing.requests("Reserve")
    assert reserve.idempotency_key == "reserve:1:5:3:2"


async def test_the_queued_notice_is_the_status_message() -> None:
    rig = Rig()
    sends: list[str] = []

    def send(request: Any) -> Any:
        sends.append(request.text)
        if request.idempotency_key == "status:1:5" and "Transcribing" in request.text:
            raise rpc_error(AlreadyExists("key reused"), domain="notifier.voxmesh")
        from notifier.v1 import notifier_pb2

        return notifier_pb2.SendResponse(message_id=555)

    rig.notifier.replies["Send"] = send
    rig.transcriber.events = transcript("hello", seconds=3)
    await rig.run(job())
    assert sends == [
        "🎙 Transcribing…",
        "⏳ Queued: I'll start once your earlier recordings are done.",
    ]
    assert rig.attached == [555]
    edits = rig.notifier.requests("Edit")
    assert edits[0].text == "🎙 Transcribing…" and edits[-1].text == "hello"
    assert {e.message_id for e in edits} == {555}


async def test_telegram_throttling_the_status_message_is_waited_out() -> None:
    rig = Rig()
    calls = 0

    def send(request: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise rpc_error(
                Unavailable("queued", reason="TELEGRAM_UNAVAILABLE", retry_after=0.1),
                domain="notifier.voxmesh",
            )
        from notifier.v1 import notifier_pb2

        return notifier_pb2.SendResponse(message_id=9)

    rig.notifier.replies["Send"] = send
    rig.transcriber.events = transcript("patience", seconds=3)
    outcome = await rig.run(job())
    assert outcome.status == "done" and calls == 3 and rig.attached == [9]


async def test_more_tries_than_allowed_end_the_job_with_the_money_back() -> None:
    rig = Rig(max_attempts=3)
    rig.billing.replies["GetHold"] = billing_pb2.GetHoldResponse(
        hold=billing_pb2.Hold(hold_id=HOLD, amount_credits=2, state=billing_pb2.HOLD_STATE_PENDING)
    )
    outcome = await rig.run(job(attempt=4, hold_id=HOLD, status=77))
    assert outcome.status == "failed"
    assert len(rig.billing.requests("Release")) == 1
    assert rig.transcriber.streams == []
    assert "Reference" in rig.notifier.requests("Edit")[-1].text


async def test_srt_and_vtt_are_files() -> None:
    for fmt, name in (
        (transcriber_pb2.OUTPUT_FORMAT_SRT, "transcript.srt"),
        (transcriber_pb2.OUTPUT_FORMAT_VTT, "transcript.vtt"),
    ):
        rig = Rig()
        rig.transcriber.events = transcript("a", formatted="1\n00:00:00,000 --> 00:00:01,000\na\n")
        await rig.run(job(output_format=fmt))
        [doc] = rig.notifier.requests("SendDocument")
        assert doc.filename == name


async def test_the_detected_language_is_named_when_it_is_not_the_interfaces() -> None:
    rig = Rig()
    events = transcript("Hello there.", seconds=3)
    events.insert(
        1,
        transcriber_pb2.TranscribeResponse(
            language=transcriber_pb2.LanguageDetected(language="en", probability=0.9)
        ),
    )
    rig.transcriber.events = events
    await rig.run(job(lang="ru"))
    assert rig.notifier.requests("Edit")[-1].text == "Hello there.\n\n🌐 Язык: английский."
    # Asked for in the interface's own language, or fixed by /lang: nothing added.
    rig = Rig()
    rig.transcriber.events = events
    await rig.run(job(lang="en"))
    assert rig.notifier.requests("Edit")[-1].text == "Hello there."


async def test_a_runner_that_lost_its_lease_stops_without_touching_the_money() -> None:
    rig = Rig()
    stop = asyncio.Event()
    events: list[Any] = transcript("one.", "two.", "three.", seconds=30)
    rig.transcriber.events = events
    rig.transcriber.delay = 0.05
    the_job = job(media=Media("voice", "file-1", duration=30))
    lease = Lease(rig.queue, the_job, lease_seconds=15, renew_seconds=5)
    lease.stop = stop

    def lose(_: Any) -> Any:
        lease.lost = True  # what a renewal refused JOB_LEASE_LOST does
        stop.set()
        return audio_info(30)

    events.insert(3, lose)
    with pytest.raises(RetryLaterError):
        await rig.saga.run(the_job, lease, rig.attach)
    assert rig.billing.requests("Capture") == [] and rig.billing.requests("Release") == []


def _full(retry_after: float = 1.0) -> Any:
    """What a transcriber with every slot and queue place taken answers."""
    from voxmesh.errors import ResourceExhausted

    return rpc_error(
        ResourceExhausted(
            "2 streams active and 8 queued", reason="OVERLOADED", retry_after=retry_after
        ),
        domain="transcriber.voxmesh",
    )


def _held(rig: Rig) -> None:
    rig.billing.replies["ExtendHold"] = lambda request: billing_pb2.ExtendHoldResponse(
        hold=billing_pb2.Hold(
            hold_id=request.hold_id,
            amount_credits=request.amount_credits,
            state=billing_pb2.HOLD_STATE_PENDING,
        )
    )


async def test_a_full_transcriber_is_waited_out_with_the_hold_kept() -> None:
    rig = Rig()
    _held(rig)
    rig.transcriber.refusals = [_full(), _full()]
    rig.transcriber.events = transcript("Ask not.", seconds=5.2)
    outcome = await rig.run(job())
    assert outcome.status == "done" and outcome.text == "Ask not."
    assert len(rig.transcriber.streams) == 3
    # The note kept its hold: nothing released, charged once.
    assert rig.billing.requests("Release") == []
    assert len(rig.billing.requests("Capture")) == 1
    # Each wait pushed the hold's expiry out, each under a key of its own.
    extends = rig.billing.requests("ExtendHold")
    assert len(extends) == 2 and len({e.idempotency_key for e in extends}) == 2
    assert all(e.ttl.seconds > 300 for e in extends)
    # The user saw why it waits, then the text.
    texts = [e.text for e in rig.notifier.requests("Edit")]
    assert texts[0].startswith("⏳ Lots of recordings") and texts[-1] == "Ask not."
    assert not any("overloaded" in text for text in texts)


async def test_a_transcriber_full_for_longer_than_the_wait_releases_and_says_so() -> None:
    rig = Rig(overload_wait_seconds=2.5)
    _held(rig)
    rig.transcriber.refusals = [_full(), _full(), _full(), _full()]
    outcome = await rig.run(job())
    assert outcome.status == "failed"
    assert len(rig.transcriber.streams) == 3  # waited 1 s twice; a third wait passes 2.5 s
    assert len(rig.billing.requests("Release")) == 1 and rig.billing.requests("Capture") == []
    assert "overloaded" in rig.notifier.requests("Edit")[-1].text


async def test_cancel_while_waiting_for_the_transcriber_releases_everything() -> None:
    rig = Rig()
    _held(rig)
    rig.transcriber.refusals = [_full(retry_after=30.0)]
    stop = asyncio.Event()
    run = asyncio.create_task(rig.run(job(), stop))
    await asyncio.sleep(0.5)
    stop.set()
    outcome = await asyncio.wait_for(run, 5)  # not after the 30 s the server asked for
    assert outcome.status == "cancelled"
    assert len(rig.billing.requests("Release")) == 1 and rig.billing.requests("Capture") == []
    assert len(rig.transcriber.streams) == 1


async def test_a_transcriber_that_died_is_tried_again_later_with_the_hold_kept() -> None:
    rig = Rig(retry_pause_seconds=0.01)
    rig.transcriber.stream_error = rpc_error(Unavailable("the transcriber went away"))
    with pytest.raises(RetryLaterError):
        await rig.run(job())
    # Nothing released, nothing charged, nobody told it failed: the next try goes on.
    assert rig.billing.requests("Release") == [] and rig.billing.requests("Capture") == []
    assert not any("Reference" in e.text for e in rig.notifier.requests("Edit"))


async def test_a_file_server_failing_past_its_retries_is_tried_again_later() -> None:
    from gateway.jobs.stream import FileUnavailableError

    rig = Rig(retry_pause_seconds=0.01)
    rig.saga.files.error = FileUnavailableError("TelegramServerError after 5 tries")  # type: ignore[attr-defined]
    with pytest.raises(RetryLaterError):
        await rig.run(job())
    assert rig.billing.requests("Release") == []


async def test_the_last_try_the_world_breaks_releases_and_says_so() -> None:
    rig = Rig(retry_pause_seconds=0.01, max_attempts=3)
    rig.transcriber.stream_error = rpc_error(Unavailable("the transcriber went away"))
    outcome = await rig.run(job(attempt=3))
    assert outcome.status == "failed"
    assert len(rig.billing.requests("Release")) == 1 and rig.billing.requests("Capture") == []
    assert "ab" * 16 in rig.notifier.requests("Edit")[-1].text


async def test_cancel_while_pausing_before_another_try_releases_everything() -> None:
    rig = Rig(retry_pause_seconds=30.0)
    rig.transcriber.stream_error = rpc_error(Unavailable("the transcriber went away"))
    stop = asyncio.Event()
    run = asyncio.create_task(rig.run(job(), stop))
    await asyncio.sleep(0.5)
    stop.set()
    outcome = await asyncio.wait_for(run, 5)
    assert outcome.status == "cancelled"
    assert len(rig.billing.requests("Release")) == 1 and rig.billing.requests("Capture") == []
