"""TranscriberService: proto in, domain call on a worker thread, proto out."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import grpc

from transcriber import errors as domain
from transcriber.admission import Admission, Place, Ticket
from transcriber.asr import Segment
from transcriber.audio import ByteFeed
from transcriber.config import TranscriberConfig
from transcriber.formatting import OutputFormat
from transcriber.jobs import JobOutcome, JobRequest, JobSpec, run_job, validate
from transcriber.metrics import TranscriberMetrics
from transcriber.models import ModelRegistry
from transcriber.paid import AudioEvent, PaidBudget
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from transcriber.windowing import Event, LagEvent, LanguageEvent, SegmentEvent, WorkCounters
from voxmesh import deadline, errors
from voxmesh.tls import caller_identity

log = logging.getLogger(__name__)

#: Largest audio chunk of one TranscribeRequest (the contract's limit).
MAX_CHUNK_BYTES = 1024 * 1024
#: Longest wait for the rest of an upload before sending an error status.
DRAIN_SECONDS = 5.0
#: Largest file of one TranscribeFileRequest.
MAX_FILE_BYTES = 16 * 1024 * 1024

_FORMATS = {
    pb.OUTPUT_FORMAT_UNSPECIFIED: OutputFormat.TEXT,
    pb.OUTPUT_FORMAT_TEXT: OutputFormat.TEXT,
    pb.OUTPUT_FORMAT_TIMESTAMPED_TEXT: OutputFormat.TIMESTAMPED_TEXT,
    pb.OUTPUT_FORMAT_SRT: OutputFormat.SRT,
    pb.OUTPUT_FORMAT_VTT: OutputFormat.VTT,
}

T = TypeVar("T")


def to_service_error(exc: domain.TranscriberError) -> errors.ServiceError:
    """The one place domain failures become gRPC statuses."""
    if isinstance(exc, domain.BadRequest | domain.BadAudio):
        return errors.InvalidArgument(exc.message, reason=exc.reason, metadata=exc.metadata)
    if isinstance(exc, domain.Overloaded):
        return errors.ResourceExhausted(
            exc.message, reason=exc.reason, metadata=exc.metadata, retry_after=exc.retry_after
        )
    if isinstance(exc, domain.DeadlineTooShort):
        return errors.DeadlineExceeded(exc.message, reason=exc.reason, metadata=exc.metadata)
    if isinstance(exc, domain.PaidSecondsExceeded):
        return errors.FailedPrecondition(exc.message, reason=exc.reason, metadata=exc.metadata)
    if isinstance(exc, domain.ModelUnavailable):
        return errors.Unavailable(exc.message, reason=exc.reason, metadata=exc.metadata)
    return errors.Internal(exc.message, reason="INTERNAL")


def job_request(config: pb.TranscriptionConfig) -> JobRequest:
    if config.task not in (pb.TASK_UNSPECIFIED, pb.TASK_TRANSCRIBE, pb.TASK_TRANSLATE):
        raise domain.BadRequest("task", f"unknown task {config.task}")
    if config.output_format not in _FORMATS:
        raise domain.BadRequest("output_format", f"unknown output format {config.output_format}")
    if config.input_mode not in (
        pb.INPUT_MODE_UNSPECIFIED,
        pb.INPUT_MODE_FILE,
        pb.INPUT_MODE_LIVE_PCM,
    ):
        raise domain.BadRequest("input_mode", f"unknown input mode {config.input_mode}")
    return JobRequest(
        language=config.language,
        translate=config.task == pb.TASK_TRANSLATE,
        word_timestamps=config.word_timestamps,
        output_format=_FORMATS[config.output_format],
        live=config.input_mode == pb.INPUT_MODE_LIVE_PCM,
        sample_rate_hz=config.sample_rate_hz,
        initial_prompt=config.initial_prompt,
        hotwords=config.hotwords,
        beam_size=config.beam_size,
        model=config.model,
        paid_seconds=config.paid_seconds,
    )


def segment_pb(segment_id: int, s: Segment) -> pb.Segment:
    return pb.Segment(
        segment_id=segment_id,
        start_seconds=s.start,
        end_seconds=s.end,
        text=s.text,
        words=[
            pb.Word(
                start_seconds=w.start, end_seconds=w.end, word=w.word, probability=w.probability
            )
            for w in s.words
        ],
        final=s.final,
    )


def done_pb(outcome: JobOutcome) -> pb.Done:
    return pb.Done(
        audio_duration_seconds=outcome.transcript.audio_seconds,
        processing_seconds=outcome.processing_seconds,
        model=outcome.model,
        device=outcome.device,
        formatted_text=outcome.formatted_text,
        segment_count=sum(1 for s in outcome.transcript.segments if s.final),
        transcribed_seconds=outcome.transcribed_seconds,
    )


def _deadline_at(context: grpc.aio.ServicerContext) -> float | None:
    """Monotonic time the call must end by: the runtime's budget, else the caller's."""
    remaining = deadline.remaining()
    if remaining is None:
        remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class _Upload:
    """The request stream of one Transcribe call, and the task copying it into a feed."""

    def __init__(self, requests: AsyncIterator[pb.TranscribeRequest]) -> None:
        self.requests = requests
        #: The client half-closed.
        self.ended = False
        #: The audio is complete: half-closed, or end_of_audio sent.
        self.audio_ended = False
        self._pump: asyncio.Task[None] | None = None

    def start_pump(
        self,
        feed: ByteFeed,
        budget: PaidBudget,
        on_error: Callable[[domain.TranscriberError], None],
    ) -> None:
        self._pump = asyncio.create_task(self._copy(feed, budget, on_error))

    async def _copy(
        self,
        feed: ByteFeed,
        budget: PaidBudget,
        on_error: Callable[[domain.TranscriberError], None],
    ) -> None:
        failed = False
        async for request in self.requests:
            if failed:
                continue  # drain, so the client sees our status (see Transcribe)
            try:
                kind = request.WhichOneof("payload")
                if kind == "paid":
                    seconds = request.paid.paid_seconds
                    if not math.isfinite(seconds) or seconds < 0:
                        raise domain.BadRequest("paid.paid_seconds", "paid_seconds must be >= 0")
                    budget.raise_to(seconds)
                    continue
                if kind == "end_of_audio":
                    if request.end_of_audio and not self.audio_ended:
                        self.audio_ended = True
                        feed.finish()
                    continue
                if kind != "audio":
                    raise domain.BadRequest("config", "only the first message may carry a config")
                if self.audio_ended:
                    raise domain.BadRequest("audio", "audio after end_of_audio")
                if len(request.audio) > MAX_CHUNK_BYTES:
                    raise domain.BadRequest(
                        "audio", f"an audio chunk is over {MAX_CHUNK_BYTES} bytes"
                    )
                if request.audio:
                    feed.write(request.audio)
            except domain.TranscriberError as exc:
                failed = True
                feed.abort()
                on_error(exc)
        self.ended = True
        # A stream waiting at its paid limit stops at once: no raise can come.
        budget.close()
        if not failed and not self.audio_ended:
            self.audio_ended = True
            feed.finish()

    async def drain(self, timeout: float) -> None:
        # A client that said end_of_audio writes no more audio; it may keep
        # its side open, so there is nothing to wait for.
        if self.ended or self.audio_ended or timeout <= 0:
            return
        with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError, asyncio.CancelledError):
            async with asyncio.timeout(timeout):
                if self._pump is not None:
                    await asyncio.shield(self._pump)
                else:
                    async for _ in self.requests:
                        pass

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()


class _Finished:
    """Queue sentinel: the worker returned or raised."""


class _PumpFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class TranscriberService(pb_grpc.TranscriberServiceServicer):
    """Admits a stream, runs its job on a worker thread and relays the events."""

    def __init__(self, config: TranscriberConfig, registry: ModelRegistry) -> None:
        self._config = config
        self._registry = registry
        self.registry = registry
        self.admission = Admission(config.max_active_streams, config.max_queued_streams)
        self.live_admission = Admission(config.max_live_streams, 0)
        # Admission bounds the jobs in flight, so the pool never queues.
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_active_streams + config.max_live_streams,
            thread_name_prefix="transcribe",
        )
        self.counters = WorkCounters()
        self.metrics: TranscriberMetrics | None = None
        self._per_caller: dict[str, int] = {}
        # Each running live stream's last reported lag, by stream.
        self._live_lags: dict[object, float] = {}

    def _job_failed(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.job_failed(outcome)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _spec(self, config: pb.TranscriptionConfig) -> JobSpec:
        return validate(job_request(config), self._registry, self._config)

    def _admission(self, spec: JobSpec) -> Admission:
        return self.live_admission if spec.live else self.admission

    def live_lag_seconds(self) -> float:
        """How far the live stream furthest behind is from its caller's audio."""
        return max(self._live_lags.values(), default=0.0)

    def _refuse_live_when_behind(self) -> None:
        # The count limit cannot know the model or the cores: two cores keep
        # up with two base streams or six tiny.en ones. A stream that falls
        # behind says the machine is full, whatever the count; one more would
        # put every live stream further behind, so it is refused instead.
        limit = self._config.live_max_lag_seconds
        lag = self.live_lag_seconds()
        if limit and lag > limit:
            raise domain.Overloaded(
                f"live streams are {lag:.1f} s behind their audio",
                retry_after=self.live_admission.retry_after(),
            )

    def _start(
        self,
        spec: JobSpec,
        feed: ByteFeed,
        ticket: Ticket,
        cancel: threading.Event,
        emit: Callable[[Event], None],
        deadline_at: float | None,
        on_finish: Callable[[], None],
        budget: PaidBudget | None = None,
    ) -> Future[JobOutcome]:
        loop = asyncio.get_running_loop()

        def release(_: Future[JobOutcome]) -> None:
            # The slot is freed when the thread has really stopped, not when the
            # RPC ends, so a cancelled stream never overlaps its successor.
            try:
                loop.call_soon_threadsafe(self._admission(spec).release, ticket)
                loop.call_soon_threadsafe(on_finish)
            except RuntimeError:
                pass  # the loop is gone: the server is shutting down

        try:
            # The worker thread continues the RPC's trace (contextvars do not
            # cross into executor threads by themselves).
            future = self._executor.submit(
                contextvars.copy_context().run,
                run_job,
                spec,
                feed,
                registry=self._registry,
                config=self._config,
                cancel=cancel,
                emit=emit,
                deadline_at=deadline_at,
                counters=self.counters,
                budget=budget,
            )
        except RuntimeError:
            self._admission(spec).release(ticket)
            raise domain.ModelUnavailable("the transcriber is shutting down") from None
        future.add_done_callback(release)
        return future

    async def Transcribe(
        self,
        request_iterator: AsyncIterable[pb.TranscribeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        upload = _Upload(aiter(request_iterator))
        try:
            async for response in self._transcribe(upload, context):
                yield response
        except domain.TranscriberError as exc:
            # grpc aio clients may report INTERNAL instead of this status when
            # the call ends while they are still writing (grpc/grpc#36066), so
            # read the rest of the upload first, for a bounded time.
            left = deadline.remaining()
            await upload.drain(DRAIN_SECONDS if left is None else min(DRAIN_SECONDS, left - 0.2))
            raise to_service_error(exc) from exc
        finally:
            upload.close()

    async def _transcribe(
        self,
        upload: _Upload,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        first = await anext(upload.requests, None)
        if first is None:
            upload.ended = True
        if first is None or first.WhichOneof("payload") != "config":
            raise domain.BadRequest("config", "the first message must carry the config")
        spec = self._spec(first.config)
        deadline_at = _deadline_at(context)
        with self._caller_slot(context):
            async for response in self._admitted(spec, deadline_at, upload):
                yield response

    @contextlib.contextmanager
    def _caller_slot(self, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """One caller may not take every slot: a per-caller cap beside the global one."""
        limit = self._config.max_streams_per_caller
        caller = caller_identity(context) or context.peer().rsplit(":", 1)[0]
        if limit and self._per_caller.get(caller, 0) >= limit:
            raise domain.Overloaded(
                f"{caller} already has {limit} streams open",
                retry_after=self.admission.retry_after(),
            )
        self._per_caller[caller] = self._per_caller.get(caller, 0) + 1
        try:
            yield
        finally:
            self._per_caller[caller] -= 1
            if not self._per_caller[caller]:
                del self._per_caller[caller]

    async def _admitted(
        self, spec: JobSpec, deadline_at: float | None, upload: _Upload
    ) -> AsyncIterator[pb.TranscribeResponse]:
        admission = self._admission(spec)
        if spec.live:
            self._refuse_live_when_behind()
        entry = admission.join()
        if isinstance(entry, Place):
            # Full: tell the caller its place in the line, and each move up.
            # Cancelled or past its deadline here, it leaves the line.
            try:
                got: Ticket | int = entry.position
                while not isinstance(got, Ticket):
                    yield pb.TranscribeResponse(
                        queued=pb.Queued(position=got, active=admission.active)
                    )
                    got = await entry.next()
            finally:
                entry.leave()  # a no-op once admitted
            entry = got
        ticket = entry
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | _Finished | _PumpFailed] = asyncio.Queue()
        feed = ByteFeed(self._config.max_upload_bytes)
        cancel = threading.Event()
        budget = PaidBudget(spec.paid_seconds)

        def emit(event: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        future = self._start(
            spec,
            feed,
            ticket,
            cancel,
            emit,
            deadline_at,
            lambda: queue.put_nowait(_Finished()),
            budget,
        )
        upload.start_pump(feed, budget, lambda exc: queue.put_nowait(_PumpFailed(exc)))
        stream = object()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _PumpFailed):
                    raise item.error
                if isinstance(item, _Finished):
                    break
                if isinstance(item, LagEvent):
                    self._live_lags[stream] = item.seconds
                    continue
                yield self._event_pb(item)
            yield self._done(future)
        finally:
            self._live_lags.pop(stream, None)
            cancel.set()
            feed.abort()
            budget.close()

    def _done(self, future: Future[JobOutcome]) -> pb.TranscribeResponse:
        """A finished job's Done message, or its error; counted either way."""
        try:
            outcome = future.result()
        except domain.Cancelled:
            self._job_failed("cancelled")
            raise domain.TranscriberError("the job stopped") from None
        except domain.TranscriberError as exc:
            self._job_failed(type(exc).__name__)
            raise
        if self.metrics is not None:
            self.metrics.job_done(outcome.transcript.audio_seconds, outcome.processing_seconds)
        return pb.TranscribeResponse(done=done_pb(outcome))

    @staticmethod
    def _event_pb(event: Event) -> pb.TranscribeResponse:
        if isinstance(event, AudioEvent):
            return pb.TranscribeResponse(
                audio=pb.AudioInfo(duration_seconds=event.seconds, final=event.final)
            )
        if isinstance(event, LanguageEvent):
            return pb.TranscribeResponse(
                language=pb.LanguageDetected(
                    language=event.language.code, probability=event.language.probability
                )
            )
        assert isinstance(event, SegmentEvent)
        return pb.TranscribeResponse(segment=segment_pb(event.segment_id, event.segment))

    async def TranscribeFile(
        self,
        request: pb.TranscribeFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.TranscribeFileResponse:
        try:
            return await self._transcribe_file(request, context)
        except domain.TranscriberError as exc:
            raise to_service_error(exc) from exc

    async def _transcribe_file(
        self,
        request: pb.TranscribeFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.TranscribeFileResponse:
        if request.config.input_mode == pb.INPUT_MODE_LIVE_PCM:
            raise domain.BadRequest("config.input_mode", "TranscribeFile takes files only")
        spec = self._spec(request.config)
        if len(request.audio) > min(MAX_FILE_BYTES, self._config.max_upload_bytes):
            limit = min(MAX_FILE_BYTES, self._config.max_upload_bytes)
            raise domain.BadAudio(
                f"the file is over {limit} bytes",
                reason="AUDIO_TOO_LARGE",
                metadata={"max_bytes": limit},
            )
        deadline_at = _deadline_at(context)
        ticket = await self.admission.acquire()
        feed = ByteFeed(self._config.max_upload_bytes)
        if request.audio:
            feed.write(request.audio)
        feed.finish()
        cancel = threading.Event()
        finished = asyncio.Event()
        language = pb.LanguageDetected()

        def emit(event: Event) -> None:
            if isinstance(event, LanguageEvent):
                language.language = event.language.code
                language.probability = event.language.probability

        future = self._start(spec, feed, ticket, cancel, emit, deadline_at, finished.set)
        try:
            outcome = await asyncio.wrap_future(future)
        finally:
            cancel.set()
            feed.abort()
        segments = [segment_pb(i, s) for i, s in enumerate(outcome.transcript.segments)]
        if not language.language:
            language.language = outcome.transcript.language.code
            language.probability = outcome.transcript.language.probability
        return pb.TranscribeFileResponse(
            language=language, segments=segments, done=done_pb(outcome)
        )

    async def ListModels(
        self,
        request: pb.ListModelsRequest,
        context: grpc.aio.ServicerContext,
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(
                    name=m.name,
                    path=str(m.path),
                    device=m.device,
                    compute_type=m.compute_type,
                    multilingual=m.multilingual,
                    is_default=m.is_default,
                )
                for m in self._registry.infos()
            ]
        )
