"""Admission control: a bounded number of active streams and a bounded queue.

Beyond both, a caller is told to come back later (OVERLOADED with a retry
delay) rather than piling work onto a CPU that is already saturated.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from transcriber.errors import Overloaded


@dataclass
class Ticket:
    """One admitted stream; release it exactly once, when its work has stopped."""

    started: float
    released: bool = False


class Admission:
    """FIFO admission with ``max_active`` slots and ``max_queued`` waiting places.

    Not thread-safe: call it from the event loop (workers post their release there).
    """

    def __init__(
        self,
        max_active: int,
        max_queued: int,
        *,
        initial_job_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_active = max_active
        self._max_queued = max_queued
        self._clock = clock
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # Moving average of how long a stream holds a slot, for retry_after.
        self._job_seconds = initial_job_seconds

    @property
    def active(self) -> int:
        return self._active

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> float:
        rounds = math.ceil((len(self._waiters) + 1) / self._max_active)
        return min(60.0, max(1.0, rounds * self._job_seconds))

    async def acquire(self) -> Ticket:
        if self._active < self._max_active and not self._waiters:
            self._active += 1
            return Ticket(self._clock())
        if len(self._waiters) >= self._max_queued:
            raise Overloaded(
                f"{self._active} streams active and {len(self._waiters)} queued",
                retry_after=self.retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the caller left: pass it on.
                self._active -= 1
                self._wake()
            raise
        return Ticket(self._clock())

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        held = self._clock() - ticket.started
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * held
        self._active -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._active < self._max_active:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._active += 1
                waiter.set_result(None)
