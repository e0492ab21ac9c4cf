"""Long polling that acknowledges an update only once it was handled.

aiogram's own polling moves Telegram's offset past an update as soon as it
is fetched, so an update whose handler had not yet recorded its job when
the process died is lost. Here the offset moves past an update only when
its handler returned (its job recorded in billing, its payment in Redis):
Telegram keeps the rest and hands them out again, to this process after a
failure or to the next one after a crash. Handlers are idempotent (every
effect is keyed by the update's chat and message), so an update handled
twice does no harm. Updates still run concurrently, as aiogram's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter, TelegramUnauthorizedError
from aiogram.methods import GetUpdates
from aiogram.types import Update

log = logging.getLogger(__name__)

# A failed update waits this long (doubling, up to the cap) before it is fed again.
RETRY_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0


class NotAcceptedError(Exception):
    """The update could not be taken on (its job or payment not recorded, billing
    unreachable): it must not be acknowledged.

    The error handler lets it through, so this poller keeps the update (and a
    webhook answers 500): Telegram hands it out again later.
    """


class AckPolling:
    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        *,
        allowed_updates: Sequence[str],
        timeout: int = 10,
    ) -> None:
        self._dp = dp
        self._bot = bot
        self._allowed = list(allowed_updates)
        self._timeout = timeout
        self._offset: int | None = None
        # update_id -> its task; finished ones wait here until the offset passes them.
        self._tasks: dict[int, asyncio.Task[bool]] = {}
        self._handled: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def _handle(self, update: Update) -> bool:
        try:
            await self._dp.feed_update(self._bot, update)
        except Exception:
            log.warning("update %s not handled; Telegram keeps it", update.update_id, exc_info=True)
            return False
        return True

    def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        for update_id, task in list(self._tasks.items()):
            if not task.done():
                continue
            del self._tasks[update_id]
            if not task.cancelled() and task.result():
                self._handled.add(update_id)
                self._failures.pop(update_id, None)
                continue
            tries = self._failures.get(update_id, 0) + 1
            self._failures[update_id] = tries
            delay = min(RETRY_CAP_SECONDS, RETRY_SECONDS * 2 ** (tries - 1))
            self._retry_at[update_id] = loop.time() + delay

    def _advance(self, fetched: Sequence[Update]) -> None:
        """The offset: past every update handled, up to the first one not yet."""
        for update in sorted(fetched, key=lambda u: u.update_id):
            uid = update.update_id
            if self._offset is not None and uid < self._offset:
                continue
            if uid not in self._handled:
                return
            self._handled.discard(uid)
            self._offset = uid + 1

    async def run(self) -> None:
        backoff = RETRY_SECONDS
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            waiting = bool(self._tasks) or bool(self._retry_at)
            try:
                updates = await self._bot(
                    GetUpdates(
                        offset=self._offset,
                        # While updates are unacknowledged Telegram answers at
                        # once with them again: poll briefly instead of long.
                        timeout=0 if waiting else self._timeout,
                        allowed_updates=self._allowed,
                    )
                )
            except TelegramUnauthorizedError:
                raise  # a revoked token: no retry helps, the process must say so
            except TelegramAPIError as exc:
                # 429 (its retry_after), 5xx, a conflict, a hang or a dropped
                # connection: polling never dies of Telegram's weather.
                told = isinstance(exc, TelegramRetryAfter)
                wait = float(exc.retry_after) if isinstance(exc, TelegramRetryAfter) else backoff
                log.warning("getUpdates failed (%s); retrying in %.0fs", type(exc).__name__, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
                if not told:  # Telegram's own retry_after needs no guessing on top
                    backoff = min(RETRY_CAP_SECONDS, backoff * 2)
                continue
            backoff = RETRY_SECONDS
            self._collect()
            now = loop.time()
            for update in updates:
                uid = update.update_id
                if uid in self._tasks or uid in self._handled:
                    continue
                if self._retry_at.get(uid, 0.0) > now:
                    continue
                self._retry_at.pop(uid, None)
                self._tasks[uid] = asyncio.create_task(self._handle(update))
            self._advance(updates)
            if self._tasks or self._retry_at:
                # Something is in flight: wait for it (or a retry's time), not Telegram.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._settled(), 0.5)
        # Confirm what was handled, so the next process does not see it again.
        self._collect()
        if self._offset is not None:
            with contextlib.suppress(Exception):
                await self._bot(GetUpdates(offset=self._offset, timeout=0, limit=1))

    async def _settled(self) -> None:
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(0.5)
