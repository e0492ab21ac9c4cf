"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.handlers.settings import interface_buttons
from gateway.i18n import offers_choice, t
from gateway.prefs import Prefs
from gateway.replies import reply


async def on_start(
    message: Message, services: Services, prefs: Prefs, lang: str, account_created: bool = False
) -> None:
    user = message.from_user
    assert user is not None
    balance = await services.billing.GetBalance(
        billing_pb2.GetBalanceRequest(user_id=user.id), timeout=5
    )
    # A user billing has just created sees the free trial they were given.
    key = "welcome" if account_created else "welcome_back"
    text = t(lang, key, balance=balance.balance_credits, minutes=balance.seconds_available / 60)
    buttons = None
    # Ukrainian, Belarusian or Kazakh Telegram: English by default, Russian a tap away.
    if offers_choice(user.language_code) and not (await prefs.user(user.id)).interface_language:
        text += "\n\n" + t(lang, "interface_offer")
        buttons = interface_buttons(lang, "")
    await reply(services, message, "start", text, buttons=buttons)


async def on_help(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "help", t(lang, "help"))


def make_router() -> Router:
    router = Router(name="start")
    router.message.register(on_start, CommandStart())
    router.message.register(on_help, Command("help"))
    return router
