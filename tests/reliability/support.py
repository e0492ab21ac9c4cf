"""Shared machinery of the reliability tests: a server loop in a thread, the status
contract every fuzzed call must keep, and the strategies for hostile field values.

Hypothesis drives plain (sync) test functions; the servers under test and their
gRPC channels live on an event loop of their own in a background thread, and each
example is one coroutine submitted to it. That keeps hypothesis' engine and
pytest-asyncio's loops out of each other's way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from voxmesh.common.v1 import common_pb2
from voxmesh.errors import error_details

T = TypeVar("T")

Code = grpc.StatusCode

# Reproducible in CI: the same examples every run, nothing saved between runs.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    print_blob=False,
)

# A failing example of megabytes must still report the failure, not a warning about its size.
QUIET_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")

NEVER = frozenset({Code.INTERNAL, Code.UNKNOWN})
# common.proto: which reasons go with which status.
REASONS_BY_CODE = {
    Code.INVALID_ARGUMENT: {
        "INVALID_REQUEST",
        "AUDIO_EMPTY",
        "AUDIO_CORRUPT",
        "NO_AUDIO_TRACK",
        "AUDIO_TOO_LONG",
        "AUDIO_TOO_LARGE",
    },
    Code.ALREADY_EXISTS: {"IDEMPOTENCY_KEY_REUSED"},
    Code.FAILED_PRECONDITION: {
        "INSUFFICIENT_FUNDS",
        "HOLD_NOT_PENDING",
        "CAPTURE_EXCEEDS_HOLD",
        "TELEGRAM_BAD_REQUEST",
        "TELEGRAM_FORBIDDEN",
        "JOB_LEASE_LOST",
        "BALANCE_TOO_LOW",
        "PAID_SECONDS_EXCEEDED",
    },
    Code.PERMISSION_DENIED: {"USER_BANNED", "NOT_ADMIN", "CALLER_NOT_ALLOWED"},
    Code.NOT_FOUND: {"NOT_FOUND"},
    Code.RESOURCE_EXHAUSTED: {"OVERLOADED", "QUEUE_FULL"},
    Code.DEADLINE_EXCEEDED: {"DEADLINE_TOO_SHORT"},
    Code.UNAVAILABLE: {"TELEGRAM_UNAVAILABLE", "DEPENDENCY_UNAVAILABLE"},
}
REASONS = frozenset(
    name.removeprefix("ERROR_REASON_")
    for name in common_pb2.ErrorReason.keys()
    if name != "ERROR_REASON_UNSPECIFIED"
)


class LoopThread:
    """An event loop running forever in a daemon thread; ``run`` waits for a coroutine."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(drain(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.close()


class ErrorLog(logging.Handler):
    """Collects ERROR records (with tracebacks) the in-process servers log."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


@dataclass
class Outcomes:
    """What a fuzz run saw, by status code: asserted on at the end of each test."""

    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def __str__(self) -> str:
        return f"codes={dict(self.codes)} reasons={dict(self.reasons)}"


async def expect(
    call: Callable[[], Awaitable[T]],
    allowed: Iterable[grpc.StatusCode],
    outcomes: Outcomes,
    what: object,
) -> T | None:
    """Make one RPC (on this loop); an error must be an allowed code with an ErrorInfo reason."""
    try:
        result = await call()
    except grpc.aio.AioRpcError as err:
        check_error(err, allowed, what)
        details = error_details(err)
        outcomes.codes[err.code().name] += 1
        outcomes.reasons[details.reason] += 1
        return None
    outcomes.codes["OK"] += 1
    return result


def check_error(
    err: grpc.aio.AioRpcError, allowed: Iterable[grpc.StatusCode], what: object
) -> None:
    allowed = frozenset(allowed)
    details = error_details(err)
    summary = f"{err.code().name} reason={details.reason!r} message={err.details()!r} for {what!r}"
    assert err.code() not in NEVER, summary
    assert err.code() in allowed, f"undocumented status: {summary}"
    assert details.reason, f"no ErrorInfo: {summary}"
    assert details.reason in REASONS, f"reason is not an ErrorReason: {summary}"
    assert details.domain.endswith(".voxmesh"), f"ErrorInfo without domain: {summary}"
    assert details.reason in REASONS_BY_CODE[err.code()], f"reason does not fit: {summary}"
    if details.reason == "INVALID_REQUEST":
        # common.proto: metadata "field" names the bad field.
        assert (details.metadata or {}).get("field"), f"no 'field' in metadata: {summary}"


async def serving(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


# ---------------------------------------------------------------- strategies

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

int64_edges = st.sampled_from(
    [
        0,
        -1,
        1,
        2,
        INT32_MAX,
        INT32_MAX + 1,
        INT32_MIN,
        2**53 + 1,
        INT64_MAX,
        INT64_MIN,
        INT64_MAX - 1,
    ]
)
int32_edges = st.sampled_from([0, -1, 1, 59, 60, 61, 86400, 86401, INT32_MAX, INT32_MIN])
int64s = st.one_of(int64_edges, st.integers(-1000, 100_000), st.integers(INT64_MIN, INT64_MAX))
int32s = st.one_of(int32_edges, st.integers(-1000, 100_000), st.integers(INT32_MIN, INT32_MAX))


def enums(valid: Iterable[int]) -> st.SearchStrategy[int]:
    """Known values most of the time, any int32 (unknown values) otherwise."""
    return st.one_of(st.sampled_from(sorted(valid)), int32_edges, st.integers(INT32_MIN, INT32_MAX))


# Protobuf strings are UTF-8: lone surrogates cannot even be serialised.
_chars = st.characters(exclude_categories=["Cs"])
_control = st.characters(codec="ascii", categories=["Cc"])
hostile_words = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\u202egnp.exe",  # right-to-left override
        "e\u0301" * 40,  # combining marks
        "👩\u200d👩\u200d👧\u200d👦",
        "𝕏" * 65,  # astral plane: 65 code points, 130 UTF-16 units
        "<b>",
        "</code>",
        "&amp;&",
        "<script>alert(1)</script>",
        "'; DROP TABLE users; --",
        "%s%n%x",
        "${jndi:ldap://x}",
        " ",
        "\n\r\t",
        "\ufeff",
        "\uffff",
        "NaN",
        "-1",
        "0x7fffffffffffffff",
    ]
)


def strings(max_len: int = 64, *, huge: bool = True) -> st.SearchStrategy[str]:
    """Empty, short, unicode, control characters, and lengths around and far past ``max_len``.

    ``huge`` adds strings of 70 000 and 300 000 characters.
    """
    around = st.sampled_from(sorted({0, 1, max_len - 1, max_len, max_len + 1, 2 * max_len + 1}))
    return st.one_of(
        st.just(""),
        st.text(_chars, max_size=min(max_len + 2, 80)),
        st.text(_control, min_size=1, max_size=20),
        hostile_words,
        around.map(lambda n: "x" * max(n, 0)),
        st.sampled_from([70_000, 300_000] if huge else [400]).map(lambda n: "é" * n),
    )


def oversize_bytes(limit: int = 3 * 1024 * 1024) -> st.SearchStrategy[bytes]:
    """Random bytes, usually small, sometimes large (never past ``limit``)."""
    return st.one_of(
        st.just(b""),
        st.binary(max_size=256),
        st.tuples(
            st.integers(0, 255), st.sampled_from([1 << 16, 1 << 20, (1 << 20) + 1, limit])
        ).map(lambda t: bytes([t[0]]) * min(t[1], limit)),
    )


def optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """None means the field is left unset (a missing field)."""
    return st.one_of(st.none(), strategy)


def build(message_type: Callable[..., T], **fields: Any) -> T:
    return message_type(**{k: v for k, v in fields.items() if v is not None})


def requests(
    message_type: Callable[..., T],
    valid: dict[str, st.SearchStrategy[Any]],
    hostile: dict[str, st.SearchStrategy[Any]],
) -> st.SearchStrategy[T]:
    """Valid requests, valid ones with one field hostile or missing, and all-hostile ones.

    Validation stops at the first bad field, so spoiling one field at a time is
    what reaches every field's checks (and the code past them).
    """

    def make(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[T]:
        return st.fixed_dictionaries(fields).map(lambda d: build(message_type, **d))

    variants = [make(valid)]
    variants += [make({**valid, name: optional(hostile[name])}) for name in valid]
    variants.append(make({name: optional(s) for name, s in hostile.items()}))
    return st.one_of(variants)


def log_tail(records: list[str], limit: int = 4000) -> str:
    return "\n---\n".join(records)[-limit:]
