"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Every error body also carries ``trace_id``, the reference to quote, which the
``x-request-id`` header repeats (the ``openai`` SDK exposes that header as
``request_id``). gRPC statuses from the transcriber map to the HTTP status a
caller of OpenAI's API would expect for the same failure.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from aiohttp import web

from voxmesh.errors import error_details

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


class ApiError(Exception):
    """A request that ends with an error response; raised anywhere in a handler."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self, trace_id: str) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": error_type(self.status),
                "param": self.param,
                "code": self.code,
                "trace_id": trace_id,
            }
        }

    def response(self, trace_id: str) -> web.Response:
        headers = {"x-request-id": trace_id} if trace_id else {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(self.retry_after)))
        return web.Response(
            status=self.status,
            text=json.dumps(self.body(trace_id), ensure_ascii=False),
            content_type="application/json",
            headers=headers,
        )

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> ApiError:
        details = error_details(exc)
        status = _HTTP_STATUS.get(details.code, 500)
        code = (details.reason or details.code.name).lower()
        # Server-side failures keep their message (the transcriber's INTERNAL
        # message is only a reference; nothing internal leaks).
        return cls(
            status,
            details.message or details.code.name.lower(),
            code=code,
            # AUDIO_CORRUPT, AUDIO_TOO_LONG...: the upload is what to fix.
            param="file" if code.startswith("audio") else None,
            retry_after=details.retry_after,
        )


def bad_request(message: str, param: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)
