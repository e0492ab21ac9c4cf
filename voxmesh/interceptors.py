"""The interceptor chains, built in one place.

Server chain, outermost first: tracing (OpenTelemetry, so every later step
runs inside the server span) and then :class:`ServerCallInterceptor`, which
in this order bounds the call by its deadline (or the configured default),
records metrics, logs the outcome at a level picked from the status code, and
maps errors: a :class:`voxmesh.errors.ServiceError` becomes its status with
ErrorInfo; an unexpected exception becomes INTERNAL whose message holds only
the trace id (the traceback goes to the log, never to the caller).

Client chain: tracing, then deadline propagation (what is left of the
deadline of the RPC being served, minus a margin, caps every outgoing call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider

from voxmesh import deadline
from voxmesh.errors import (
    STATUS_DETAILS_KEY,
    DeadlineExceeded,
    Internal,
    ServiceError,
    Unavailable,
)
from voxmesh.metrics import Metrics
from voxmesh.telemetry import current_trace_id, grpc_filter

log = logging.getLogger(__name__)

# Infrastructure services are not wrapped: health probes must answer even
# when a default deadline or an error mapper would get in their way.
_PASSTHROUGH = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_WARN_CODES = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.CANCELLED,
}
_ERROR_CODES = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
# Downstream failures that mean the same thing to our caller; anything else
# from a dependency is our bug and becomes INTERNAL.
_PASS_THROUGH_CODES = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


Wrap = Callable[[Any], Any]


def rewrap(handler: grpc.RpcMethodHandler, *, unary: Wrap, stream: Wrap) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped: ``unary`` for a single
    response (an awaited coroutine), ``stream`` for a streamed one (an async
    generator), whatever the request side is."""
    if handler.response_streaming:
        wrapped = stream(handler.unary_stream or handler.stream_stream)
    else:
        wrapped = unary(handler.unary_unary or handler.stream_unary)
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def level_for(code: grpc.StatusCode) -> int:
    if code in _ERROR_CODES:
        return logging.ERROR
    if code in _WARN_CODES:
        return logging.WARNING
    return logging.INFO


class ServerCallInterceptor(grpc.aio.ServerInterceptor):
    """Deadline, metrics, logging and error mapping for every RPC."""

    def __init__(
        self,
        *,
        domain: str,
        metrics: Metrics,
        default_deadline: float,
        deadline_margin: float = 0.05,
    ) -> None:
        self._domain = domain
        self._metrics = metrics
        self._default_deadline = default_deadline
        self._margin = deadline_margin

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(_PASSTHROUGH):
            return handler
        short = method.rsplit("/", 1)[-1]
        return rewrap(
            handler,
            unary=lambda behavior: self._wrap_unary(behavior, method, short),
            stream=lambda behavior: self._wrap_stream(behavior, method, short),
        )

    def _budget(self, context: grpc.aio.ServicerContext) -> float:
        return deadline.clamp(context.time_remaining(), self._default_deadline)

    def _wrap_unary(self, behavior: Any, method: str, short: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            budget = self._budget(context)
            start = time.monotonic()
            code = grpc.StatusCode.OK
            self._metrics.in_flight.labels(self._metrics.service).inc()
            try:
                with deadline.bound(budget, margin=self._margin):
                    async with asyncio.timeout(budget):
                        return await behavior(request, context)
            except BaseException as exc:
                code, err = self._classify(exc, context, method)
                if err is None:
                    raise
                await self._abort(err, context)
                raise  # abort raised; this keeps type checkers honest
            finally:
                self._done(method, short, code, start)

        return call

    def _wrap_stream(self, behavior: Any, method: str, short: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            budget = self._budget(context)
            start = time.monotonic()
            code = grpc.StatusCode.OK
            self._metrics.in_flight.labels(self._metrics.service).inc()
            try:
                with deadline.bound(budget, margin=self._margin):
                    async with asyncio.timeout(budget):
                        async for item in behavior(request, context):
                            yield item
            except BaseException as exc:
                code, err = self._classify(exc, context, method)
                if err is None:
                    raise
                await self._abort(err, context)
            finally:
                self._done(method, short, code, start)

        return call

    def _done(self, method: str, short: str, code: grpc.StatusCode, start: float) -> None:
        elapsed = time.monotonic() - start
        self._metrics.in_flight.labels(self._metrics.service).dec()
        self._metrics.observe(short, code.name, elapsed)
        log.log(
            level_for(code),
            "rpc %s %s",
            method,
            code.name,
            extra={"grpc_method": method, "grpc_code": code.name, "duration_ms": elapsed * 1e3},
        )

    def _classify(
        self, exc: BaseException, context: grpc.aio.ServicerContext, method: str
    ) -> tuple[grpc.StatusCode, ServiceError | None]:
        """The status a failure ends with, and the error to send (None: re-raise as is)."""
        if isinstance(exc, asyncio.CancelledError):
            left = context.time_remaining()
            expired = left is not None and left <= 0
            return (
                grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            ), None
        if isinstance(exc, grpc.aio.AbortError):
            # The handler aborted on purpose; the code is on the context.
            return _aborted_code(context), None
        if isinstance(exc, TimeoutError):
            err: ServiceError = DeadlineExceeded("deadline exceeded")
        elif isinstance(exc, ServiceError):
            err = exc
        elif isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _PASS_THROUGH_CODES:
            err = _from_downstream(exc)
        elif isinstance(exc, Exception):
            trace_id = current_trace_id()
            log.error("unexpected error in %s (trace %s)", method, trace_id or "-", exc_info=exc)
            err = Internal(f"internal error; reference {trace_id or 'none'}")
        else:
            return grpc.StatusCode.CANCELLED, None
        return err.code, err

    async def _abort(self, err: ServiceError, context: grpc.aio.ServicerContext) -> None:
        status = err.to_status(self._domain, current_trace_id())
        await context.abort(
            err.code,
            status.message,  # capped, like the details
            trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
        )


def _aborted_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - older contexts lack code()
        return grpc.StatusCode.UNKNOWN
    if isinstance(code, grpc.StatusCode):
        return code
    for candidate in grpc.StatusCode:
        if candidate.value[0] == code:
            return candidate
    return grpc.StatusCode.UNKNOWN


def _from_downstream(exc: grpc.aio.AioRpcError) -> ServiceError:
    code = exc.code()
    cls: type[ServiceError] = {
        grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
    }.get(code, Unavailable)
    err = cls(f"dependency failed: {code.name.lower()}")
    err.code = code
    return err


def server_interceptors(
    *,
    domain: str,
    metrics: Metrics,
    default_deadline: float,
    deadline_margin: float = 0.05,
    tracer_provider: TracerProvider | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The server chain, outermost first."""
    return [
        aio_server_interceptor(tracer_provider=tracer_provider, filter_=grpc_filter()),
        ServerCallInterceptor(
            domain=domain,
            metrics=metrics,
            default_deadline=default_deadline,
            deadline_margin=deadline_margin,
        ),
    ]


def _with_deadline(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    timeout = deadline.outgoing_timeout(details.timeout)
    if timeout is None:
        return details
    # Already past the deadline: a tiny timeout makes gRPC fail the call
    # locally with DEADLINE_EXCEEDED instead of sending work nobody awaits.
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=max(timeout, 0.001),
        metadata=details.metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _DeadlineUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_deadline(client_call_details), request)


class _DeadlineUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(_with_deadline(client_call_details), request)


class _DeadlineStreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_deadline(client_call_details), request_iterator)


class _DeadlineStreamStream(grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_deadline(client_call_details), request_iterator)


def client_interceptors(
    *, tracer_provider: TracerProvider | None = None
) -> Sequence[grpc.aio.ClientInterceptor]:
    """The client chain: tracing, then deadline propagation."""
    tracing: list[grpc.aio.ClientInterceptor] = list(
        aio_client_interceptors(tracer_provider=tracer_provider, filter_=grpc_filter())
    )
    return [
        *tracing,
        _DeadlineUnaryUnary(),
        _DeadlineUnaryStream(),
        _DeadlineStreamUnary(),
        _DeadlineStreamStream(),
    ]
