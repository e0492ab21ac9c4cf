"""Taking no updates while Redis is down, and taking them again once it is back.

Every update needs Redis before it does anything (de-duplication, the
per-user rate limit and job lane, preferences), and so does the notifier,
through which the bot says anything at all. An update handled while Redis
is down can only fail, and the user cannot even be told. So the gateway
stops taking updates instead and leaves them with Telegram, which keeps
them for a day:

* :class:`RedisHealth` pings Redis every ``interval`` seconds; anything
  that meets a connection error calls :meth:`RedisHealth.trip` at once;
* :class:`PauseUpdates` holds ``getUpdates`` (polling) until Redis answers;
  ``/readyz`` answers 503 and a webhook POST is refused with 503 so that
  Telegram delivers it again later (see :mod:`gateway.app`);
* an update already taken waits in the de-duplication middleware for Redis
  to return rather than fail.

Redis can also come back empty (FLUSHALL, a failover to a replica that had
not caught up, the AOF's last second lost): :class:`RedisHealth` keeps an
epoch marker there, a random value it wrote, and a ping that finds it gone
or changed is a reset, not a quiet period. Jobs do not live in Redis (they
are billing's, in PostgreSQL), so a reset loses none; it loses rate-limit
windows, the record of handled updates (a re-delivered one runs again,
harmlessly: every effect is keyed), preferences, and Stars payments
recorded but not yet credited (see the README's "What survives what").
``on_reset`` runs after one (the reconciler looks at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import GetUpdates
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from voxmesh.telemetry import untraced

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# What "Redis is not there" looks like from redis-py.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
)


class RedisHealth:
    def __init__(
        self,
        redis: Redis,
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
        epoch_key: str = "",
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._interval = interval
        self._timeout = timeout
        self._up = asyncio.Event()
        self._up.set()
        self._task: asyncio.Task[None] | None = None
        self._epoch_key = epoch_key
        self._epoch: bytes | str = b""
        self.on_reset = on_reset
        self.resets = 0

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def trip(self) -> None:
        """Someone met a connection error: consider Redis down until a ping answers."""
        if self._up.is_set():
            log.warning("Redis is unavailable: taking no updates until it answers")
            self._up.clear()

    async def wait_up(self) -> None:
        await self._up.wait()

    async def check(self) -> bool:
        try:
            await asyncio.wait_for(self._redis.ping(), self._timeout)
            if self._epoch_key:
                await asyncio.wait_for(self._check_epoch(), self._timeout)
        except REDIS_DOWN_ERRORS:  # OSError covers the ping timing out
            self.trip()
            return False
        if not self._up.is_set():
            log.info("Redis answers again: taking updates")
            self._up.set()
        return True

    async def _check_epoch(self) -> None:
        if not self._epoch:
            fresh = secrets.token_hex(8).encode()
            await self._redis.set(self._epoch_key, fresh, nx=True)
            self._epoch = await self._redis.get(self._epoch_key) or fresh
            return
        now = await self._redis.get(self._epoch_key)
        if now == self._epoch:
            return
        self.resets += 1
        log.warning("Redis was reset (its epoch marker is gone): its state is lost")
        fresh = secrets.token_hex(8).encode()
        await self._redis.set(self._epoch_key, fresh, nx=True)
        self._epoch = await self._redis.get(self._epoch_key) or fresh
        if self.on_reset is not None:
            self.on_reset()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        with untraced():
            await self._watch()

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                # Anything else (a LOADING reply, a bug): the watcher must not die,
                # or a tripped gate would never open again.
                log.exception("Redis health check failed")
            # Down: look again sooner, so the pause ends soon after Redis returns.
            await asyncio.sleep(self._interval if self.up else min(self._interval, 0.5))


class PauseUpdates(BaseRequestMiddleware):
    """Bot session middleware: no ``getUpdates`` while Redis is down."""

    def __init__(self, health: RedisHealth) -> None:
        self._health = health

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        method: TelegramMethod[Any],
    ) -> Response[Any]:
        if isinstance(method, GetUpdates) and not self._health.up:
            await self._health.wait_up()
        return await make_request(bot, method)
