"""A private message no other handler took: say what the bot is for."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from gateway.clients import Services
from gateway.i18n import t
from gateway.replies import reply


async def on_other(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "hint", t(lang, "hint"))


def make_router() -> Router:
    router = Router(name="fallback")
    # Not payments or service messages: only what a person typed or sent.
    router.message.register(
        on_other,
        F.chat.type == "private",
        F.text | F.photo | F.sticker | F.document,
    )
    return router
