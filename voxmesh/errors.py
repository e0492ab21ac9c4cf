"""The mesh's one error vocabulary: gRPC status codes with google.rpc details.

Domain code raises a :class:`ServiceError` subclass; the server call frame
(:mod:`voxmesh.interceptors`) turns it into a status whose details hold a
``google.rpc.ErrorInfo`` (reason from ``voxmesh.common.v1.ErrorReason``, the
service's domain, metadata including the trace id) and, for retryable
failures, a ``google.rpc.RetryInfo``. Clients read them back with
:func:`error_info` and :func:`retry_delay`, never by parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from voxmesh.common.v1 import common_pb2
from voxmesh.redaction import redact

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def reason_name(reason: int | str) -> str:
    """Return the ErrorInfo.reason spelling of an ErrorReason (no prefix)."""
    if isinstance(reason, int):
        reason = common_pb2.ErrorReason.Name(reason)  # type: ignore[arg-type, unused-ignore]
    name = reason.removeprefix("ERROR_REASON_")
    # Fail loudly at the raise site on a typo rather than emit an unknown reason.
    common_pb2.ErrorReason.Value("ERROR_REASON_" + name)
    return name


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ServiceError(Exception):
    """A failure a caller should see as a specific gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: int | str | None = None,
        metadata: Mapping[str, str | int | float] | None = None,
        retry_after: float | None = None,
        retry_within_call: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason_name(reason if reason is not None else self.default_reason)
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self.retry_after = retry_after
        # False: the channel's own retry (UNAVAILABLE) cannot help before the
        # call's deadline; the server's pushback tells it not to try, so the
        # caller gets this status instead of DEADLINE_EXCEEDED.
        self.retry_within_call = retry_within_call

    def to_status(self, domain: str, trace_id: str | None = None) -> status_pb2.Status:
        """Build the google.rpc.Status sent in the trailing metadata.

        Message and metadata are capped: gRPC refuses trailers over 16 KiB and
        the caller would get neither the code nor the ErrorInfo.
        """
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=domain)
        # A message built from a library's exception can hold a URL with the bot
        # token or a DSN password: neither may reach the caller.
        info.metadata.update(
            {k[:64]: _cap(redact(v), 256) for k, v in list(self.metadata.items())[:16]}
        )
        if trace_id:
            info.metadata["trace_id"] = trace_id
        status = status_pb2.Status(
            code=self.code.value[0], message=_cap(redact(self.message), 1024)
        )
        status.details.add().Pack(info)
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return status


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_REQUEST"


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "IDEMPOTENCY_KEY_REUSED"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "CALLER_NOT_ALLOWED"


class Unauthenticated(ServiceError):
    """The caller has no identity (no certificate name, no sidecar header)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "CALLER_NOT_ALLOWED"


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "OVERLOADED"


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "DEPENDENCY_UNAVAILABLE"


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_TOO_SHORT"


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


def invalid_field(field: str, message: str) -> InvalidArgument:
    """The common case of a bad request field."""
    return InvalidArgument(message, metadata={"field": field})


@dataclass(frozen=True)
class ErrorDetails:
    """What a client learns from a failed call's status details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] | None = None
    retry_after: float | None = None

    @property
    def trace_id(self) -> str:
        return (self.metadata or {}).get("trace_id", "")


def _status_from_metadata(metadata: object) -> status_pb2.Status | None:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def error_details(err: grpc.aio.AioRpcError) -> ErrorDetails:
    """Decode a client-side RPC error into its code, reason and metadata."""
    code = err.code()
    message = err.details() or ""
    status = _status_from_metadata(err.trailing_metadata())
    if status is None:
        return ErrorDetails(code=code, message=message)
    reason, domain, meta, retry = "", "", {}, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain, meta = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            detail.Unpack(ri)
            retry = ri.retry_delay.ToNanoseconds() / 1e9
    return ErrorDetails(code, message, reason, domain, meta, retry)


def status_code_number(code: grpc.StatusCode) -> int:
    return int(code.value[0])


__all__ = [
    "STATUS_DETAILS_KEY",
    "AlreadyExists",
    "DeadlineExceeded",
    "ErrorDetails",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
    "code_pb2",
    "error_details",
    "invalid_field",
    "reason_name",
]
