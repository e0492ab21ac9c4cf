"""/start, /help and /balance: answered through the notifier like everything else."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from notifier.v1 import notifier_pb2

router = Router(name="commands")


async def reply(services: Services, message: Message, key: str, text: str) -> None:
    await services.notifier.Send(
        notifier_pb2.SendRequest(
            idempotency_key=f"{key}:{message.chat.id}:{message.message_id}",
            chat_id=message.chat.id,
            text=text,
            chat_kind=(
                notifier_pb2.CHAT_KIND_PRIVATE
                if message.chat.type == "private"
                else notifier_pb2.CHAT_KIND_GROUP
            ),
        ),
        timeout=10,
    )


async def _balance(services: Services, user_id: int) -> billing_pb2.GetBalanceResponse:
    return await services.billing.GetBalance(
        billing_pb2.GetBalanceRequest(user_id=user_id), timeout=5
    )


@router.message(CommandStart())
async def on_start(message: Message, services: Services, lang: str) -> None:
    assert message.from_user is not None
    balance = await _balance(services, message.from_user.id)
    await reply(services, message, "start", t(lang, "welcome", balance=balance.balance_credits))


@router.message(Command("help"))
async def on_help(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "help", t(lang, "help"))


@router.message(Command("balance"))
async def on_balance(message: Message, services: Services, lang: str) -> None:
    assert message.from_user is not None
    balance = await _balance(services, message.from_user.id)
    minutes = balance.seconds_available // 60
    await reply(
        services,
        message,
        "balance",
        t(lang, "balance", balance=balance.balance_credits, minutes=minutes),
    )
