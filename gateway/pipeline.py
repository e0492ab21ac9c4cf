"""One recording, end to end: reserve, placeholder, stream, live edits, capture.

This is orchestration only: every effect is a call to billing, the
transcriber or the notifier, each with an idempotency key derived from the
chat and message ids, so a retried update never charges or sends twice. It
knows nothing of aiogram: files come through the small :class:`FileSource`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from google.protobuf.duration_pb2 import Duration

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from notifier.v1 import notifier_pb2
from transcriber.v1 import transcriber_pb2
from voxmesh import deadline
from voxmesh.errors import error_details
from voxmesh.telemetry import current_trace_id

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
# Groups allow 20 messages a minute; live edits there must leave room for others.
GROUP_EDIT_INTERVAL_SECONDS = 3.0


class FileTooBigError(Exception):
    """Telegram will not hand this file to a bot."""


class JobCancelledError(Exception):
    """The user stopped the job with /cancel."""


class FileSource(Protocol):
    def stream(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, as they download."""
        ...


@dataclass(frozen=True)
class Media:
    kind: str  # voice, audio, video, video_note, document
    file_id: str
    duration: int  # seconds, 0 when Telegram did not say
    file_size: int  # bytes, 0 when Telegram did not say
    mime_type: str = ""


@dataclass(frozen=True)
class Job:
    user_id: int  # who pays
    chat_id: int
    chat_type: str
    # The message that asked for the job (the note itself, or a /t reply to
    # it): every idempotency key derives from it.
    message_id: int
    media: Media
    lang: str
    # The note the answers reply to; 0: message_id.
    reply_to: int = 0
    speech_language: str = ""  # "" = detect
    output_format: transcriber_pb2.OutputFormat = transcriber_pb2.OUTPUT_FORMAT_TEXT
    # A message already shown for this job ("Queued: ..."), edited rather
    # than followed by a new one; 0: none.
    status_message_id: int = 0

    @property
    def chat_kind(self) -> notifier_pb2.ChatKind:
        return (
            notifier_pb2.CHAT_KIND_PRIVATE
            if self.chat_type == "private"
            else notifier_pb2.CHAT_KIND_GROUP
        )

    @property
    def note_id(self) -> int:
        return self.reply_to or self.message_id

    def key(self, what: str) -> str:
        return f"{what}:{self.chat_id}:{self.message_id}"

    def with_status(self, message_id: int) -> Job:
        return dataclasses.replace(self, status_message_id=message_id)


@dataclass
class Outcome:
    status: str  # done, no_speech, no_funds, banned, too_big, failed, cancelled
    text: str = ""
    captured_credits: int = 0
    trace_id: str = ""
    segments: list[str] = field(default_factory=list)
    # False when the job's hold may still be pending (billing could not be
    # reached to capture or release it): the job is not over for the reconciler.
    settled: bool = True


# What releasing a hold, charging for delivered text or telling the user
# how a job ended may take, on top of the job's own deadline.
CLEANUP_SECONDS = 10.0

# A hold outlives its job's deadline by this much (and the clean-up's), so
# the reaper never returns the money of a job still running; a hold left by a
# crashed gateway is returned a few minutes after its job could have ended.
HOLD_MARGIN_SECONDS = 300

# Unknown durations (documents) are reserved as this long; the capture is
# at the real duration, never above the hold.
UNKNOWN_DURATION_SECONDS = 600


class Pipeline:
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
    ) -> None:
        self.services = services
        self.files = files
        self.download_limit = download_limit
        self.job_base_seconds = job_base_seconds
        self.job_seconds_per_audio_second = job_seconds_per_audio_second
        self.edit_interval_seconds = edit_interval_seconds
        self.text_document_threshold = text_document_threshold

    def job_timeout(self, media: Media) -> float:
        seconds = media.duration or UNKNOWN_DURATION_SECONDS
        return self.job_base_seconds + seconds * self.job_seconds_per_audio_second

    def hold_seconds(self, media: Media) -> int:
        """How long the job's hold stays pending: past its deadline and clean-up."""
        return math.ceil(self.job_timeout(media) + CLEANUP_SECONDS + HOLD_MARGIN_SECONDS)

    async def run(
        self,
        job: Job,
        stop: asyncio.Event | None = None,
        *,
        hold: billing_pb2.Hold | None = None,
    ) -> Outcome:
        """Do the job; ``stop`` set by /cancel ends it early with the hold released.

        ``hold``: resume a job whose hold was already placed (the reconciler
        finishing what a crashed gateway started); nothing is reserved again.
        The job's deadline bounds its work only: giving the money back and
        telling the user run after it, on a budget of their own, so a job
        that ran out of time still ends with its hold released and a word.
        """
        end = time.monotonic() + self.job_timeout(job.media)
        return await self._run(job, stop or asyncio.Event(), end, hold)

    @staticmethod
    @contextlib.contextmanager
    def _until(end: float) -> Iterator[None]:
        with deadline.bound(max(0.0, end - time.monotonic())):
            yield

    async def send(self, job: Job, key: str, text: str, *, reply: bool = True) -> int:
        """A new message about ``job``, replying to its note."""
        response = await self.services.notifier.Send(
            notifier_pb2.SendRequest(
                idempotency_key=job.key(key),
                chat_id=job.chat_id,
                text=text,
                reply_to_message_id=job.note_id if reply else 0,
                chat_kind=job.chat_kind,
            )
        )
        return int(response.message_id)

    async def _edit(self, job: Job, key: str, message_id: int, text: str) -> None:
        await self.services.notifier.Edit(
            notifier_pb2.EditRequest(
                idempotency_key=job.key(key),
                chat_id=job.chat_id,
                message_id=message_id,
                text=text,
                chat_kind=job.chat_kind,
            )
        )

    async def _say(self, job: Job, key: str, text: str) -> int:
        """The job's first word to the user: edit the queued notice, else reply."""
        if job.status_message_id:
            await self._edit(job, key, job.status_message_id, text)
            return job.status_message_id
        return await self.send(job, key, text)

    async def _run(
        self, job: Job, stop: asyncio.Event, end: float, resumed: billing_pb2.Hold | None
    ) -> Outcome:
        trace_id = current_trace_id()
        hold = resumed
        if hold is None:
            with self._until(end):
                reserved = await self._start(job, trace_id)
            if isinstance(reserved, Outcome):
                return reserved
            hold = reserved
        placeholder = 0
        try:
            with self._until(end):
                placeholder = await self._say(job, "placeholder", t(job.lang, "transcribing"))
                if stop.is_set():
                    raise JobCancelledError()
                segments, done = await self._transcribe(job, placeholder, stop)
        except JobCancelledError:
            settled = await self._release(hold.hold_id, "cancelled by the user")
            await self._tell(job, placeholder, t(job.lang, "cancelled"))
            log.info("job %s cancelled by the user", job.key("job"))
            return Outcome("cancelled", trace_id=trace_id, settled=settled)
        except asyncio.CancelledError:
            # Shutdown past the grace period: give the money back, say so.
            await self._release(hold.hold_id, "gateway shutting down")
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    asyncio.wait_for(
                        self._tell(job, placeholder, t(job.lang, "interrupted", ref=trace_id)), 5
                    )
                )
            raise
        except Exception as exc:  # noqa: BLE001 - whatever failed, the hold goes back
            settled = await self._release(
                hold.hold_id, f"transcription failed: {type(exc).__name__}"
            )
            await self._tell_failure(job, placeholder, exc, trace_id)
            log.warning("job %s failed: %s", job.key("job"), type(exc).__name__)
            return Outcome("failed", trace_id=trace_id, settled=settled)
        text = " ".join(s.strip() for s in segments if s.strip())
        formatted = done.formatted_text.strip() or text
        if not formatted:
            return await self._no_speech(job, placeholder, hold, trace_id)
        try:
            with self._until(end):
                price = await self.services.billing.Quote(
                    billing_pb2.QuoteRequest(
                        duration_seconds=max(1, round(done.audio_duration_seconds))
                    )
                )
                amount = min(price.amount_credits, hold.amount_credits)
                await self._deliver(job, placeholder, formatted)
        except Exception as exc:  # noqa: BLE001 - no text delivered, no charge
            settled = await self._release(hold.hold_id, f"delivery failed: {type(exc).__name__}")
            await self._tell_failure(job, placeholder, exc, trace_id)
            log.warning("job %s not delivered: %s", job.key("job"), type(exc).__name__)
            return Outcome("failed", trace_id=trace_id, settled=settled)
        try:
            # The text is out: charging for it must not lose to the job's clock.
            await self.services.billing.Capture(
                billing_pb2.CaptureRequest(
                    idempotency_key=job.key("capture"), hold_id=hold.hold_id, amount_credits=amount
                ),
                timeout=CLEANUP_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            # The user has the text; the hold stays pending: the reconciler
            # drives the job again (its final text and its capture are keyed,
            # so that charges once), or at its expiry the reaper returns it.
            log.error("capture of hold %s failed (%s)", hold.hold_id, exc.code())
            amount = 0
            settled = False
        else:
            settled = True
        return Outcome(
            "done",
            text=formatted,
            captured_credits=amount,
            trace_id=trace_id,
            segments=segments,
            settled=settled,
        )

    async def _no_speech(
        self, job: Job, placeholder: int, hold: billing_pb2.Hold, trace_id: str
    ) -> Outcome:
        """Nothing to read (silence, a sliver of audio): tell the user, charge nothing."""
        settled = await self._release(hold.hold_id, "no speech")
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self._edit(
                job, "final", placeholder, t(job.lang, "no_speech", ref=trace_id or "-")
            )
        return Outcome("no_speech", trace_id=trace_id, settled=settled)

    async def _start(self, job: Job, trace_id: str) -> billing_pb2.Hold | Outcome:
        """The job's hold; an Outcome when it cannot start (and the user was told)."""
        if job.media.file_size > self.download_limit:
            await self._say(
                job, "too_big", t(job.lang, "too_big", limit_mb=self.download_limit >> 20)
            )
            return Outcome("too_big", trace_id=trace_id)
        return await self._reserve(job, trace_id)

    async def _reserve(self, job: Job, trace_id: str) -> billing_pb2.Hold | Outcome:
        """Hold the price of the note; an Outcome when the user cannot pay (and was told)."""
        seconds = job.media.duration or UNKNOWN_DURATION_SECONDS
        quote = await self.services.billing.Quote(
            billing_pb2.QuoteRequest(duration_seconds=seconds)
        )
        try:
            reserved = await self.services.billing.Reserve(
                billing_pb2.ReserveRequest(
                    idempotency_key=job.key("reserve"),
                    user_id=job.user_id,
                    amount_credits=quote.amount_credits,
                    job=billing_pb2.Job(
                        chat_id=job.chat_id,
                        message_id=job.note_id,
                        file_id=job.media.file_id,
                        duration_seconds=job.media.duration,
                        trace_id=trace_id,
                    ),
                    ttl=Duration(seconds=self.hold_seconds(job.media)),
                )
            )
        except grpc.aio.AioRpcError as exc:
            details = error_details(exc)
            if details.reason == "INSUFFICIENT_FUNDS":
                meta = details.metadata or {}
                text = t(
                    job.lang,
                    "no_funds",
                    price=meta.get("required_credits", quote.amount_credits),
                    balance=meta.get("balance_credits", "0"),
                )
                await self._say(job, "no_funds", text)
                return Outcome("no_funds", trace_id=trace_id)
            if details.reason == "USER_BANNED":
                await self._say(job, "banned", t(job.lang, "banned"))
                return Outcome("banned", trace_id=trace_id)
            raise
        return reserved.hold

    async def give_up(self, job: Job, hold_id: str, exc: BaseException) -> bool:
        """Release ``job``'s hold and tell the user it failed (the reconciler's last
        resort); False if billing could not be reached (the hold is still pending)."""
        try:
            await self.services.billing.Release(
                billing_pb2.ReleaseRequest(
                    idempotency_key=f"release:{hold_id}",
                    hold_id=hold_id,
                    reason=f"abandoned: {exc}"[:256],
                ),
                timeout=CLEANUP_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            if error_details(err).reason == "HOLD_NOT_PENDING":
                return True  # settled meanwhile: whoever did it also told the user
            log.error("release of abandoned hold %s failed (%s)", hold_id, err.code())
            return False
        await self._tell_failure(job, 0, exc, current_trace_id())
        return True

    async def _release(self, hold_id: str, reason: str) -> bool:
        # Shielded: a cancelled job must still give the money back.
        async def release() -> None:
            await self.services.billing.Release(
                billing_pb2.ReleaseRequest(
                    idempotency_key=f"release:{hold_id}", hold_id=hold_id, reason=reason[:256]
                ),
                timeout=CLEANUP_SECONDS,
            )

        try:
            await asyncio.shield(release())
        except grpc.aio.AioRpcError as exc:
            # The reconciler or, at its expiry, the reaper releases it.
            log.error(
                "release of hold %s failed (%s); it stays pending for now", hold_id, exc.code()
            )
            return False
        return True

    async def _tell(self, job: Job, placeholder: int, text: str) -> None:
        try:
            with deadline.bound(CLEANUP_SECONDS):
                if placeholder:
                    await self._edit(job, "final", placeholder, text)
                else:
                    await self._say(job, "final", text)
        except grpc.aio.AioRpcError:
            log.exception("could not tell the user how job %s ended", job.key("job"))

    async def _tell_failure(
        self, job: Job, placeholder: int, exc: BaseException, trace_id: str
    ) -> None:
        key = "failed"
        if isinstance(exc, FileTooBigError):
            key = "too_big"
        elif isinstance(exc, grpc.aio.AioRpcError):
            details = error_details(exc)
            key = {
                "AUDIO_EMPTY": "bad_media",
                "AUDIO_CORRUPT": "bad_media",
                "NO_AUDIO_TRACK": "bad_media",
                "AUDIO_TOO_LONG": "too_long",
                "AUDIO_TOO_LARGE": "too_long",
                "OVERLOADED": "busy",
            }.get(details.reason, "failed")
            if details.reason == "INVALID_REQUEST" and "language" in (
                (details.metadata or {}).get("field", "")
            ):
                key = "language_unavailable"
        text = t(job.lang, key, ref=trace_id or "-", limit_mb=self.download_limit >> 20)
        await self._tell(job, placeholder, text)

    async def _transcribe(
        self, job: Job, placeholder: int, stop: asyncio.Event
    ) -> tuple[list[str], transcriber_pb2.Done]:
        config = transcriber_pb2.TranscriptionConfig(
            language=job.speech_language,
            output_format=job.output_format,
            input_mode=transcriber_pb2.INPUT_MODE_FILE,
        )

        # gRPC cancels the call when the request iterator raises, and the
        # response loop then sees a CancelledError: keep the real cause.
        download_failed: list[Exception] = []

        async def requests() -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
            yield transcriber_pb2.TranscribeRequest(config=config)
            try:
                async for chunk in self.files.stream(job.media.file_id):
                    yield transcriber_pb2.TranscribeRequest(audio=chunk)
            except Exception as exc:
                download_failed.append(exc)
                raise

        interval = self.edit_interval_seconds
        if job.chat_kind == notifier_pb2.CHAT_KIND_GROUP:
            interval = max(interval, GROUP_EDIT_INTERVAL_SECONDS)
        editor = LiveEditor(self, job, placeholder, interval)
        segments: list[str] = []
        done: transcriber_pb2.Done | None = None
        call = self.services.transcriber.Transcribe(requests())

        async def cancel_on_stop() -> None:
            await stop.wait()
            # Cancelling the RPC is what stops the transcriber's work.
            call.cancel()

        watcher = asyncio.create_task(cancel_on_stop())
        try:
            async for event in call:
                if event.HasField("segment") and event.segment.final:
                    segments.append(event.segment.text)
                    editor.update(" ".join(s.strip() for s in segments) + " …")
                elif event.HasField("done"):
                    done = event.done
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling() == 0:
                # Not this task being cancelled: the call was, from this side.
                if download_failed:
                    raise download_failed[0] from None
                if stop.is_set():
                    raise JobCancelledError() from None
            raise
        finally:
            watcher.cancel()
            await editor.close()
        if download_failed:
            raise download_failed[0]
        if stop.is_set():
            # /cancel came as the last event arrived: the user asked to stop.
            raise JobCancelledError()
        if done is None:
            raise RuntimeError("transcriber stream ended without a done event")
        return segments, done

    async def _deliver(self, job: Job, placeholder: int, text: str) -> None:
        if job.output_format == transcriber_pb2.OUTPUT_FORMAT_SRT:
            await self._edit(job, "final", placeholder, t(job.lang, "subtitles_file"))
            await self._document(job, "transcript.srt", text)
            return
        if len(text) <= TELEGRAM_TEXT_LIMIT:
            await self._edit(job, "final", placeholder, text)
            return
        if len(text) <= self.text_document_threshold:
            await self._edit(job, "final", placeholder, t(job.lang, "transcript_below"))
            await self.send(job, "transcript", text)
            return
        await self._edit(job, "final", placeholder, t(job.lang, "transcript_file"))
        await self._document(job, "transcript.txt", text)

    async def _document(self, job: Job, filename: str, text: str) -> None:
        await self.services.notifier.SendDocument(
            notifier_pb2.SendDocumentRequest(
                idempotency_key=job.key("document"),
                chat_id=job.chat_id,
                filename=filename,
                content=text.encode(),
                reply_to_message_id=job.note_id,
                chat_kind=job.chat_kind,
            )
        )


class LiveEditor:
    """Edits the placeholder with the text so far, at most once per interval.

    Runs beside the stream so a slow edit (the notifier keeps Telegram's
    1 message/s per chat) never holds back reading segments; only the newest
    text is ever sent.
    """

    def __init__(self, pipeline: Pipeline, job: Job, message_id: int, interval: float) -> None:
        self._pipeline = pipeline
        self._job = job
        self._message_id = message_id
        self._interval = interval
        self._latest = ""
        self._sent = ""
        self._seq = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._inflight: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._loop())

    def update(self, text: str) -> None:
        if len(text) > TELEGRAM_TEXT_LIMIT:
            text = "…" + text[-(TELEGRAM_TEXT_LIMIT - 1) :]
        self._latest = text
        self._changed.set()

    async def _loop(self) -> None:
        while not self._closing:
            await self._changed.wait()
            self._changed.clear()
            if self._closing or self._latest == self._sent:
                continue
            text = self._latest
            self._seq += 1
            started = time.monotonic()
            # Shielded: cancelling an edit the notifier may already have
            # queued could let it land after the final text.
            self._inflight = asyncio.ensure_future(
                self._pipeline._edit(self._job, f"live{self._seq}", self._message_id, text)
            )
            try:
                await asyncio.shield(self._inflight)
                self._sent = text
            except grpc.aio.AioRpcError as exc:
                log.info("live edit skipped: %s", exc.code())
            finally:
                self._inflight = None
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def close(self) -> None:
        """Stop editing; an edit already sent is awaited so it cannot overtake the final text."""
        self._closing = True
        self._changed.set()
        inflight = self._inflight
        if inflight is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(inflight), 30)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
