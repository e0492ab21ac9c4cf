"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from gateway.replies import reply


async def on_start(
    message: Message, services: Services, lang: str, account_created: bool = False
) -> None:
    assert message.from_user is not None
    balance = await services.billing.GetBalance(
        billing_pb2.GetBalanceRequest(user_id=message.from_user.id), timeout=5
    )
    # A user billing has just created sees the free trial they were given.
    key = "welcome" if account_created else "welcome_back"
    text = t(lang, key, balance=balance.balance_credits, minutes=balance.seconds_available // 60)
    await reply(services, message, "start", text)


async def on_help(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "help", t(lang, "help"))


def make_router() -> Router:
    router = Router(name="start")
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    return router
