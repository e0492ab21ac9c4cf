"""The Bot API, through aiogram's Bot, reduced to what delivery needs.

Every call ends in one of three ways: a result, :class:`Permanent` (Telegram
refused; retrying the same request cannot help) or :class:`Transient` (429,
5xx, network trouble or a timeout; retry later, ``retry_after`` when Telegram
said how long). The bot token is part of every Bot API URL, so every text
that leaves this module passes through :meth:`TelegramClient.redact`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
)

from notifier.metrics import NotifierMetrics

T = TypeVar("T")

NOT_MODIFIED = "message is not modified"
# deleteMessage answers these when the message is already gone.
_GONE = ("message to delete not found", "message can't be deleted", "message not found")


class TelegramFailure(Exception):
    """Base of the outcomes that are not a result."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class Permanent(TelegramFailure):
    """Telegram refused the request: 400 (``forbidden`` False) or 403 (True)."""

    def __init__(self, description: str, *, forbidden: bool) -> None:
        super().__init__(description)
        self.forbidden = forbidden


class Transient(TelegramFailure):
    """Worth retrying; ``retry_after`` seconds when Telegram named a wait."""

    def __init__(self, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


Buttons = list[list[tuple[str, str]]]


@dataclass(frozen=True)
class SentMessage:
    message_id: int


def _markup(buttons: Buttons | None) -> InlineKeyboardMarkup | None:
    # No markup on editMessageText removes the keyboard, which is what the
    # contract's "empty removes it" means.
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t, callback_data=d) for t, d in row] for row in buttons
        ]
    )


def _reply(message_id: int) -> ReplyParameters | None:
    if not message_id:
        return None
    # A reply to a message the user has since deleted still goes out.
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


class TelegramClient:
    """A thin async client; one per process, closed on shutdown."""

    def __init__(self, token: str, api_base: str, *, timeout: float) -> None:
        self._token = token
        self._timeout = timeout
        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
        self._bot = Bot(token, session=session)
        self.metrics: NotifierMetrics | None = None

    def redact(self, text: str) -> str:
        return text.replace(self._token, "<bot-token>") if self._token else text

    async def close(self) -> None:
        await self._bot.session.close()

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        html: bool,
        reply_to: int = 0,
        buttons: Buttons | None = None,
    ) -> SentMessage:
        msg = await self._call(
            self._bot.send_message(
                chat_id=chat_id,
                text=text,
                parse_mode="HTML" if html else None,
                reply_parameters=_reply(reply_to),
                reply_markup=_markup(buttons),
                request_timeout=int(self._timeout) or 1,
            )
        )
        return SentMessage(message_id=msg.message_id)

    async def edit_message(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        html: bool,
        buttons: Buttons | None = None,
    ) -> None:
        try:
            await self._call(
                self._bot.edit_message_text(
                    chat_id=chat_id,
                    message_id=message_id,
                    text=text,
                    parse_mode="HTML" if html else None,
                    reply_markup=_markup(buttons),
                    request_timeout=int(self._timeout) or 1,
                )
            )
        except Permanent as err:
            # The text already reads so: the edit's goal holds.
            if not err.forbidden and NOT_MODIFIED in err.description.lower():
                return
            raise

    async def send_document(
        self,
        chat_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str = "",
        reply_to: int = 0,
    ) -> SentMessage:
        msg = await self._call(
            self._bot.send_document(
                chat_id=chat_id,
                document=BufferedInputFile(content, filename=filename),
                caption=caption or None,
                reply_parameters=_reply(reply_to),
                request_timeout=int(self._timeout) or 1,
            )
        )
        return SentMessage(message_id=msg.message_id)

    async def delete_message(self, chat_id: int, message_id: int) -> bool:
        """True when deleted, False when the message was already gone."""
        try:
            return bool(
                await self._call(
                    self._bot.delete_message(
                        chat_id=chat_id,
                        message_id=message_id,
                        request_timeout=int(self._timeout) or 1,
                    )
                )
            )
        except Permanent as err:
            if not err.forbidden and any(g in err.description.lower() for g in _GONE):
                return False
            raise

    async def answer_callback(self, callback_query_id: str, text: str, show_alert: bool) -> None:
        await self._call(
            self._bot.answer_callback_query(
                callback_query_id=callback_query_id,
                text=text or None,
                show_alert=show_alert,
                request_timeout=int(self._timeout) or 1,
            )
        )

    async def _call(self, coro: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(coro, self._timeout + 1.0)
        except TelegramRetryAfter as err:
            if self.metrics is not None:
                self.metrics.telegram_429.inc()
            raise Transient(self.redact(err.message), float(err.retry_after)) from None
        except TelegramForbiddenError as err:
            raise Permanent(self.redact(err.message), forbidden=True) from None
        except (TelegramBadRequest, TelegramNotFound, TelegramEntityTooLarge) as err:
            raise Permanent(self.redact(err.message), forbidden=False) from None
        except TelegramAPIError as err:
            # 5xx, 401, 409, network errors: nothing says the next try fails.
            if self.metrics is not None:
                self.metrics.telegram_failures.labels("transient").inc()
            raise Transient(self.redact(f"{type(err).__name__}: {err.message}")) from None
        except TimeoutError:
            raise Transient("timed out waiting for Telegram") from None
