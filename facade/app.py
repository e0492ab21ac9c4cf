"""Facade wiring: OpenAI's audio API over HTTP, answered by the transcriber over gRPC.

Routes: ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``
(multipart, as OpenAI's), ``GET /v1/models``, ``/healthz``, ``/readyz`` (the
transcriber's gRPC health) and ``/metrics``. The facade is a thin process:
deadlines, admission and the work stay in the transcriber, and its calls go
through the mesh's channel (retries on UNAVAILABLE, trace propagation), so
the HTTP request's server span is the parent of the transcriber's spans.
Callers are identified by API key (``Authorization: Bearer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Literal, TypeVar

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import generate_latest

from facade import formats
from facade.config import ANONYMOUS, FacadeSettings
from facade.errors import ApiError, bad_request
from facade.metrics import FacadeMetrics
from facade.upload import AudioRequest, parse, read_form
from transcriber.v1 import transcriber_pb2 as pb
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh import telemetry
from voxmesh.channels import dial
from voxmesh.config import parse_addr
from voxmesh.http import serve_http
from voxmesh.server import run_main

log = logging.getLogger(__name__)

# OpenAI's model name, which SDKs and tools send by default: the transcriber's default model.
OPENAI_DEFAULT_MODEL = "whisper-1"
_CHUNK = 256 * 1024
_MODELS_TTL_SECONDS = 30.0
_UNTRACED = ("/healthz", "/readyz", "/metrics")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")
# The caller's identity (from its API key), for metrics, logs and spans.
CALLER = web.RequestKey("caller", str)


class Models:
    """The transcriber's models (ListModels), cached for a few seconds."""

    def __init__(self, stub: pb_grpc.TranscriberServiceAsyncStub) -> None:
        self._stub = stub
        self._models: list[pb.ModelInfo] = []
        self._at = -_MODELS_TTL_SECONDS

    async def list(self) -> list[pb.ModelInfo]:
        if time.monotonic() - self._at > _MODELS_TTL_SECONDS:
            reply = await self._stub.ListModels(pb.ListModelsRequest(), timeout=10)
            self._models, self._at = list(reply.models), time.monotonic()
        return self._models

    async def resolve(self, name: str) -> pb.ModelInfo:
        models = await self.list()
        for model in models:
            if model.name == name or (name == OPENAI_DEFAULT_MODEL and model.is_default):
                return model
        known = ", ".join([OPENAI_DEFAULT_MODEL, *(m.name for m in models)])
        raise ApiError(
            404,
            f"The model '{name}' does not exist; available: {known}.",
            param="model",
            code="model_not_found",
        )


class Facade:
    def __init__(
        self,
        settings: FacadeSettings,
        *,
        tracer_provider: TracerProvider | None = None,
        metrics: FacadeMetrics | None = None,
    ) -> None:
        self.settings = settings
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("facade")
        # W3C and B3 both, whatever the process-wide propagator is (tests set none).
        self.propagator = telemetry.propagator()
        self.channel = dial(
            settings.transcriber_target,
            tls=settings.tls,
            tracer_provider=tracer_provider,
            default_timeout=10.0,
        )
        # The *AsyncStub type exists only for type checkers (mypy-protobuf).
        self.stub: pb_grpc.TranscriberServiceAsyncStub = pb_grpc.TranscriberServiceStub(
            self.channel
        )
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.models = Models(self.stub)
        self.metrics = metrics or FacadeMetrics()
        self.draining = False

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._frame, self._auth])
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_post("/v1/audio/translations", self.translations)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.prometheus)
        return app

    async def close(self) -> None:
        await self.channel.close()

    # --- the call frame: span, error shape, metrics; then the caller's identity ---

    @web.middleware
    async def _frame(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        if request.path in _UNTRACED:
            return await handler(request)
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        parent = self.propagator.extract(request.headers, context=Context())
        with self.tracer.start_as_current_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": route,
                "url.path": request.path,
            },
        ) as span:
            trace_id = telemetry.current_trace_id()
            try:
                response = await handler(request)
            except ApiError as err:
                response = err.response(trace_id)
            except web.HTTPException as exc:
                response = ApiError(
                    exc.status, exc.reason, code=exc.reason.lower().replace(" ", "_")
                ).response(trace_id)
            except Exception:
                log.exception("facade: unexpected error on %s", route)
                response = ApiError(
                    500,
                    f"The server failed; quote the reference {trace_id}.",
                    code="internal",
                ).response(trace_id)
            finally:
                self.metrics.in_flight.dec()
            span.set_attribute("http.response.status_code", response.status)
            caller = request.get(CALLER, "")
            if caller:
                span.set_attribute("voxmesh.caller", caller)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, str(response.status)))
            self.metrics.requests.labels(route, str(response.status), caller or "-").inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            log.info(
                "%s %s %d",
                request.method,
                route,
                response.status,
                extra={
                    "caller": caller,
                    "latency_ms": round((time.perf_counter() - started) * 1e3),
                },
            )
            return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        keys = self.settings.api_keys
        if not keys:
            request[CALLER] = ANONYMOUS
            return await handler(request)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        identity = _identity(keys, key.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            raise ApiError(
                401,
                "Incorrect or missing API key; send Authorization: Bearer <key>.",
                code="invalid_api_key",
            )
        request[CALLER] = identity
        return await handler(request)

    # --- the API ---

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        return await self._audio(request, "transcribe")

    async def translations(self, request: web.Request) -> web.StreamResponse:
        return await self._audio(request, "translate")

    async def _audio(
        self, request: web.Request, task: Literal["transcribe", "translate"]
    ) -> web.StreamResponse:
        fields, audio, filename = await read_form(request, self.settings.max_upload_bytes)
        req = parse(task, fields, audio, filename)
        model = await self._call(self.models.resolve(req.model))
        if task == "translate" and not model.multilingual:
            raise bad_request(
                f"The model '{model.name}' is English-only; translation needs a multilingual "
                "model (see GET /v1/models).",
                "model",
                "model_not_multilingual",
            )
        events = self._transcribe(req, model.name)
        trace_id = telemetry.current_trace_id()
        caller = request.get(CALLER, ANONYMOUS)
        if req.stream:
            return await self._stream(request, events, trace_id, caller)
        result = formats.Result()
        try:
            async for event in events:
                result.add(event)
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc(exc) from None
        self.metrics.audio_seconds.labels(caller).inc(result.done.audio_duration_seconds)
        return formats.render(req, result, trace_id)

    async def _transcribe(
        self, req: AudioRequest, model: str
    ) -> AsyncGenerator[pb.TranscribeResponse, None]:
        config = pb.TranscriptionConfig(
            language=req.language,
            task=pb.TASK_TRANSLATE if req.task == "translate" else pb.TASK_TRANSCRIBE,
            word_timestamps="word" in req.granularities,
            output_format=formats.output_format(req),
            initial_prompt=req.prompt,
            model=model,
        )

        async def requests() -> AsyncIterator[pb.TranscribeRequest]:
            yield pb.TranscribeRequest(config=config)
            for i in range(0, len(req.audio), _CHUNK):
                yield pb.TranscribeRequest(audio=req.audio[i : i + _CHUNK])

        call = self.stub.Transcribe(requests(), timeout=self.settings.request_timeout_seconds)
        try:
            async for event in call:
                # A place in the transcriber's queue is no OpenAI event, and an error
                # after it must still be an ordinary error response (see _stream).
                if event.WhichOneof("event") != "queued":
                    yield event
        finally:
            # A client that went away (or an error response) stops the transcriber's work.
            call.cancel()

    async def _stream(
        self,
        request: web.Request,
        events: AsyncGenerator[pb.TranscribeResponse, None],
        trace_id: str,
        caller: str,
    ) -> web.StreamResponse:
        """Server-sent events, one per final segment; an error before the first event
        is an ordinary error response, one after it an ``error`` event."""
        result = formats.Result()
        try:
            first = await anext(events)
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc(exc) from None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-request-id": trace_id,
            }
        )
        await response.prepare(request)
        try:
            event: pb.TranscribeResponse | None = first
            while event is not None:
                result.add(event)
                if event.WhichOneof("event") == "segment" and event.segment.final:
                    await response.write(formats.segment_events(event.segment))
                event = await anext(events, None)
        except grpc.aio.AioRpcError as exc:
            err = ApiError.from_rpc(exc)
            await response.write(b"event: error\n" + formats.sse(err.body(trace_id)))
            return response
        except ConnectionResetError:
            # The caller went away; closing `events` cancels the transcription.
            await events.aclose()
            return response
        self.metrics.audio_seconds.labels(caller).inc(result.done.audio_duration_seconds)
        await response.write(formats.done_event(result))
        await response.write_eof()
        return response

    async def list_models(self, _: web.Request) -> web.Response:
        models = await self._call(self.models.list())
        default = next((m for m in models if m.is_default), None)
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "voxmesh"} for m in models
        ]
        if default is not None:
            data.insert(
                0,
                {
                    "id": OPENAI_DEFAULT_MODEL,
                    "object": "model",
                    "created": 0,
                    "owned_by": "voxmesh",
                    "root": default.name,
                },
            )
        return web.json_response({"object": "list", "data": data})

    @staticmethod
    async def _call(call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc(exc) from None

    # --- operations ---

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _: web.Request) -> web.Response:
        if self.draining:
            return web.Response(text="draining", status=503)
        try:
            with telemetry.untraced():
                reply = await self.health.Check(
                    health_pb2.HealthCheckRequest(service="transcriber.v1.TranscriberService"),
                    timeout=2,
                )
        except grpc.aio.AioRpcError as exc:
            return web.Response(text=f"transcriber {exc.code().name.lower()}", status=503)
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        return web.Response(
            text="ok" if serving else "transcriber not serving", status=200 if serving else 503
        )

    async def prometheus(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), content_type="text/plain")


def _identity(keys: Mapping[str, str], presented: str) -> str | None:
    """The caller whose key this is; every key compared in constant time."""
    found = None
    for key, identity in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = identity
    return found


async def start(facade: Facade, addr: str) -> tuple[web.AppRunner, int]:
    """Serve ``facade`` on ``addr`` (port 0 picks one); return the runner and the port."""
    runner = web.AppRunner(
        facade.app(),
        access_log=None,
        shutdown_timeout=facade.settings.grace_seconds,
        # A caller that hangs up cancels its handler, and so its gRPC call: the
        # transcriber stops working for nobody.
        handler_cancellation=True,
    )
    host, port = parse_addr("FACADE_HTTP_ADDR", addr)
    return runner, await serve_http(runner, host, port)


async def run(settings: FacadeSettings, provider: TracerProvider) -> None:
    facade = Facade(settings, tracer_provider=provider)
    runner, _ = await start(facade, settings.http_addr)
    log.info("facade on %s -> transcriber %s", settings.http_addr, settings.transcriber_target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    facade.draining = True
    log.info("facade draining (grace %.0fs)", settings.grace_seconds)
    with contextlib.suppress(Exception):
        await runner.cleanup()
    await facade.close()


def main(env: Mapping[str, str] | None = None) -> None:
    run_main("facade", FacadeSettings.from_env, run, env=env)
