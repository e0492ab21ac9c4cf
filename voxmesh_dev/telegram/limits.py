"""Flood limits for the Bot API emulator (injected faults are :mod:`voxmesh_dev.telegram.faults`).

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
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


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
