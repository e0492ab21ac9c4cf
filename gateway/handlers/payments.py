"""/buy with Telegram Stars: package buttons, invoice, pre-checkout, credit once.

Two calls go to Telegram directly through the aiogram Bot, not through the
notifier: ``sendInvoice`` and ``answerPreCheckoutQuery``. The notifier's
contract has no such RPCs (it sends, edits and answers button presses), and
a pre-checkout query must be answered within 10 seconds, with no outbox in
between. Everything else the user sees still goes through the notifier.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery
from redis.exceptions import RedisError

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.config import GatewaySettings, StarsPackage
from gateway.i18n import t
from gateway.payments import Payment, Payments
from gateway.polling import NotAcceptedError
from gateway.replies import answer_callback, reply

log = logging.getLogger(__name__)


CURRENCY = "XTR"  # Telegram Stars
BUY_PREFIX = "buy:"
PAYLOAD_PREFIX = "credits:"


def payload_of(package: StarsPackage) -> str:
    """The invoice payload: what was offered, so the credit matches the price paid."""
    return f"{PAYLOAD_PREFIX}{package.stars}:{package.credits}"


def package_of(payload: str, offered: tuple[StarsPackage, ...]) -> StarsPackage | None:
    """The package a payload names, if it is still on offer."""
    stars, _, amount = payload.removeprefix(PAYLOAD_PREFIX).partition(":")
    if not payload.startswith(PAYLOAD_PREFIX) or not stars.isdigit() or not amount.isdigit():
        return None
    package = StarsPackage(int(stars), int(amount))
    return package if package in offered else None


def _minutes(amount: int, price_per_minute: int) -> float:
    return amount / max(1, price_per_minute)


async def on_buy(
    message: Message, services: Services, settings: GatewaySettings, lang: str
) -> None:
    buttons = [
        [
            (
                t(lang, "buy_button", stars=p.stars, credits=p.credits),
                f"{BUY_PREFIX}{p.stars}:{p.credits}",
            )
        ]
        for p in settings.packages
    ]
    await reply(services, message, "buy", t(lang, "buy_menu"), buttons=buttons)


async def on_package(
    query: CallbackQuery, bot: Bot, services: Services, settings: GatewaySettings, lang: str
) -> None:
    assert query.data is not None
    package = package_of(PAYLOAD_PREFIX + query.data.removeprefix(BUY_PREFIX), settings.packages)
    if package is None or query.message is None:
        await answer_callback(services, query, t(lang, "offer_expired"), alert=True)
        return
    # The price of a minute, to tell the buyer what the credits are worth.
    quote = await services.billing.Quote(billing_pb2.QuoteRequest(duration_seconds=60), timeout=5)
    title = t(lang, "invoice_title", credits=package.credits)
    # Direct Bot call: see the module docstring.
    await bot.send_invoice(
        chat_id=query.message.chat.id,
        title=title,
        description=t(
            lang,
            "invoice_description",
            credits=package.credits,
            minutes=_minutes(package.credits, quote.amount_credits),
        ),
        payload=payload_of(package),
        currency=CURRENCY,
        prices=[LabeledPrice(label=title, amount=package.stars)],
    )
    await answer_callback(services, query)


async def on_pre_checkout(
    query: PreCheckoutQuery, bot: Bot, settings: GatewaySettings, lang: str
) -> None:
    package = package_of(query.invoice_payload, settings.packages)
    ok = package is not None and query.currency == CURRENCY and query.total_amount == package.stars
    # Direct Bot call: see the module docstring.
    await bot.answer_pre_checkout_query(
        pre_checkout_query_id=query.id,
        ok=ok,
        error_message=None if ok else t(lang, "offer_expired"),
    )


async def on_paid(message: Message, payments: Payments, lang: str) -> None:
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    stars, _, amount = payment.invoice_payload.removeprefix(PAYLOAD_PREFIX).partition(":")
    if not amount.isdigit() or not stars.isdigit() or int(stars) != payment.total_amount:
        # Only our own invoices carry this payload; anything else is a bug to look at.
        log.error("payment %s has an unexpected payload", payment.telegram_payment_charge_id)
        raise ValueError("unexpected invoice payload")
    paid = Payment(
        charge_id=payment.telegram_payment_charge_id,
        user_id=message.from_user.id,
        credits=int(amount),
        stars=payment.total_amount,
        chat_id=message.chat.id,
        message_id=message.message_id,
        lang=lang,
    )
    # Recorded before the update is acknowledged; if billing cannot take it
    # now, the reconciler credits it later (gateway.payments). Either way the
    # user hears once, when it lands.
    try:
        await payments.record(paid)
    except RedisError as exc:
        raise NotAcceptedError("payment not recorded") from exc
    await payments.credit(paid)


def make_router() -> Router:
    router = Router(name="payments")
    router.message.register(on_buy, Command("buy"))
    router.callback_query.register(on_package, F.data.startswith(BUY_PREFIX))
    router.pre_checkout_query.register(on_pre_checkout)
    router.message.register(on_paid, F.successful_payment)
    return router
