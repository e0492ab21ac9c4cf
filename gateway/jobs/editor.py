"""Live edits of a job's status message while its text arrives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096

# Sends one edit: (a key unique to this edit, the text).
EditFn = Callable[[str, str], Awaitable[None]]


class LiveEditor:
    """Edits a message with the text so far, at most once per interval.

    Runs beside the stream so a slow edit (the notifier keeps Telegram's
    1 message/s per chat) never holds back reading segments; only the newest
    text is ever sent.
    """

    def __init__(self, edit: EditFn, interval: float) -> None:
        self._edit = edit
        self._interval = interval
        self._latest = ""
        self._sent = ""
        self._seq = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._inflight: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._loop())

    def update(self, text: str) -> None:
        if len(text) > TELEGRAM_TEXT_LIMIT:
            text = "…" + text[-(TELEGRAM_TEXT_LIMIT - 1) :]
        self._latest = text
        self._changed.set()

    async def _loop(self) -> None:
        while not self._closing:
            await self._changed.wait()
            self._changed.clear()
            if self._closing or self._latest == self._sent:
                continue
            text = self._latest
            self._seq += 1
            started = time.monotonic()
            # Shielded: cancelling an edit the notifier may already have
            # queued could let it land after the final text.
            self._inflight = asyncio.ensure_future(self._edit(f"live{self._seq}", text))
            try:
                await asyncio.shield(self._inflight)
                self._sent = text
            except grpc.aio.AioRpcError as exc:
                log.info("live edit skipped: %s", exc.code())
            finally:
                self._inflight = None
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def close(self) -> None:
        """Stop editing; an edit already sent is awaited so it cannot overtake the final text."""
        self._closing = True
        self._changed.set()
        inflight = self._inflight
        if inflight is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(inflight), 30)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
