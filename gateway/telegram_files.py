"""Downloads a Telegram file as a stream of chunks (never whole in memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from gateway.pipeline import FileTooBigError

CHUNK_BYTES = 256 * 1024


class TelegramFiles:
    def __init__(self, bot: Bot, *, limit: int, timeout: int = 300) -> None:
        self.bot = bot
        self.limit = limit
        self.timeout = timeout

    async def stream(self, file_id: str) -> AsyncIterator[bytes]:
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
        url = self.bot.session.api.file_url(self.bot.token, info.file_path)
        async for chunk in self.bot.session.stream_content(
            url, timeout=self.timeout, chunk_size=CHUNK_BYTES
        ):
            yield chunk
