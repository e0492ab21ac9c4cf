"""The call frames of servers and clients, built in one place.

Server: :class:`ServerCalls`, which wraps every method handler once, at
registration, and on each call, in this order, opens the server span (the
caller's context from W3C or B3 metadata, so everything after runs inside
it), bounds the call by its deadline (or the
configured default), records metrics, logs the outcome at a level picked from
the status code, and maps errors: a :class:`voxmesh.errors.ServiceError`
becomes its status with ErrorInfo; an unexpected exception becomes INTERNAL
whose message holds only the trace id (the traceback goes to the log, never
to the caller).

Client: one interceptor per call type that opens the client span, injects its
context into the metadata and caps the call's timeout by what is left of the
deadline of the RPC being served, minus a margin.

Spans follow OpenTelemetry's RPC conventions (``rpc.system``, ``rpc.service``,
``rpc.method``, ``rpc.grpc.status_code``; a server span is an error only for
the codes that mean the server failed) with Zipkin-style lowercase names such
as ``billing.v1.billingservice/reserve``. They are made here rather than by
opentelemetry-instrumentation-grpc because its generic interceptors cost a
traced RPC about twice the span work: an extra interceptor layer on each side,
a proxy around every servicer context, generator-based context managers, and
attributes (user agent, peer name) that say the same for every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.propagators.textmap import Setter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from voxmesh import deadline
from voxmesh.errors import (
    STATUS_DETAILS_KEY,
    DeadlineExceeded,
    Internal,
    ServiceError,
    Unavailable,
)
from voxmesh.metrics import GRPC_TYPES, ClientMetrics, MethodMetrics, Metrics
from voxmesh.telemetry import HEALTH_SERVICE, current_trace_id

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


# A server span is an error only when the server failed; a caller's mistake
# (INVALID_ARGUMENT, NOT_FOUND, ...) is the client span's error.
_SERVER_ERROR_CODES = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
_HEALTH_PREFIX = f"/{HEALTH_SERVICE}/"
_TRACER_NAME = "voxmesh.grpc"

Wrap = Callable[[Any], Any]


@functools.lru_cache(maxsize=1024)
def describe(method: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A full method's span name and the constant attributes of its server and client spans.

    ``/billing.v1.BillingService/Reserve`` is named
    ``billing.v1.billingservice/reserve``: Zipkin indexes names lowercase and
    its UI filters on low-cardinality names. A client span names the service it
    calls (``peer.service``: "billing"), from which Zipkin, over JSON or OTLP,
    draws the remote endpoint its dependency graph is built from.
    """
    service, _, name = method.lstrip("/").partition("/")
    server = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": name,
        # Updated when the call ends with another code.
        "rpc.grpc.status_code": grpc.StatusCode.OK.value[0],
    }
    client = {**server, "peer.service": service.split(".", 1)[0].lower()}
    return method.lstrip("/").lower(), server, client


def _peer_attributes(peer: str) -> Mapping[str, Any]:
    """``ipv4:10.2.1.1:57284`` (or ``ipv6:[::1]:57284``) as the caller's address and port."""
    kind, _, address = peer.partition(":")
    if kind not in {"ipv4", "ipv6"}:
        return {}
    host, _, port = address.split(",", 1)[0].rpartition(":")
    if not port.isdigit():
        return {}
    return {"net.peer.ip": host.strip("[]"), "net.peer.port": int(port)}


def _finish(span: Span, code: grpc.StatusCode, description: str | None, *, server: bool) -> None:
    if code is grpc.StatusCode.OK or not span.is_recording():
        return
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if not server or code in _SERVER_ERROR_CODES:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {description or ''}".rstrip()))


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


class _Call:
    """What a method's calls share: its name, span name and attributes, metric series."""

    __slots__ = ("attributes", "method", "metrics", "name")

    def __init__(self, method: str, metrics: MethodMetrics) -> None:
        self.method = method
        self.name, self.attributes, _ = describe(method)
        self.metrics = metrics


def level_for(code: grpc.StatusCode) -> int:
    if code in _ERROR_CODES:
        return logging.ERROR
    if code in _WARN_CODES:
        return logging.WARNING
    return logging.INFO


class ServerCalls:
    """Server span, deadline, metrics, logging and error mapping for every RPC.

    Not a ``grpc.aio.ServerInterceptor``: those run on every call, each one
    an extra coroutine that rebuilds the handler. :meth:`wrap` wraps each
    method's handler once, when the service is registered
    (:class:`voxmesh.server.GrpcServer` does), and binds the method's span
    name, attributes and metric series there too.
    """

    def __init__(
        self,
        *,
        domain: str,
        metrics: Metrics,
        default_deadline: float,
        deadline_margin: float = 0.05,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._domain = domain
        self._metrics = metrics
        self._default_deadline = default_deadline
        self._margin = deadline_margin
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """``handler`` of the full ``method`` (``/pkg.Service/Name``) inside the call frame."""
        if method.startswith(_PASSTHROUGH):
            return handler
        grpc_type = GRPC_TYPES[(handler.request_streaming, handler.response_streaming)]
        call = _Call(method, self._metrics.for_method(method, grpc_type))
        return rewrap(
            handler,
            unary=lambda behavior: self._wrap_unary(behavior, call),
            stream=lambda behavior: self._wrap_stream(behavior, call),
        )

    def _budget(self, context: grpc.aio.ServicerContext) -> float:
        return deadline.clamp(context.time_remaining(), self._default_deadline)

    def _open_span(
        self, call: _Call, context: grpc.aio.ServicerContext
    ) -> tuple[Span, contextvars.Token[otel_context.Context]]:
        """Start the server span as a child of the caller's context and make it current."""
        metadata = context.invocation_metadata()
        parent = propagate.extract(dict(metadata)) if metadata else None
        span = self._tracer.start_span(
            call.name, context=parent, kind=SpanKind.SERVER, attributes=call.attributes
        )
        if span.is_recording():
            span.set_attributes(_peer_attributes(context.peer()))
        return span, otel_context.attach(trace.set_span_in_context(span, parent))

    def _wrap_unary(self, behavior: Any, call: _Call) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span, token = self._open_span(call, context)
            budget = self._budget(context)
            start = call.metrics.start()
            code = grpc.StatusCode.OK
            failure: str | None = None
            ended = False
            try:
                with deadline.bound(budget, margin=self._margin):
                    async with asyncio.timeout(budget):
                        return await behavior(request, context)
            except BaseException as exc:
                code, err = self._classify(exc, context, call.method)
                if err is None:
                    failure = _aborted_details(context)
                    raise
                # Metrics, log and span first: the caller may act on the status
                # (and read them) before this coroutine resumes after sending it.
                self._end(span, call, code, start, err.message)
                ended = True
                await self._abort(err, context)
                raise  # abort raised; this keeps type checkers honest
            finally:
                if not ended:
                    self._end(span, call, code, start, failure)
                otel_context.detach(token)

        return unary

    def _wrap_stream(self, behavior: Any, call: _Call) -> Any:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            span, token = self._open_span(call, context)
            budget = self._budget(context)
            start = call.metrics.start()
            code = grpc.StatusCode.OK
            failure: str | None = None
            ended = False
            try:
                with deadline.bound(budget, margin=self._margin):
                    async with asyncio.timeout(budget):
                        async for item in behavior(request, context):
                            yield item
            except BaseException as exc:
                code, err = self._classify(exc, context, call.method)
                if err is None:
                    failure = _aborted_details(context)
                    raise
                self._end(span, call, code, start, err.message)
                ended = True
                await self._abort(err, context)
            finally:
                if not ended:
                    self._end(span, call, code, start, failure)
                otel_context.detach(token)

        return stream

    def _end(
        self,
        span: Span,
        call: _Call,
        code: grpc.StatusCode,
        start: float,
        failure: str | None,
    ) -> None:
        """Record the call's outcome: metrics, the log line, the span's status and end."""
        elapsed = time.monotonic() - start
        call.metrics.observe(code.name, start)
        level = level_for(code)
        if log.isEnabledFor(level):
            log.log(
                level,
                "rpc %s %s",
                call.method,
                code.name,
                extra={
                    "grpc_method": call.method,
                    "grpc_code": code.name,
                    "duration_ms": elapsed * 1e3,
                },
            )
        _finish(span, code, failure, server=True)
        span.end()

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
            # The server span (current here) keeps the exception too; expected
            # failures (ServiceError, aborts) carry only their status.
            trace.get_current_span().record_exception(exc)
            err = Internal(f"internal error; reference {trace_id or 'none'}")
        else:
            return grpc.StatusCode.CANCELLED, None
        return err.code, err

    async def _abort(self, err: ServiceError, context: grpc.aio.ServicerContext) -> None:
        status = err.to_status(self._domain, current_trace_id())
        trailers: tuple[tuple[str, str | bytes], ...] = (
            (STATUS_DETAILS_KEY, status.SerializeToString()),
        )
        if not err.retry_within_call:
            # gRFC A6 server pushback: a negative delay means "do not retry".
            trailers += ((RETRY_PUSHBACK_KEY, "-1"),)
        await context.abort(
            err.code,
            status.message,  # capped, like the details
            trailing_metadata=trailers,
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


def _aborted_details(context: grpc.aio.ServicerContext) -> str | None:
    try:
        details = context.details()
    except Exception:  # noqa: BLE001 - older contexts lack details()
        return None
    return details if isinstance(details, str) else None


def _from_downstream(exc: grpc.aio.AioRpcError) -> ServiceError:
    code = exc.code()
    cls: type[ServiceError] = {
        grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
        grpc.StatusCode.UNAVAILABLE: Unavailable,
    }.get(code, Unavailable)
    err = cls(f"dependency failed: {code.name.lower()}")
    err.code = code
    return err


def _with_deadline(
    details: grpc.aio.ClientCallDetails,
    metadata: grpc.aio.Metadata | None,
    default: float | None,
) -> grpc.aio.ClientCallDetails:
    timeout = deadline.outgoing_timeout(details.timeout)
    if timeout is None:
        timeout = default
    if timeout is None and metadata is None:
        return details
    if timeout is not None:
        # Already past the deadline: a tiny timeout makes gRPC fail the call
        # locally with DEADLINE_EXCEEDED instead of sending work nobody awaits.
        timeout = max(timeout, 0.001)
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=details.metadata if metadata is None else metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _MetadataSetter(Setter[grpc.aio.Metadata]):
    def set(self, carrier: grpc.aio.Metadata, key: str, value: str) -> None:
        carrier[key.lower()] = value  # gRPC refuses uppercase metadata keys


_metadata_setter = _MetadataSetter()


def _outcome(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status a client call that raised ``exc`` ended with."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code(), exc.details() or ""
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED, "cancelled by the caller"
    return grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}"


class _Attempt:
    """One client call's span (when traced) and metric series, ended once."""

    __slots__ = ("metrics", "span", "start")

    def __init__(self, span: Span | None, metrics: MethodMetrics | None) -> None:
        self.span = span
        self.metrics = metrics
        self.start = metrics.start() if metrics is not None else 0.0

    def end(self, code: grpc.StatusCode, description: str | None = None) -> None:
        if self.metrics is not None:
            self.metrics.observe(code.name, self.start)
            self.metrics = None
        if self.span is not None:
            _finish(self.span, code, description, server=False)
            self.span.end()
            self.span = None

    def fail(self, exc: BaseException) -> None:
        self.end(*_outcome(exc))


class _ClientCalls:
    """What every client call goes through: its span, trace headers, deadline and metrics."""

    grpc_type = "unary"

    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        default_timeout: float | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)
        self._default_timeout = default_timeout
        self._metrics = metrics

    def _prepare(
        self, details: grpc.aio.ClientCallDetails, default: float | None = None
    ) -> tuple[_Attempt | None, grpc.aio.ClientCallDetails]:
        method = details.method
        # grpc passes the method as bytes (grpc/grpc#31092).
        if isinstance(method, bytes):
            method = method.decode()
        metrics = (
            self._metrics.for_method(method, self.grpc_type) if self._metrics is not None else None
        )
        if method.startswith(_HEALTH_PREFIX) or not is_instrumentation_enabled():
            attempt = _Attempt(None, metrics) if metrics is not None else None
            return attempt, _with_deadline(details, None, default)
        name, _, attributes = describe(method)
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        metadata = grpc.aio.Metadata(*details.metadata) if details.metadata else grpc.aio.Metadata()
        propagate.inject(metadata, trace.set_span_in_context(span), setter=_metadata_setter)
        return _Attempt(span, metrics), _with_deadline(details, metadata, default)

    @staticmethod
    async def _unary(attempt: _Attempt | None, call: Awaitable[Any]) -> Any:
        """The call, once it has ended (its span with it); its error reaches the caller."""
        if attempt is None:
            return await call
        try:
            done = await call
            code = await done.code()
            attempt.end(code, await done.details() if code is not grpc.StatusCode.OK else None)
            return done
        except BaseException as exc:
            attempt.fail(exc)
            raise

    @staticmethod
    async def _streamed(attempt: _Attempt | None, call: Awaitable[Any]) -> Any:
        """The call once started; with an attempt, its responses, which end it with them."""
        if attempt is None:
            return await call
        try:
            started = await call
        except BaseException as exc:
            attempt.fail(exc)
            raise
        return _ClientCalls._stream(attempt, started)

    @staticmethod
    async def _stream(attempt: _Attempt, call: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for response in call:
                yield response
        except BaseException as exc:
            attempt.fail(exc)
            raise
        finally:
            attempt.end(grpc.StatusCode.OK)  # a no-op when it failed above


class _UnaryUnary(_ClientCalls, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        # Only a unary call gets the default: a stream's length is its caller's to bound.
        attempt, details = self._prepare(client_call_details, self._default_timeout)
        return await self._unary(attempt, continuation(details, request))


class _StreamUnary(_ClientCalls, grpc.aio.StreamUnaryClientInterceptor):
    grpc_type = "client_stream"

    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        attempt, details = self._prepare(client_call_details)
        return await self._unary(attempt, continuation(details, request_iterator))


class _UnaryStream(_ClientCalls, grpc.aio.UnaryStreamClientInterceptor):
    grpc_type = "server_stream"

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        attempt, details = self._prepare(client_call_details)
        return await self._streamed(attempt, continuation(details, request))


class _StreamStream(_ClientCalls, grpc.aio.StreamStreamClientInterceptor):
    grpc_type = "bidi_stream"

    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        attempt, details = self._prepare(client_call_details)
        return await self._streamed(attempt, continuation(details, request_iterator))


def client_interceptors(
    *,
    tracer_provider: TracerProvider | None = None,
    default_timeout: float | None = None,
    metrics: ClientMetrics | None = None,
) -> Sequence[grpc.aio.ClientInterceptor]:
    """One interceptor per call type: span, trace headers, deadline, ``grpc_client_*`` metrics.

    A unary call made with no timeout of its own and outside any served
    call's deadline gets ``default_timeout``: no call waits forever on a
    peer that never answers.
    """
    return [
        _UnaryUnary(tracer_provider, default_timeout, metrics),
        _UnaryStream(tracer_provider, metrics=metrics),
        _StreamUnary(tracer_provider, metrics=metrics),
        _StreamStream(tracer_provider, metrics=metrics),
    ]
