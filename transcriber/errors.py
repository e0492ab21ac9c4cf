"""Domain failures of the transcriber, free of gRPC.

The ASR core and the decoder run in worker threads and must not depend on the
transport; :mod:`transcriber.service` maps these onto :mod:`voxmesh.errors`
(and so onto gRPC statuses with ``google.rpc.ErrorInfo``) in one place.
"""

from __future__ import annotations

from collections.abc import Mapping


class TranscriberError(Exception):
    """Root of every failure the transcriber reports to a caller.

    ``reason`` is a ``voxmesh.common.v1.ErrorReason`` name without prefix.
    """

    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str | int | float] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = {k: str(v) for k, v in (metadata or {}).items()}


class BadRequest(TranscriberError):
    """The config is invalid (INVALID_ARGUMENT); metadata "field" names it."""

    reason = "INVALID_REQUEST"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, metadata={"field": field})
        self.field = field


class BadAudio(TranscriberError):
    """The audio cannot be transcribed (INVALID_ARGUMENT): AUDIO_EMPTY, AUDIO_CORRUPT,
    NO_AUDIO_TRACK, AUDIO_TOO_LONG or AUDIO_TOO_LARGE."""


class Overloaded(TranscriberError):
    """Every stream slot and queue place is taken (RESOURCE_EXHAUSTED)."""

    reason = "OVERLOADED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, metadata={"retry_after_seconds": f"{retry_after:.1f}"})
        self.retry_after = retry_after


class DeadlineTooShort(TranscriberError):
    """The caller's remaining deadline cannot cover the expected work."""

    reason = "DEADLINE_TOO_SHORT"


class ModelUnavailable(TranscriberError):
    """A model's files are missing or fail to load (UNAVAILABLE)."""

    reason = "DEPENDENCY_UNAVAILABLE"


class Cancelled(Exception):
    """The caller went away; the worker stops. Never reaches a caller."""


class PaidSecondsExceeded(TranscriberError):
    """The audio reached TranscriptionConfig.paid_seconds and no raise came in time
    (FAILED_PRECONDITION); the segments of the paid audio were sent before it."""

    reason = "PAID_SECONDS_EXCEEDED"

    def __init__(self, paid_seconds: float, transcribed_seconds: float) -> None:
        super().__init__(
            f"the audio is longer than the {paid_seconds:g} seconds paid for",
            metadata={
                "paid_seconds": f"{paid_seconds:.3f}",
                "transcribed_seconds": f"{transcribed_seconds:.3f}",
            },
        )
        self.paid_seconds = paid_seconds
        self.transcribed_seconds = transcribed_seconds
