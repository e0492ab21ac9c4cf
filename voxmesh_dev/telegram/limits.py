"""Flood limits and fault injection for the Bot API emulator.

Telegram documents its limits only loosely ("about 30 messages per second", "no more than one
message per second" in a chat, "no more than 20 messages per minute" in a group). The emulator
turns them into sliding windows, counted per bot and per chat, so a client that paces itself as
the FAQ says never sees a 429 and one that bursts always does:

* per bot: at most ``per_bot`` sends in any ``per_bot_window`` seconds (30 in 1 s);
* per private chat (positive chat id): at most ``private_chat`` in any ``private_window``
  seconds (1 in 1 s: no burst allowance, the strict reading of the FAQ);
* per group, supergroup or channel (negative chat id): ``group_chat`` in ``group_window``
  (20 in 60 s).

sendMessage, sendDocument, sendInvoice and editMessageText count; requests that fail
validation, "message is not modified" edits and requests answered 429 do not.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class RateLimits:
    """Sliding-window flood limits; ``enabled=False`` switches them all off."""

    enabled: bool = True
    per_bot: int = 30
    per_bot_window: float = 1.0
    private_chat: int = 1
    private_window: float = 1.0
    group_chat: int = 20
    group_window: float = 60.0


class RateLimiter:
    """Sliding-window counters keyed by bot and by chat."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._sent: dict[Hashable, deque[float]] = {}

    def _windows(self, chat_id: int) -> list[tuple[Hashable, int, float]]:
        lim = self.limits
        chat: tuple[Hashable, int, float]
        if chat_id < 0:
            chat = (("chat", chat_id), lim.group_chat, lim.group_window)
        else:
            chat = (("chat", chat_id), lim.private_chat, lim.private_window)
        return [("bot", lim.per_bot, lim.per_bot_window), chat]

    def retry_after(self, chat_id: int) -> int | None:
        """Seconds to wait before one more message to chat_id is allowed, or None if it is."""
        if not self.limits.enabled:
            return None
        now = self._clock()
        wait = 0.0
        for key, limit, window in self._windows(chat_id):
            stamps = self._sent.get(key)
            if stamps is None:
                continue
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                # the oldest send that keeps the window full must age out
                wait = max(wait, stamps[len(stamps) - limit] + window - now)
        if wait <= 0:
            return None
        return max(1, math.ceil(wait))

    def record(self, chat_id: int) -> None:
        now = self._clock()
        for key, _limit, _window in self._windows(chat_id):
            self._sent.setdefault(key, deque()).append(now)

    def reset(self) -> None:
        self._sent.clear()


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
