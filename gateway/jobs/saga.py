"""One claimed job, end to end: status message, hold, stream, live edits, capture, text.

The money rules (the README's "What a note costs"):

* The audio's real length prices the job, never the length the sender's
  client declared: the first hold is provisional, and when the transcriber
  reports the real duration (its first event for a complete file) the hold
  grows to it before a word is transcribed past what is held; for audio
  whose length shows only as it decodes, the hold grows step by step. The
  transcriber itself refuses to transcribe past what the gateway says is
  held (``paid_seconds``).
* A user who cannot pay for the whole note is told so before any text; a
  stream that outgrows the user's credits mid-way stops there, and the text
  so far is delivered and charged.
* /cancel, or an over-length stop, charges the seconds transcribed and
  delivered so far and releases the rest.
* A full transcriber is waited for (its retry delay), the hold kept. A
  failure of the world (the transcriber died or is unreachable, the file
  server kept failing) is tried again later, the hold kept; a failure no
  other try can mend (a deadline we caused, bad media), or the last try's,
  releases everything.
* The charge is captured before the final text is handed to the notifier,
  so no text goes out whose charge could still fail; a charge whose text
  then cannot be delivered is refunded.

This module is orchestration only: every effect is a call to billing, the
transcriber or the notifier with an idempotency key derived from the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import language_name, t
from gateway.jobs.editor import TELEGRAM_TEXT_LIMIT
from gateway.jobs.model import Job, JobSpec, Outcome
from gateway.jobs.money import CLEANUP_SECONDS, BannedError, Money, NoFundsError, Pricing
from gateway.jobs.queue import Lease
from gateway.jobs.stream import (
    Budget,
    FileSource,
    FileTooBigError,
    FileUnavailableError,
    Stream,
    Transcript,
)
from notifier.v1 import notifier_pb2
from transcriber.v1 import transcriber_pb2
from voxmesh import deadline
from voxmesh.errors import error_details
from voxmesh.telemetry import current_trace_id

log = logging.getLogger(__name__)

# Groups allow 20 messages a minute; live edits there must leave room for others.
GROUP_EDIT_INTERVAL_SECONDS = 3.0
# A hold outlives its job's deadline by this much (and the clean-up's), so
# the reaper never returns the money of a job still running.
HOLD_MARGIN_SECONDS = 300
# The first hold of audio with no declared length (documents) is for this
# long, and no first hold is for longer: the real duration decides.
FIRST_HOLD_SECONDS = 60
MAX_FIRST_HOLD_SECONDS = 600
# A full transcriber that names no retry delay is asked again after this long.
OVERLOAD_RETRY_SECONDS = 5.0
# The line added under text that stopped before the audio's end.
_TAILS = {
    "cancelled": "stopped_by_user",
    "out_of_credits": "stopped_no_credits",
    "too_long": "stopped_too_long",
}
_BAD_MEDIA = {
    "AUDIO_EMPTY": "bad_media",
    "AUDIO_CORRUPT": "bad_media",
    "NO_AUDIO_TRACK": "bad_media",
    "AUDIO_TOO_LARGE": "too_long",
    "OVERLOADED": "busy",
}


class RetryLaterError(Exception):
    """A dependency was unreachable before anything irreversible: run the job again later."""


def _says_language(spec: JobSpec, detected: str) -> bool:
    """Name the detected language under plain text when it is not the interface's."""
    return (
        not spec.speech_language
        and bool(detected)
        and detected != spec.lang
        and spec.output_format
        in (transcriber_pb2.OUTPUT_FORMAT_TEXT, transcriber_pb2.OUTPUT_FORMAT_TIMESTAMPED_TEXT)
        and spec.task == transcriber_pb2.TASK_TRANSCRIBE
    )


def _why(exc: BaseException) -> str:
    """A one-word cause for the ledger (billing takes no free text from exceptions)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return error_details(exc).reason or exc.code().name
    return type(exc).__name__


def _overloaded(exc: grpc.aio.AioRpcError) -> float | None:
    """The retry delay of a transcriber that is full (every slot and queue place taken)."""
    details = error_details(exc)
    if details.code != grpc.StatusCode.RESOURCE_EXHAUSTED or details.reason != "OVERLOADED":
        return None
    return min(max(details.retry_after or OVERLOAD_RETRY_SECONDS, 1.0), 60.0)


def _worth_another_try(exc: BaseException) -> bool:
    """A failure of the world, not of the note: the transcriber died or could not be
    reached, Telegram's file server kept failing."""
    if isinstance(exc, FileUnavailableError):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def _transient(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class _Attach(Protocol):
    async def __call__(self, job_id: str, message_id: int) -> int: ...


class Saga:
    def __init__(
        self,
        services: Services,
        files: FileSource,
        *,
        download_limit: int,
        job_base_seconds: float = 60.0,
        job_seconds_per_audio_second: float = 1.0,
        edit_interval_seconds: float = 1.0,
        text_document_threshold: int = 12000,
        max_attempts: int = 3,
        status_wait_seconds: float = 300.0,
        overload_wait_seconds: float = 600.0,
        retry_pause_seconds: float = 5.0,
    ) -> None:
        self.services = services
        self.files = files
        self.money = Money(services)
        self.download_limit = download_limit
        self.job_base_seconds = job_base_seconds
        self.job_seconds_per_audio_second = job_seconds_per_audio_second
        self.edit_interval_seconds = edit_interval_seconds
        self.text_document_threshold = text_document_threshold
        self.max_attempts = max_attempts
        # How long a job waits for Telegram to take its status message
        # (429 storms) before it lets another try come later.
        self.status_wait_seconds = status_wait_seconds
        # How long a job waits, its hold kept, for a full transcriber to take
        # it, before the user is told to try again later.
        self.overload_wait_seconds = overload_wait_seconds
        # A try that the world broke (the transcriber died, the file server
        # failed) waits this long times its number before the next try, so a
        # restarting transcriber is back when it comes.
        self.retry_pause_seconds = retry_pause_seconds

    def job_timeout(self, seconds: float) -> float:
        return self.job_base_seconds + seconds * self.job_seconds_per_audio_second

    def hold_ttl(self, seconds: float) -> int:
        """How long a hold stays pending: past its job's deadline and clean-up."""
        return math.ceil(self.job_timeout(seconds) + CLEANUP_SECONDS + HOLD_MARGIN_SECONDS)

    # -- the messages ---------------------------------------------------------

    async def send(self, spec: JobSpec, key: str, text: str, *, reply: bool = True) -> int:
        """A new message about the job, replying to its note."""
        response = await self.services.notifier.Send(
            notifier_pb2.SendRequest(
                idempotency_key=spec.key(key),
                chat_id=spec.chat_id,
                text=text,
                reply_to_message_id=spec.note_id if reply else 0,
                chat_kind=spec.chat_kind,
            )
        )
        return int(response.message_id)

    async def _edit(self, spec: JobSpec, key: str, message_id: int, text: str) -> None:
        await self.services.notifier.Edit(
            notifier_pb2.EditRequest(
                idempotency_key=spec.key(key),
                chat_id=spec.chat_id,
                message_id=message_id,
                text=text,
                chat_kind=spec.chat_kind,
            )
        )

    async def _send_status(self, spec: JobSpec, text: str) -> int:
        """Send the status message under its one key; while Telegram throttles the
        chat the notifier keeps it in its outbox and answers UNAVAILABLE, so the
        same call is repeated until the message exists."""
        give_up = time.monotonic() + self.status_wait_seconds
        while True:
            try:
                with deadline.bound(10):
                    return await self.send(spec, "status", text)
            except grpc.aio.AioRpcError as exc:
                if not _transient(exc) or time.monotonic() > give_up:
                    raise
                retry = float((error_details(exc).metadata or {}).get("retry_after", "1") or 1)
                await asyncio.sleep(min(max(retry, 0.5), 10.0))

    async def _status(self, job: Job, attach: _Attach) -> int:
        """The job's one status message: recorded in billing, or sent now and recorded.

        Its key is the same on every try, so the notifier gives back a message
        it already sent. The handler may have sent it as a "queued" notice:
        the notifier then refuses the key for other text, and sending the
        notice's own text again finds that message.
        """
        spec = job.spec
        message_id = job.status_message_id
        if not message_id:
            try:
                message_id = await self._send_status(spec, t(spec.lang, "transcribing"))
                return await attach(job.job_id, message_id)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                message_id = await self._send_status(spec, t(spec.lang, "queued"))
                message_id = await attach(job.job_id, message_id)
        # It says "queued", or an earlier try's text so far.
        with contextlib.suppress(grpc.aio.AioRpcError), deadline.bound(5):
            text = t(spec.lang, "transcribing")
            await self._edit(spec, f"started:{job.attempt}", message_id, text)
        return message_id

    async def edit_status(self, spec: JobSpec, job: billing_pb2.QueuedJob, text: str) -> None:
        """Edit a job's status message from outside its run (a queued job cancelled)."""
        with deadline.bound(CLEANUP_SECONDS):
            await self._edit(spec, "final", job.status_message_id, text)

    async def tell(self, job: Job, status: int, key: str, text: str) -> None:
        """The job's last word: an edit of its status message (a reply if it has none)."""
        spec = job.spec
        try:
            with deadline.bound(CLEANUP_SECONDS):
                if status:
                    await self._edit(spec, f"{key}:{job.attempt}", status, text)
                else:
                    await self.send(spec, f"{key}:{job.attempt}", text)
        except grpc.aio.AioRpcError as exc:
            # UNAVAILABLE: it waits in the notifier's outbox and lands later.
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                log.exception("could not tell the user how job %s ended", job.job_id)

    async def _tell_failure(self, job: Job, status: int, exc: BaseException, ref: str) -> str:
        key = "failed"
        if isinstance(exc, FileTooBigError):
            key = "too_big"
        elif isinstance(exc, grpc.aio.AioRpcError):
            details = error_details(exc)
            key = _BAD_MEDIA.get(details.reason, "failed")
            if details.reason == "INVALID_REQUEST" and "language" in (
                (details.metadata or {}).get("field", "")
            ):
                key = "language_unavailable"
        text = t(job.spec.lang, key, ref=ref or "-", limit_mb=self.download_limit >> 20)
        await self.tell(job, status, "final", text)
        return key

    # -- the job --------------------------------------------------------------

    async def run(self, job: Job, lease: Lease, attach: _Attach) -> Outcome:
        """Run ``job`` until it has an outcome; RetryLaterError if it must be tried again."""
        trace_id = current_trace_id() or job.trace_id
        spec = job.spec
        if job.attempt > self.max_attempts:
            return await self._give_up(job, trace_id)
        if spec.media.file_size > self.download_limit:
            await self.tell(
                job, 0, "final", t(spec.lang, "too_big", limit_mb=self.download_limit >> 20)
            )
            return Outcome("too_big", trace_id=trace_id)
        try:
            status = await self._status(job, attach)
            pricing = await self.money.pricing()
            hold = await self._hold(job, status, pricing, trace_id)
        except grpc.aio.AioRpcError as exc:
            if _transient(exc):
                raise RetryLaterError(str(exc.code())) from exc
            raise
        if isinstance(hold, Outcome):
            return hold
        return await self._transcribe_and_settle(job, status, hold, pricing, lease, trace_id)

    async def _give_up(self, job: Job, trace_id: str) -> Outcome:
        """A job whose tries all ended without an outcome: money back, the user told."""
        if job.hold_id:
            with contextlib.suppress(grpc.aio.AioRpcError):
                hold = await self.money.get(job.hold_id)
                if hold.state == billing_pb2.HOLD_STATE_PENDING:
                    await self.money.release(job.hold_id, f"gave up after {job.attempt - 1} tries")
        text = t(job.spec.lang, "failed", ref=trace_id or job.trace_id or "-")
        await self.tell(job, job.status_message_id, "final", text)
        return Outcome("failed", trace_id=trace_id)

    async def _hold(
        self, job: Job, status: int, pricing: Pricing, trace_id: str
    ) -> billing_pb2.Hold | Outcome:
        """The hold paying for the job: an earlier try's if it is still good, else a new one."""
        spec = job.spec
        declared = spec.media.duration
        if job.hold_id:
            hold = await self.money.get(job.hold_id)
            if hold.state == billing_pb2.HOLD_STATE_PENDING:
                # A re-drive gets a fresh clock: its hold must outlive it too.
                seconds = max(declared, pricing.seconds_for(hold.amount_credits))
                return await self.money.extend(
                    job, hold, hold.amount_credits, self.hold_ttl(seconds)
                )
            if hold.state == billing_pb2.HOLD_STATE_CAPTURED:
                return hold  # charged already: the text is delivered again, never charged again
        first = min(declared or FIRST_HOLD_SECONDS, MAX_FIRST_HOLD_SECONDS)
        try:
            return await self.money.reserve(job, first, self.hold_ttl(first), trace_id)
        except NoFundsError as exc:
            text = t(spec.lang, "no_funds", price=exc.price, balance=exc.balance)
            await self.tell(job, status, "no_funds", text)
            return Outcome("no_funds", trace_id=trace_id)
        except BannedError:
            await self.tell(job, status, "banned", t(spec.lang, "banned"))
            return Outcome("banned", trace_id=trace_id)

    async def _transcribe_and_settle(
        self,
        job: Job,
        status: int,
        hold: billing_pb2.Hold,
        pricing: Pricing,
        lease: Lease,
        trace_id: str,
    ) -> Outcome:
        spec = job.spec
        charged_before = hold.state == billing_pb2.HOLD_STATE_CAPTURED
        if lease.stop.is_set():
            return await self._settle(
                job, status, hold, Transcript(stopped="cancelled"), charged_before, trace_id
            )

        async def edit(key: str, text: str) -> None:
            await self._edit(spec, f"a{job.attempt}.{key}", status, text)

        stream = self._stream(job, hold, pricing, lease)
        try:
            stream, result = await self._run_when_room(job, stream, pricing, lease, edit)
            if lease.lost:
                # Another runner holds the job now: it settles the hold, not this one.
                raise RetryLaterError("the job's lease went to another runner")
        except NoFundsError as exc:
            await self.money.release(stream.hold.hold_id, "the audio costs more than the balance")
            text = t(spec.lang, "no_funds", price=exc.price, balance=exc.balance)
            await self.tell(job, status, "no_funds", text)
            return Outcome("no_funds", trace_id=trace_id)
        except RetryLaterError:
            raise
        except Exception as exc:
            if _worth_another_try(exc) and job.attempt < self.max_attempts:
                # Nothing irreversible happened: the hold stays for the next try.
                if await self._pause(job, lease):
                    raise RetryLaterError(f"{_why(exc)} on try {job.attempt}") from exc
                cancelled = Transcript(stopped="cancelled")
                return await self._settle(job, status, hold, cancelled, charged_before, trace_id)
            if not charged_before:
                await self.money.release(hold.hold_id, f"transcription failed: {_why(exc)}")
            await self._tell_failure(job, status, exc, trace_id)
            log.warning("job %s failed: %s", job.job_id, type(exc).__name__)
            return Outcome("failed", trace_id=trace_id)
        return await self._settle(job, status, stream.hold, result, charged_before, trace_id)

    async def _pause(self, job: Job, lease: Lease) -> bool:
        """Wait before the next try; False if the user cancelled meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lease.stop.wait(), self.retry_pause_seconds * job.attempt)
        return not lease.stop.is_set()

    def _stream(self, job: Job, hold: billing_pb2.Hold, pricing: Pricing, lease: Lease) -> Stream:
        budget = Budget(self.job_timeout, self.hold_ttl)
        transcriber = self.services.transcriber
        return Stream(transcriber, self.files, self.money, budget, job, hold, pricing, lease.stop)

    async def _run_when_room(
        self,
        job: Job,
        stream: Stream,
        pricing: Pricing,
        lease: Lease,
        edit: Callable[[str, str], Awaitable[None]],
    ) -> tuple[Stream, Transcript]:
        """Run the stream; while the transcriber is full, wait as it asks and run it again.

        Telling the user to send the note again (and releasing the hold) lost
        the note for a moment's load: a full transcriber says when to come
        back, and the job keeps its place, its hold and its status message.
        """
        waited, waits = 0.0, 0
        while True:
            try:
                return stream, await stream.run(edit, self._edit_interval(job))
            except grpc.aio.AioRpcError as exc:
                retry = _overloaded(exc)
                if retry is None or stream.result.segments:
                    raise
                if waited + retry > self.overload_wait_seconds:
                    raise
            if not waited:
                with contextlib.suppress(grpc.aio.AioRpcError), deadline.bound(5):
                    await edit("wait", t(job.spec.lang, "waiting_for_room"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lease.stop.wait(), retry)
            waited += retry
            waits += 1
            hold = stream.hold
            if lease.stop.is_set():
                return stream, Transcript(stopped="cancelled")
            if hold.state == billing_pb2.HOLD_STATE_PENDING:
                # The wait ate into the hold's life: it must outlive the run to come.
                seconds = max(job.spec.media.duration, pricing.seconds_for(hold.amount_credits))
                ttl = self.hold_ttl(seconds)
                hold = await self.money.extend(job, hold, hold.amount_credits, ttl, wait=waits)
            stream = self._stream(job, hold, pricing, lease)

    def _edit_interval(self, job: Job) -> float:
        if job.spec.chat_kind == notifier_pb2.CHAT_KIND_GROUP:
            return max(self.edit_interval_seconds, GROUP_EDIT_INTERVAL_SECONDS)
        return self.edit_interval_seconds

    async def _settle(
        self,
        job: Job,
        status: int,
        hold: billing_pb2.Hold,
        result: Transcript,
        charged_before: bool,
        trace_id: str,
    ) -> Outcome:
        """Charge for what the user gets, then give it to them."""
        spec = job.spec
        text = result.text
        if not result.stopped and result.done is not None:
            text = result.done.formatted_text.strip() or text
        if not text:
            if not charged_before:
                await self.money.release(hold.hold_id, result.stopped or "no speech")
            if result.stopped == "out_of_credits" and result.refused is not None:
                # Credits ran out before any speech: the note as a whole is unaffordable.
                refused = result.refused
                words = t(spec.lang, "no_funds", price=refused.price, balance=refused.balance)
                await self.tell(job, status, "no_funds", words)
                return Outcome("no_funds", trace_id=trace_id)
            word = "cancelled" if result.stopped == "cancelled" else "no_speech"
            await self.tell(job, status, "final", t(spec.lang, word, ref=trace_id or "-"))
            return Outcome(word, trace_id=trace_id)
        # The whole audio when it ran to its end; what was transcribed and
        # delivered when it stopped early; never more than the hold.
        seconds = result.delivered_seconds if result.stopped else result.duration
        captured = 0
        if not charged_before:
            try:
                captured = await self.money.capture(hold, await self.money.price(seconds))
            except grpc.aio.AioRpcError as exc:
                if _transient(exc):
                    # No text goes out whose charge could still fail: try again later.
                    raise RetryLaterError("capture") from exc
                raise
        tail = _TAILS.get(result.stopped)
        if tail is not None:
            text = f"{text}\n\n{t(spec.lang, tail)}"
        elif _says_language(spec, result.language):
            # Detected, and not the language the bot speaks to this user: say which.
            name = language_name(spec.lang, result.language)
            word = t(spec.lang, "detected_language", language=name)
            text = f"{text}\n\n{word}"
        try:
            await self._deliver(job, status, text)
        except grpc.aio.AioRpcError as exc:
            # UNAVAILABLE: it waits in the notifier's outbox and lands later.
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                if captured:
                    await self.money.refund(hold, captured, f"not delivered: {_why(exc)}")
                log.warning("job %s: text not delivered (%s)", job.job_id, exc.code())
                return Outcome("failed", trace_id=trace_id)
        return Outcome(
            result.stopped if result.stopped in ("cancelled", "out_of_credits") else "done",
            text=text,
            captured_credits=captured,
            trace_id=trace_id,
            segments=result.segments,
        )

    async def _deliver(self, job: Job, status: int, text: str) -> None:
        spec = job.spec
        with deadline.bound(CLEANUP_SECONDS * 3):
            if spec.output_format in (
                transcriber_pb2.OUTPUT_FORMAT_SRT,
                transcriber_pb2.OUTPUT_FORMAT_VTT,
            ):
                srt = spec.output_format == transcriber_pb2.OUTPUT_FORMAT_SRT
                ext = "srt" if srt else "vtt"
                word = "subtitles_file" if srt else "subtitles_file_vtt"
                await self._edit(spec, "final", status, t(spec.lang, word))
                await self._document(spec, f"transcript.{ext}", text)
                return
            if len(text) <= TELEGRAM_TEXT_LIMIT:
                await self._edit(spec, "final", status, text)
                return
            if len(text) <= self.text_document_threshold:
                await self._edit(spec, "final", status, t(spec.lang, "transcript_below"))
                await self.send(spec, "transcript", text)
                return
            await self._edit(spec, "final", status, t(spec.lang, "transcript_file"))
            await self._document(spec, "transcript.txt", text)

    async def answer_from_cache(self, spec: JobSpec, text: str) -> None:
        """A note transcribed before with the same settings: its text, at once and free."""
        note = t(spec.lang, "from_cache")
        with deadline.bound(CLEANUP_SECONDS):
            if spec.output_format in (
                transcriber_pb2.OUTPUT_FORMAT_SRT,
                transcriber_pb2.OUTPUT_FORMAT_VTT,
            ):
                ext = "srt" if spec.output_format == transcriber_pb2.OUTPUT_FORMAT_SRT else "vtt"
                await self.send(spec, "cached", note)
                await self._document(spec, f"transcript.{ext}", text)
            elif len(note) + 2 + len(text) <= TELEGRAM_TEXT_LIMIT:
                await self.send(spec, "cached", f"{note}\n\n{text}")
            else:
                await self.send(spec, "cached", note)
                await self._document(spec, "transcript.txt", text)

    async def _document(self, spec: JobSpec, filename: str, text: str) -> None:
        await self.services.notifier.SendDocument(
            notifier_pb2.SendDocumentRequest(
                idempotency_key=spec.key("document"),
                chat_id=spec.chat_id,
                filename=filename,
                content=text.encode(),
                reply_to_message_id=spec.note_id,
                chat_kind=spec.chat_kind,
            )
        )
