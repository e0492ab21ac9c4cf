"""Test doubles for the gateway's unit tests: the three gRPC stubs and the Bot's transport.

Only the transport is fake. Handlers, filters, middlewares, the pipeline and
the Redis-backed parts under test are the real ones.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from notifier.v1 import notifier_pb2
from transcriber.v1 import transcriber_pb2
from voxmesh.errors import STATUS_DETAILS_KEY, NotFound, ServiceError


def rpc_error(err: ServiceError, domain: str = "billing.voxmesh") -> grpc.aio.AioRpcError:
    """The error a real client gets when the server raised ``err``."""
    status = err.to_status(domain)
    return grpc.aio.AioRpcError(
        err.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details=err.message,
    )


class FakeStub:
    """Records each request; answers with ``replies[name]`` (a message or a function of
    the request), raises ``errors[name]``, else returns the RPC's empty response."""

    def __init__(self, service: ServiceDescriptor) -> None:
        self._methods = service.methods_by_name
        self.calls: list[tuple[str, Any]] = []
        self.replies: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}

    def __getattr__(self, name: str) -> Callable[..., Any]:
        methods = self.__dict__.get("_methods", {})
        if name not in methods:
            raise AttributeError(name)
        output = message_factory.GetMessageClass(methods[name].output_type)

        async def call(request: Message, timeout: float | None = None, **_: Any) -> Any:
            self.calls.append((name, request))
            if name in self.errors:
                raise self.errors[name]
            reply = self.replies.get(name)
            if callable(reply):
                return reply(request)
            return reply if reply is not None else output()

        return call

    def requests(self, name: str) -> list[Any]:
        return [request for method, request in self.calls if method == name]


class FakeCall:
    """A Transcribe stream: reads the upload like grpc does, yields ``events``.

    Events come once the upload ended (AudioEnd or a half-close); an event
    may be a function of the upload so far (to answer a PaidSeconds raise).
    """

    def __init__(
        self,
        requests: AsyncIterator[transcriber_pb2.TranscribeRequest],
        events: Iterable[Any],
        *,
        delay: float = 0.0,
        error: BaseException | None = None,
    ) -> None:
        self.requests = requests
        self.events = list(events)
        self.delay = delay
        self.error = error
        self.cancelled = False
        self.uploaded: list[transcriber_pb2.TranscribeRequest] = []
        self._cancel = asyncio.Event()
        self._ended = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def cancel(self) -> bool:
        self.cancelled = True
        self._cancel.set()
        return True

    def paid(self) -> list[float]:
        return [r.paid.paid_seconds for r in self.uploaded if r.WhichOneof("payload") == "paid"]

    async def _read(self) -> None:
        async for request in self.requests:
            self.uploaded.append(request)
            if request.WhichOneof("payload") == "end_of_audio":
                self._ended.set()
        self._ended.set()

    def __aiter__(self) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        return self._events()

    async def _events(self) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        self._reader = asyncio.create_task(self._read())
        try:
            ended = asyncio.create_task(self._ended.wait())
            cancel = asyncio.create_task(self._cancel.wait())
            await asyncio.wait({ended, cancel}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            cancel.cancel()
            for item in self.events:
                if self.cancelled:
                    # What grpc aio raises in the reader of a locally cancelled call.
                    raise asyncio.CancelledError()
                if self.delay:
                    try:
                        await asyncio.wait_for(self._cancel.wait(), self.delay)
                    except TimeoutError:
                        pass
                if self.cancelled:
                    raise asyncio.CancelledError()
                event = item
                if callable(item):
                    await asyncio.sleep(0.01)  # the raise the previous event asked for
                    event = item(self)
                if isinstance(event, BaseException):
                    raise event
                yield event
                await asyncio.sleep(0.005)  # lets the reader take what the event caused
            if self.error is not None:
                raise self.error
        finally:
            self._reader.cancel()


class FakeTranscriber(FakeStub):
    def __init__(self) -> None:
        super().__init__(transcriber_pb2.DESCRIPTOR.services_by_name["TranscriberService"])
        self.streams: list[FakeCall] = []
        self.events: list[transcriber_pb2.TranscribeResponse] = []
        self.delay = 0.0
        self.stream_error: BaseException | None = None
        # Errors the next calls end with before any event, one call each (a full server).
        self.refusals: list[BaseException] = []

    def Transcribe(self, requests: AsyncIterator[Any], **_: Any) -> FakeCall:
        if self.refusals:
            call = FakeCall(requests, [], error=self.refusals.pop(0))
            self.streams.append(call)
            return call
        call = FakeCall(requests, self.events, delay=self.delay, error=self.stream_error)
        self.streams.append(call)
        return call


def fake_services() -> tuple[Services, FakeStub, FakeTranscriber, FakeStub]:
    billing = FakeStub(billing_pb2.DESCRIPTOR.services_by_name["BillingService"])
    transcriber = FakeTranscriber()
    notifier = FakeStub(notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"])
    ids = itertools.count(1000)
    notifier.replies["Send"] = lambda r: notifier_pb2.SendResponse(message_id=next(ids))
    notifier.replies["SendDocument"] = lambda r: notifier_pb2.SendDocumentResponse(
        message_id=next(ids)
    )
    billing.replies["Quote"] = lambda r: billing_pb2.QuoteResponse(
        amount_credits=max(1, -(-r.duration_seconds * 10 // 60))
    )
    billing.replies["Reserve"] = lambda r: billing_pb2.ReserveResponse(
        hold=billing_pb2.Hold(
            hold_id="00000000-0000-0000-0000-000000000001",
            user_id=r.user_id,
            amount_credits=r.amount_credits,
            state=billing_pb2.HOLD_STATE_PENDING,
        )
    )
    billing.replies["ExtendHold"] = lambda r: billing_pb2.ExtendHoldResponse(
        hold=billing_pb2.Hold(
            hold_id=r.hold_id, amount_credits=r.amount_credits, state=billing_pb2.HOLD_STATE_PENDING
        )
    )
    billing.replies["Capture"] = lambda r: billing_pb2.CaptureResponse(
        hold=billing_pb2.Hold(
            hold_id=r.hold_id,
            captured_credits=r.amount_credits,
            state=billing_pb2.HOLD_STATE_CAPTURED,
        )
    )
    billing.replies["AttachJobMessage"] = lambda r: billing_pb2.AttachJobMessageResponse(
        job=billing_pb2.QueuedJob(job_id=r.job_id, status_message_id=r.status_message_id)
    )
    billing.replies["EnsureUser"] = lambda r: billing_pb2.EnsureUserResponse(
        user=billing_pb2.User(user_id=r.user_id, role=billing_pb2.ROLE_USER)
    )
    services = Services(billing=billing, transcriber=transcriber, notifier=notifier)  # type: ignore[arg-type]
    return services, billing, transcriber, notifier


def audio_info(seconds: float, *, final: bool = True) -> transcriber_pb2.TranscribeResponse:
    return transcriber_pb2.TranscribeResponse(
        audio=transcriber_pb2.AudioInfo(duration_seconds=seconds, final=final)
    )


def transcript(*texts: str, formatted: str = "", seconds: float = 11.0) -> list[Any]:
    """The events of a whole transcription: its duration, segments evenly over it, done."""
    step = seconds / max(1, len(texts))
    events: list[Any] = [audio_info(seconds)]
    events += [
        transcriber_pb2.TranscribeResponse(
            segment=transcriber_pb2.Segment(
                segment_id=i,
                text=text,
                final=True,
                start_seconds=i * step,
                end_seconds=(i + 1) * step,
            )
        )
        for i, text in enumerate(texts)
    ]
    events.append(
        transcriber_pb2.TranscribeResponse(
            done=transcriber_pb2.Done(
                audio_duration_seconds=seconds,
                formatted_text=formatted or " ".join(texts),
                segment_count=len(texts),
            )
        )
    )
    return events


class FakeFiles:
    """A FileSource with a few chunks for every file id."""

    def __init__(self, chunks: int = 2) -> None:
        self.chunks = chunks
        self.streamed: list[str] = []
        self.error: BaseException | None = None  # raised instead of the chunks

    async def stream(self, file_id: str) -> AsyncIterator[bytes]:
        self.streamed.append(file_id)
        if self.error is not None:
            raise self.error
        for _ in range(self.chunks):
            yield b"\0" * 16


class RecordingSession(BaseSession):
    """The Bot's transport: records every method; answers from ``results``."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[TelegramMethod[Any]] = []
        self.results: dict[str, Any] = {}

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.requests.append(method)
        result = self.results.get(method.__api_method__)
        if callable(result):
            return result(method)
        return True if result is None else result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncIterator[bytes]:
        yield b""

    async def close(self) -> None:
        return None

    def sent(self, api_method: str) -> list[Any]:
        return [m for m in self.requests if m.__api_method__ == api_method]


class MemoryJobs:
    """Billing's durable job queue, in memory: enough of SubmitJob, ClaimJob,
    RenewJob, FinishJob and CancelJob for handler tests (billing's own tests
    prove the real one on PostgreSQL)."""

    def __init__(self) -> None:
        self.jobs: dict[str, billing_pb2.QueuedJob] = {}
        self._keys: dict[str, str] = {}
        self._ids = itertools.count(1)

    def install(self, billing: FakeStub) -> None:
        billing.replies["SubmitJob"] = self.submit
        billing.replies["ClaimJob"] = self.claim
        billing.replies["RenewJob"] = lambda r: billing_pb2.RenewJobResponse(
            job=self.jobs[r.job_id]
        )
        billing.replies["FinishJob"] = self.finish
        billing.replies["CancelJob"] = self.cancel

    def _of(self, user_id: int, state: int) -> list[billing_pb2.QueuedJob]:
        return [j for j in self.jobs.values() if j.user_id == user_id and j.state == state]

    def submit(self, r: billing_pb2.SubmitJobRequest) -> billing_pb2.SubmitJobResponse:
        if r.idempotency_key in self._keys:
            job = self.jobs[self._keys[r.idempotency_key]]
            return billing_pb2.SubmitJobResponse(job=job, created=False)
        job_id = f"job-{next(self._ids)}"
        ahead = len(self._of(r.user_id, billing_pb2.JOB_STATE_QUEUED)) + len(
            self._of(r.user_id, billing_pb2.JOB_STATE_RUNNING)
        )
        self.jobs[job_id] = billing_pb2.QueuedJob(
            job_id=job_id,
            user_id=r.user_id,
            chat_id=r.chat_id,
            message_id=r.message_id,
            spec=r.spec,
            trace_id=r.trace_id,
            state=billing_pb2.JOB_STATE_QUEUED,
        )
        self._keys[r.idempotency_key] = job_id
        return billing_pb2.SubmitJobResponse(job=self.jobs[job_id], created=True, ahead=ahead)

    def claim(self, r: billing_pb2.ClaimJobRequest) -> billing_pb2.ClaimJobResponse:
        if self._of(r.user_id, billing_pb2.JOB_STATE_RUNNING):
            return billing_pb2.ClaimJobResponse()
        queued = self._of(r.user_id, billing_pb2.JOB_STATE_QUEUED)
        if not queued:
            return billing_pb2.ClaimJobResponse()
        job = queued[0]
        job.state = billing_pb2.JOB_STATE_RUNNING
        job.attempt += 1
        return billing_pb2.ClaimJobResponse(job=job)

    def finish(self, r: billing_pb2.FinishJobRequest) -> billing_pb2.FinishJobResponse:
        job = self.jobs[r.job_id]
        job.state = r.state
        job.outcome = r.outcome
        return billing_pb2.FinishJobResponse(job=job)

    def cancel(self, r: billing_pb2.CancelJobRequest) -> billing_pb2.CancelJobResponse:
        running = self._of(r.user_id, billing_pb2.JOB_STATE_RUNNING)
        if running:
            running[0].cancel_requested = True
            return billing_pb2.CancelJobResponse(job=running[0])
        queued = self._of(r.user_id, billing_pb2.JOB_STATE_QUEUED)
        if not queued:
            raise rpc_error(NotFound("no job", reason="NOT_FOUND"))
        queued[-1].state = billing_pb2.JOB_STATE_CANCELLED
        return billing_pb2.CancelJobResponse(job=queued[-1])
