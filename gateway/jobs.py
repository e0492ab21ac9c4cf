"""One active job per user, the rest queued in order, across every gateway replica.

A user's lane is a Redis sorted set of job ids scored by a global sequence
number (arrival order). The job at the head runs; the others wait and can
say how many are ahead of them. Each waiting or running job keeps a
heartbeat deadline in a hash beside the lane; an entry whose deadline
passed (its replica died) is purged by the next script that looks, so a
crashed pod blocks a lane for at most ``ttl_seconds``. ``/cancel`` may reach
another replica than the one running the job: it marks the head job
cancelled in Redis and the runner's heartbeat notices (at once when the job
runs in this process).

Every step is one Lua script, so purging, ranking and enqueueing never
interleave between replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from types import TracebackType

from opentelemetry.instrumentation.utils import suppress_instrumentation
from redis.asyncio import Redis

log = logging.getLogger(__name__)

_PURGE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function purge()
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  local live = 0
  for _, m in ipairs(members) do
    local d = tonumber(redis.call('HGET', KEYS[2], m) or '0')
    if d < now then
      redis.call('ZREM', KEYS[1], m)
      redis.call('HDEL', KEYS[2], m)
      redis.call('SREM', KEYS[3], m)
    else
      live = live + 1
    end
  end
  return live
end
"""

# KEYS: lane, alive, cancelled, seq. ARGV: job id, ttl ms, max live jobs.
# Returns the number of jobs ahead, or -1 when the lane is full.
_ENQUEUE = (
    _PURGE
    + """
local live = purge()
if live >= tonumber(ARGV[3]) then
  return -1
end
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], 86400000)
end
return live
"""
)

# KEYS: lane, alive, cancelled. ARGV: job id, ttl ms.
# Returns {jobs ahead (-1 if the entry is gone), 1 if cancelled}.
_HEARTBEAT = (
    _PURGE
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
end
purge()
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
if not rank then
  rank = -1
end
return {rank, redis.call('SISMEMBER', KEYS[3], ARGV[1])}
"""
)

# KEYS: lane, alive, cancelled. Marks the running (head) job; returns its id or false.
_CANCEL = (
    _PURGE
    + """
purge()
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if #head == 0 then
  return false
end
redis.call('SADD', KEYS[3], head[1])
redis.call('PEXPIRE', KEYS[3], 86400000)
return head[1]
"""
)

_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""


class LaneFullError(Exception):
    """The user already has the most jobs a lane may hold."""


class JobLanes:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_queued: int = 10,
        ttl_seconds: float = 15.0,
        heartbeat_seconds: float = 1.0,
        poll_seconds: float = 0.25,
    ) -> None:
        self._prefix = prefix
        self.max_queued = max_queued
        self._ttl_ms = int(ttl_seconds * 1000)
        self._beat_seconds = heartbeat_seconds
        self._poll = poll_seconds
        self._enqueue = redis.register_script(_ENQUEUE)
        self._beat = redis.register_script(_HEARTBEAT)
        self._cancel = redis.register_script(_CANCEL)
        self._finish = redis.register_script(_FINISH)
        # Tickets of this process, so a local finish or cancel acts at once.
        self._local: dict[int, dict[str, Ticket]] = {}

    def _keys(self, user_id: int) -> list[str]:
        base = f"{self._prefix}jobs:{user_id}"
        return [base, f"{base}:alive", f"{base}:cancelled"]

    async def enqueue(self, user_id: int) -> Ticket:
        """Join the user's lane; raise LaneFullError if it holds too many jobs."""
        job_id = secrets.token_hex(8)
        ahead = int(
            await self._enqueue(
                keys=[*self._keys(user_id), f"{self._prefix}jobs:seq"],
                args=[job_id, self._ttl_ms, self.max_queued + 1],
            )
        )
        if ahead < 0:
            raise LaneFullError(user_id)
        ticket = Ticket(self, user_id, job_id, ahead)
        self._local.setdefault(user_id, {})[job_id] = ticket
        ticket.start()
        return ticket

    async def cancel(self, user_id: int) -> bool:
        """Stop the user's running job, wherever it runs; False if there is none."""
        head = await self._cancel(keys=self._keys(user_id))
        if not head:
            return False
        local = self._local.get(user_id, {}).get(
            head.decode() if isinstance(head, bytes) else str(head)
        )
        if local is not None:
            local.stop.set()
        return True

    async def _heartbeat(self, ticket: Ticket) -> tuple[int, bool]:
        rank, cancelled = await self._beat(
            keys=self._keys(ticket.user_id), args=[ticket.job_id, self._ttl_ms]
        )
        return int(rank), bool(int(cancelled))

    async def _done(self, ticket: Ticket) -> None:
        tickets = self._local.get(ticket.user_id, {})
        tickets.pop(ticket.job_id, None)
        if not tickets:
            self._local.pop(ticket.user_id, None)
        try:
            await self._finish(keys=self._keys(ticket.user_id), args=[ticket.job_id])
        finally:
            # The next local job of this user need not wait for its poll.
            for other in tickets.values():
                other.wake.set()

    def local_jobs(self) -> int:
        return sum(len(t) for t in self._local.values())


class Ticket:
    """A place in a user's lane: wait for the turn, run, then ``close()``.

    ``stop`` is set when the user cancels the job (it stays set).
    """

    def __init__(self, lanes: JobLanes, user_id: int, job_id: str, ahead: int) -> None:
        self._lanes = lanes
        self.user_id = user_id
        self.job_id = job_id
        self.ahead = ahead
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self._turn = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        if ahead == 0:
            self._turn.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"lane-{self.job_id}")

    async def _loop(self) -> None:
        # A heartbeat a second would bury the update's trace in Redis spans.
        with suppress_instrumentation():
            await self._beat_until_closed()

    async def _beat_until_closed(self) -> None:
        lanes = self._lanes
        while not self._closed:
            try:
                rank, cancelled = await lanes._heartbeat(self)
            except Exception:  # Redis hiccup: keep the place, try again
                log.warning("job lane heartbeat failed", exc_info=True)
                rank, cancelled = -2, False
            if cancelled:
                self.stop.set()
            if rank != -2:
                # -1: our entry was purged (this process stalled past the TTL);
                # run rather than wait for a turn that will never come.
                if rank <= 0:
                    self._turn.set()
                else:
                    self.ahead = rank
            interval = lanes._beat_seconds if self._turn.is_set() else lanes._poll
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)

    async def wait_turn(self) -> None:
        await self._turn.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Shielded: a job cancelled by shutdown must still leave the lane.
        await asyncio.shield(self._lanes._done(self))

    async def __aenter__(self) -> Ticket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
