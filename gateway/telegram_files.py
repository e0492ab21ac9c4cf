"""Downloads a Telegram file as a stream of chunks (never whole in memory).

From the cloud Bot API (files up to 20 MB) over HTTP; from a self-hosted Bot
API server in ``--local`` mode (TELEGRAM_API_LOCAL=true, up to 2 GB), which
answers getFile with an absolute path on its own disk, straight from that
disk (the gateway mounts the server's working directory), else over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
from collections.abc import AsyncGenerator, AsyncIterator

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from gateway.jobs.stream import FileTooBigError, FileUnavailableError

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


class TelegramFiles:
    def __init__(
        self, bot: Bot, *, limit: int, timeout: int = 300, attempts: int = 5, backoff: float = 0.5
    ) -> None:
        self.bot = bot
        self.limit = limit
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    async def stream(self, file_id: str) -> AsyncIterator[bytes]:
        """The file in chunks; a transient failure before the first chunk is retried
        (a 429, a 5xx, a dropped connection): the job need not fail for a blip.

        Five tries over about 7.5 s; past them, or once bytes were handed on, a
        transient failure is FileUnavailableError (the job tries again later).
        """
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async for chunk in self._stream_once(file_id):
                    started = True
                    yield chunk
                return
            except _TRANSIENT as exc:
                if not _transient(exc):
                    raise
                if started or attempt >= self.attempts:
                    raise FileUnavailableError(
                        f"{type(exc).__name__} after {attempt} tries"
                    ) from exc
                delay = self.backoff * 2 ** (attempt - 1)
                if isinstance(exc, TelegramRetryAfter):
                    delay = max(delay, float(exc.retry_after))
                log.info("file download failed (%s), retry in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def _stream_once(self, file_id: str) -> AsyncIterator[bytes]:
        try:
            info = await self.bot.get_file(file_id)
        except TelegramBadRequest as exc:
            if "too big" in exc.message:
                raise FileTooBigError(file_id) from exc
            raise
        if info.file_size and info.file_size > self.limit:
            raise FileTooBigError(file_id)
        if info.file_path is None:
            raise FileTooBigError(file_id)
        local = pathlib.Path(info.file_path)
        source: AsyncGenerator[bytes, None]
        if self.bot.session.api.is_local and local.is_absolute():
            source = read_chunks(local)
        else:
            url = self.bot.session.api.file_url(self.bot.token, info.file_path)
            source = self.bot.session.stream_content(
                url, timeout=self.timeout, chunk_size=CHUNK_BYTES
            )
        # file_size is Telegram's word (and may be missing): the bytes themselves
        # are counted, and the download stops (its connection or file closed at
        # once) as soon as they pass the limit the transcriber's spool is sized for.
        received = 0
        async with contextlib.aclosing(source) as chunks:
            async for chunk in chunks:
                received += len(chunk)
                if received > self.limit:
                    raise FileTooBigError(f"{file_id}: more than {self.limit} bytes")
                yield chunk


_TRANSIENT = (
    TelegramRetryAfter,
    TelegramServerError,
    TelegramNetworkError,
    aiohttp.ClientError,
    TimeoutError,
)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status == 429 or exc.status >= 500
    return True


async def read_chunks(path: pathlib.Path) -> AsyncGenerator[bytes, None]:
    """A local file in chunks, read off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            yield chunk
    finally:
        handle.close()
