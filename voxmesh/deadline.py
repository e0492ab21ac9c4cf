"""The deadline of the RPC being served, carried to every outgoing call.

The server call frame sets it when a call arrives; the client interceptors in
:mod:`voxmesh.channels` turn what is left of it, minus a small margin, into
the timeout of every call made while serving. Contextvars follow the request
into tasks it spawns, so nothing has to pass the deadline by hand.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from voxmesh.config import MAX_DEADLINE_SECONDS

# Absolute time.monotonic() at which the current RPC must be answered.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "voxmesh_deadline", default=None
)
_margin: contextvars.ContextVar[float] = contextvars.ContextVar("voxmesh_margin", default=0.05)


def clamp(seconds: float | None, default: float) -> float:
    """The time an incoming call may take: its own, else the default, never "infinite"."""
    # gRPC reports "no deadline" as None or as a far-future value.
    if seconds is None or math.isnan(seconds) or seconds > MAX_DEADLINE_SECONDS:
        return default
    return max(seconds, 0.0)


@contextmanager
def bound(seconds: float, *, margin: float = 0.05) -> Iterator[None]:
    """Run the block under a deadline ``seconds`` from now (nested: the earlier wins)."""
    new = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(new if current is None else min(current, new))
    mtoken = _margin.set(margin)
    try:
        yield
    finally:
        _deadline.reset(token)
        _margin.reset(mtoken)


def remaining() -> float | None:
    """Seconds left before the current deadline, or None outside any."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def outgoing_timeout(requested: float | None) -> float | None:
    """Timeout for a call made now: the caller's choice, capped by what is left."""
    left = remaining()
    if left is None:
        return requested
    left -= _margin.get()
    return left if requested is None else min(requested, left)
