"""One Transcribe call: the file's bytes up, events down, the hold grown as the audio demands.

The transcriber never transcribes past ``paid_seconds``; this side raises
that limit (PaidSeconds) only after billing has grown the hold to cover it.
The audio's end is sent as end_of_audio rather than a half-close, so the stream
stays open for a raise once the real duration is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from billing.v1 import billing_pb2
from gateway.jobs.editor import LiveEditor
from gateway.jobs.model import Job
from gateway.jobs.money import Money, NoFundsError, Pricing
from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
from voxmesh import deadline
from voxmesh.errors import error_details

# Audio whose length shows only as it decodes: each extension adds at least
# this much, or half of what is held.
EXTEND_STEP_SECONDS = 60
# Longest audio the transcriber takes (TRANSCRIBER_MAX_AUDIO_SECONDS's default).
MAX_AUDIO_SECONDS = 7200
# Transcriber errors after which the text so far stands (and is charged).
_STOPS = {"PAID_SECONDS_EXCEEDED": "out_of_credits", "AUDIO_TOO_LONG": "too_long"}


class FileTooBigError(Exception):
    """Telegram will not hand this file to a bot (or it is over our download limit)."""


class FileUnavailableError(Exception):
    """Telegram's file server kept failing (5xx, 429, dropped connections) past the
    download's own retries: the job is worth another try later."""


class FileSource(Protocol):
    def stream(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks, as they download."""
        ...


@dataclass
class Transcript:
    segments: list[str] = field(default_factory=list)
    # End of the last final segment: the audio delivered so far.
    delivered_seconds: float = 0.0
    duration: float = 0.0  # the real duration, once known
    done: transcriber_pb2.Done | None = None
    language: str = ""
    # "" (it ran to its end), cancelled, out_of_credits, too_long
    stopped: str = ""
    # Why it stopped out of credits: the price asked and the balance there was.
    refused: NoFundsError | None = None

    @property
    def text(self) -> str:
        return " ".join(s.strip() for s in self.segments if s.strip())


@dataclass(frozen=True)
class Budget:
    """How long a job may take: ``timeout(seconds of audio)``; how long its hold lives."""

    timeout: Callable[[float], float]
    hold_ttl: Callable[[float], int]


class Stream:
    def __init__(
        self,
        transcriber: transcriber_pb2_grpc.TranscriberServiceAsyncStub,
        files: FileSource,
        money: Money,
        budget: Budget,
        job: Job,
        hold: billing_pb2.Hold,
        pricing: Pricing,
        stop: asyncio.Event,
    ) -> None:
        self._transcriber = transcriber
        self._files = files
        self._money = money
        self._budget = budget
        self.job = job
        self.hold = hold
        self.stop = stop
        # A hold captured by an earlier try: that text is paid for, deliver it all.
        self.charged_before = hold.state == billing_pb2.HOLD_STATE_CAPTURED
        self.covered = pricing.seconds_for(
            hold.captured_credits if self.charged_before else hold.amount_credits
        )
        self.result = Transcript()
        self._outbox: asyncio.Queue[transcriber_pb2.TranscribeRequest | None] = asyncio.Queue(8)
        self._download_failed: list[Exception] = []
        self._out_of_credits = False
        self._deadline_at = time.monotonic() + budget.timeout(
            max(job.spec.media.duration, min(self.covered, MAX_AUDIO_SECONDS))
        )
        self._timed_out = False
        self._uploader: asyncio.Task[None] | None = None

    async def _requests(self) -> AsyncIterator[transcriber_pb2.TranscribeRequest]:
        spec = self.job.spec
        yield transcriber_pb2.TranscribeRequest(
            config=transcriber_pb2.TranscriptionConfig(
                language=spec.speech_language,
                task=transcriber_pb2.Task.Name(spec.task),
                output_format=transcriber_pb2.OutputFormat.Name(spec.output_format),
                input_mode=transcriber_pb2.INPUT_MODE_FILE,
                paid_seconds=float(self.covered),
            )
        )
        while (item := await self._outbox.get()) is not None:
            yield item

    async def _download(self, call: grpc.aio.Call) -> None:
        try:
            async for chunk in self._files.stream(self.job.spec.media.file_id):
                await self._outbox.put(transcriber_pb2.TranscribeRequest(audio=chunk))
            await self._outbox.put(transcriber_pb2.TranscribeRequest(end_of_audio=True))
        except Exception as exc:  # noqa: BLE001 - the real cause, kept for the user
            self._download_failed.append(exc)
            call.cancel()

    async def _watch(self, call: grpc.aio.Call) -> None:
        """Cancels the call on /cancel, or once the job's deadline passed (it moves
        when the real duration becomes known)."""
        while True:
            left = self._deadline_at - time.monotonic()
            if left <= 0:
                self._timed_out = True
                call.cancel()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), min(left, 1.0))
            if self.stop.is_set():
                call.cancel()
                return

    def _give_up_upload(self) -> None:
        """No raise is coming: stop uploading and half-close, so the transcriber ends
        at what is paid for now rather than after its wait for a raise."""
        if self._uploader is not None:
            self._uploader.cancel()
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self._outbox.put_nowait(None)

    async def _raise_paid(self, seconds: int) -> None:
        self.covered = seconds
        await self._outbox.put(
            transcriber_pb2.TranscribeRequest(
                paid=transcriber_pb2.PaidSeconds(paid_seconds=float(seconds))
            )
        )

    async def _pay_for(self, seconds: float, *, final: bool) -> None:
        """Grow the hold to cover ``seconds`` of audio, then let the transcriber go on."""
        if seconds <= self.covered:
            return
        if self.charged_before:
            await self._raise_paid(math.ceil(seconds))
            return
        step = max(EXTEND_STEP_SECONDS, self.covered // 2)
        target = min(math.ceil(seconds) if final else self.covered + step, MAX_AUDIO_SECONDS)
        try:
            self.hold = await self._money.extend(
                self.job, self.hold, await self._money.price(target), self._budget.hold_ttl(target)
            )
        except NoFundsError as exc:
            if final and not self.result.segments:
                raise  # known before any text: the whole note is refused
            self._out_of_credits = True  # the transcriber stops at what is held
            self.result.refused = exc
            self._give_up_upload()
            return
        await self._raise_paid(target)

    async def _on_event(
        self, event: transcriber_pb2.TranscribeResponse, editor: LiveEditor
    ) -> None:
        result = self.result
        kind = event.WhichOneof("event")
        if kind == "audio":
            info = event.audio
            if info.final:
                result.duration = info.duration_seconds
                self._deadline_at = max(
                    self._deadline_at,
                    time.monotonic() + self._budget.timeout(info.duration_seconds),
                )
            await self._pay_for(info.duration_seconds, final=info.final)
        elif kind == "language":
            result.language = event.language.language
        elif kind == "segment" and event.segment.final:
            result.segments.append(event.segment.text)
            result.delivered_seconds = max(result.delivered_seconds, event.segment.end_seconds)
            editor.update(result.text + " …")
        elif kind == "done":
            result.done = event.done
            result.duration = result.duration or event.done.audio_duration_seconds

    async def run(self, edit: Callable[[str, str], Awaitable[None]], interval: float) -> Transcript:
        """Transcribe the job's file, editing its status message with the text so far.

        Returns how it went: ran to its end, or stopped (cancelled, out of
        credits, too long) with the text so far. Raises NoFundsError when the
        real duration costs more than the user has, before any text, and
        the real cause of any other failure.
        """
        editor = LiveEditor(edit, interval)
        result = self.result
        # A generous cap: the job's own deadline is kept by _watch.
        with deadline.bound(self._budget.timeout(MAX_AUDIO_SECONDS)):
            call = self._transcriber.Transcribe(self._requests())
        self._uploader = asyncio.create_task(self._download(call))
        helpers = [self._uploader, asyncio.create_task(self._watch(call))]
        try:
            async for event in call:
                await self._on_event(event, editor)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task itself is cancelled (shutdown)
            result.stopped = "cancelled"  # from this side: _check says why
        except grpc.aio.AioRpcError as exc:
            details = error_details(exc)
            stop = _STOPS.get(details.reason)
            if stop is None:
                raise
            result.stopped = stop
            transcribed = float((details.metadata or {}).get("transcribed_seconds", "0") or 0)
            result.delivered_seconds = max(result.delivered_seconds, transcribed)
        finally:
            for helper in helpers:
                helper.cancel()
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(None)
            await editor.close()
        return self._check()

    def _check(self) -> Transcript:
        result = self.result
        if self._download_failed:
            raise self._download_failed[0]
        if self._timed_out:
            raise TimeoutError("the job ran past its deadline")
        if not result.stopped and self.stop.is_set():
            result.stopped = "cancelled"  # /cancel came as the last event arrived
        if not result.stopped and result.done is None:
            raise RuntimeError("transcriber stream ended without a done event")
        if self._out_of_credits and not result.stopped:
            result.stopped = "out_of_credits"
        return result
