"""Admission control: a bounded number of active streams and a bounded queue.

Beyond both, a caller is told to come back later (OVERLOADED with a retry
delay) rather than piling work onto a CPU that is already saturated. A caller
in the queue can follow its place in the line (:class:`Place`).
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


class Place:
    """A waiting place in the line: follow it with :meth:`next`, always :meth:`leave` it.

    ``position`` counts from 1 (runs next) and only goes down: waiters ahead
    being admitted or leaving move it up.
    """

    def __init__(self, admission: Admission, position: int) -> None:
        self._admission = admission
        self.position = position
        self._ticket: Ticket | None = None
        self._taken = False
        self._signal: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _poke(self) -> None:
        if not self._signal.done():
            self._signal.set_result(None)

    def _admit(self, ticket: Ticket) -> None:
        self._ticket = ticket
        self.position = 0
        self._poke()

    async def next(self) -> Ticket | int:
        """Wait for a change: the Ticket once admitted, else the new position.

        Changes since the last call are not lost: they return at once (several
        moves as one, the latest position).
        """
        if self._ticket is None:
            await self._signal
            self._signal = asyncio.get_running_loop().create_future()
        if self._ticket is not None:
            self._taken = True
            return self._ticket
        return self.position

    def leave(self) -> None:
        """Give up the place (the caller went away); a no-op once the Ticket is taken.

        A slot handed over but not yet taken is passed on to the next waiter.
        """
        if self._taken:
            return
        self._taken = True
        if self._ticket is not None:
            self._admission.hand_back(self._ticket)
        else:
            self._admission.leave(self)


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
        self._waiters: deque[Place] = deque()
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

    def join(self) -> Ticket | Place:
        """A Ticket when a slot is free and nobody waits, else a place at the end of the line.

        Raises Overloaded when the line is full too.
        """
        if self._active < self._max_active and not self._waiters:
            self._active += 1
            return Ticket(self._clock())
        if len(self._waiters) >= self._max_queued:
            raise Overloaded(
                f"{self._active} streams active and {len(self._waiters)} queued",
                retry_after=self.retry_after(),
            )
        place = Place(self, len(self._waiters) + 1)
        self._waiters.append(place)
        return place

    async def acquire(self) -> Ticket:
        """Wait in line, without following the place, until admitted."""
        entry = self.join()
        if isinstance(entry, Ticket):
            return entry
        try:
            while not isinstance(got := await entry.next(), Ticket):
                pass
        finally:
            entry.leave()  # a no-op once admitted
        return got

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        held = self._clock() - ticket.started
        self._job_seconds = 0.8 * self._job_seconds + 0.2 * held
        self._active -= 1
        self._wake()

    def hand_back(self, ticket: Ticket) -> None:
        """Free a slot that was handed over just as its caller left (no job ran)."""
        if not ticket.released:
            ticket.released = True
            self._active -= 1
            self._wake()

    def leave(self, place: Place) -> None:
        """Take a waiter out of the line; those behind it move up."""
        if place in self._waiters:
            self._waiters.remove(place)
            self._renumber()

    def _wake(self) -> None:
        admitted = False
        while self._waiters and self._active < self._max_active:
            place = self._waiters.popleft()
            self._active += 1
            place._admit(Ticket(self._clock()))
            admitted = True
        if admitted:
            self._renumber()

    def _renumber(self) -> None:
        for position, place in enumerate(self._waiters, start=1):
            if place.position != position:
                place.position = position
                place._poke()
