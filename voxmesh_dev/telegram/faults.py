"""Injected faults: the failures a real Bot API has and a test wants on demand.

A :class:`FaultPolicy` draws, per call, whether to answer 429 or 500, to hang past the
client's timeout, or to drop the connection; :func:`injected_error` and :func:`lose` are how
the HTTP front (:mod:`voxmesh_dev.telegram.dispatch`) carries them out. Kept apart from the
flood limits (:mod:`voxmesh_dev.telegram.limits`): a flood-limit 429 is the emulator being
Telegram, an injected one is a test being hostile, and a recorded call tells them apart by
its ``fault``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

from voxmesh_dev.telegram.params import ApiError

FAULT_KINDS = ("429", "500", "hang", "drop")


@dataclass
class FaultPolicy:
    """Random failures injected before (or, with ``lose_response``, after) a Bot API call.

    Probabilities are checked in the order 429, 500, hang, drop, each against the same
    uniform draw, so their sum should stay <= 1. ``methods`` limits faults to those method
    names (case-insensitive); the pseudo-method ``"download"`` covers file downloads.
    With ``lose_response=True`` a hang or drop happens after the method ran: the message is
    sent but the client never hears so, which is what makes a retry send a duplicate.
    """

    rate_429: float = 0.0
    retry_after: int = 1
    rate_500: float = 0.0
    rate_hang: float = 0.0
    hang_seconds: float = 120.0
    rate_drop: float = 0.0
    lose_response: bool = False
    methods: frozenset[str] | None = None
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.methods is not None:
            self.methods = frozenset(m.lower() for m in self.methods)
        if self.seed is not None:
            self._rng.seed(self.seed)
        for name in ("rate_429", "rate_500", "rate_hang", "rate_drop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")

    def pick(self, method: str) -> str | None:
        """Return the fault kind for this call ("429", "500", "hang", "drop") or None."""
        if self.methods is not None and method.lower() not in self.methods:
            return None
        total = self.rate_429 + self.rate_500 + self.rate_hang + self.rate_drop
        if total <= 0:
            return None
        draw = self._rng.random()
        for kind, rate in zip(
            FAULT_KINDS, (self.rate_429, self.rate_500, self.rate_hang, self.rate_drop), strict=True
        ):
            if draw < rate:
                return kind
            draw -= rate
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPolicy:
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault policy fields: {sorted(unknown)}")
        kwargs = dict(data)
        if kwargs.get("methods") is not None:
            kwargs["methods"] = frozenset(kwargs["methods"])
        return cls(**kwargs)


def injected_error(fault: str, retry_after: int) -> ApiError:
    """The Bot API error answer for an injected "429" or "500"."""
    if fault == "429":
        return ApiError(
            429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
        )
    return ApiError(500, "Internal Server Error")


async def lose(
    request: web.Request, fault: str, hang_seconds: float, closing: asyncio.Event
) -> web.StreamResponse:
    """Hang past the client's timeout and/or drop the connection without an answer."""
    if fault == "hang":
        # closing: stop() must not wait out a two-minute hang
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), hang_seconds)
    if request.transport is not None:
        request.transport.close()
    # nothing reaches the client: the transport is closed before aiohttp writes this
    return web.Response(status=500)
