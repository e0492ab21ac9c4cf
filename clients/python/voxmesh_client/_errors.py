"""One exception for every failed call, with what the mesh puts in its statuses."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class TranscriberError(Exception):
    """A call ended with a non-OK status.

    ``reason`` is a ``voxmesh.common.v1.ErrorReason`` name (``AUDIO_UNDECODABLE``,
    ``OVERLOADED``...); ``trace_id`` is the reference to quote (it names the
    call's trace in Zipkin); ``retry_after`` is set when the server asks the
    caller to come back later (RESOURCE_EXHAUSTED).
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    trace_id: str = ""

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        ref = f" (trace {self.trace_id})" if self.trace_id else ""
        return f"{self.code.name}{reason}: {self.message}{ref}"

    @classmethod
    def from_rpc(cls, err: grpc.aio.AioRpcError, trace_id: str = "") -> TranscriberError:
        out = cls(code=err.code(), message=err.details() or "", trace_id=trace_id)
        for key, value in err.trailing_metadata() or ():
            if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
                continue
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    out.reason, out.metadata = info.reason, dict(info.metadata)
                    out.trace_id = out.metadata.get("trace_id", out.trace_id)
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    out.retry_after = retry.retry_delay.ToNanoseconds() / 1e9
        return out
