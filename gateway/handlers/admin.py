"""/stats, /grant, /ban, /unban, /refund: forwarded to billing, which checks the role.

The gateway keeps no list of admins: billing answers PERMISSION_DENIED
(NOT_ADMIN) for anyone else, and this router's error handler turns that
into a short reply.
"""

from __future__ import annotations

import grpc
from aiogram import Bot, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, ExceptionTypeFilter
from aiogram.types import ErrorEvent, Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from gateway.payments import PROVIDER
from gateway.replies import reply
from voxmesh.errors import error_details

ADMIN_COMMANDS = ("stats", "grant", "ban", "unban", "refund")


def _ints(args: str | None, count: int) -> list[int] | None:
    parts = (args or "").split()
    if len(parts) != count or not all(p.isdigit() and int(p) > 0 for p in parts):
        return None
    return [int(p) for p in parts]


async def on_stats(message: Message, services: Services, lang: str) -> None:
    assert message.from_user is not None
    s = await services.billing.Stats(
        billing_pb2.StatsRequest(actor_user_id=message.from_user.id), timeout=10
    )
    text = t(
        lang,
        "stats",
        users=s.users,
        holds=s.holds_pending,
        held=s.credits_held,
        captured=s.credits_captured,
        topped=s.credits_topped_up,
    )
    await reply(services, message, "stats", text)


async def on_grant(message: Message, command: CommandObject, services: Services, lang: str) -> None:
    assert message.from_user is not None
    values = _ints(command.args, 2)
    if values is None:
        await reply(services, message, "grant", t(lang, "usage_grant"))
        return
    user_id, amount = values
    result = await services.billing.Grant(
        billing_pb2.GrantRequest(
            idempotency_key=f"grant:{message.chat.id}:{message.message_id}",
            actor_user_id=message.from_user.id,
            user_id=user_id,
            amount_credits=amount,
        ),
        timeout=10,
    )
    # A user id is a name, not a quantity: no digit grouping.
    text = t(lang, "granted", credits=amount, user=str(user_id), balance=result.balance_credits)
    await reply(services, message, "grant", text)


async def on_ban(message: Message, command: CommandObject, services: Services, lang: str) -> None:
    assert message.from_user is not None
    values = _ints(command.args, 1)
    if values is None:
        await reply(services, message, "role", t(lang, "usage_user", command=command.command))
        return
    ban = command.command == "ban"
    await services.billing.SetRole(
        billing_pb2.SetRoleRequest(
            actor_user_id=message.from_user.id,
            user_id=values[0],
            role=billing_pb2.ROLE_BANNED if ban else billing_pb2.ROLE_USER,
        ),
        timeout=10,
    )
    text = t(lang, "user_banned" if ban else "user_unbanned", user=str(values[0]))
    await reply(services, message, "role", text)


async def on_refund(
    message: Message, command: CommandObject, bot: Bot, services: Services, lang: str
) -> None:
    """Give a Stars payment back: billing takes its credits back (once per charge,
    refused if they were spent), then Telegram returns the Stars. Both steps are
    idempotent, so an admin can simply repeat a refund that broke half-way."""
    assert message.from_user is not None
    charge = (command.args or "").strip()
    if not charge or len(charge) > 128 or " " in charge:
        await reply(services, message, "refund", t(lang, "usage_refund"))
        return
    actor = await services.billing.GetUser(
        billing_pb2.GetUserRequest(user_id=message.from_user.id), timeout=10
    )
    if actor.user.role != billing_pb2.ROLE_ADMIN:
        await reply(services, message, "refund", t(lang, "admins_only"))
        return
    try:
        taken = await services.billing.RefundTopUp(
            billing_pb2.RefundTopUpRequest(
                idempotency_key=f"refund-topup:{charge}",
                provider=PROVIDER,
                provider_charge_id=charge,
                reason=f"refunded by admin {message.from_user.id}",
            ),
            timeout=10,
        )
    except grpc.aio.AioRpcError as exc:
        key = {"NOT_FOUND": "refund_unknown", "BALANCE_TOO_LOW": "refund_spent"}.get(
            error_details(exc).reason
        )
        if key is None:
            raise
        await reply(services, message, "refund", t(lang, key))
        return
    try:
        # Direct Bot call, as for invoices (gateway.handlers.payments).
        await bot.refund_star_payment(user_id=taken.user_id, telegram_payment_charge_id=charge)
    except TelegramBadRequest as exc:
        if "CHARGE_ALREADY_REFUNDED" not in exc.message:
            raise
    text = t(
        lang,
        "refund_done",
        credits=abs(taken.transaction.amount_credits),
        user=str(taken.user_id),
        balance=taken.balance_credits,
    )
    await reply(services, message, "refund", text)


async def on_admin_error(event: ErrorEvent, services: Services, lang: str = "en") -> bool:
    """NOT_ADMIN and an unknown target user get a short reply; anything else goes on."""
    assert isinstance(event.exception, grpc.aio.AioRpcError)
    reason = error_details(event.exception).reason
    message = event.update.message
    key = {"NOT_ADMIN": "admins_only", "NOT_FOUND": "no_such_user"}.get(reason)
    # Errors of every router come here: answer only for our own commands.
    if key is None or message is None or not _is_admin_command(message.text):
        raise SkipHandler()
    await reply(services, message, "admin-error", t(lang, key))
    return True


def _is_admin_command(text: str | None) -> bool:
    word = (text or "").split(maxsplit=1)[0] if text else ""
    return word.split("@")[0] in {f"/{c}" for c in ADMIN_COMMANDS}


def make_router() -> Router:
    router = Router(name="admin")
    router.message.register(on_stats, Command("stats"))
    router.message.register(on_grant, Command("grant"))
    router.message.register(on_ban, Command("ban", "unban"))
    router.message.register(on_refund, Command("refund"))
    router.errors.register(on_admin_error, ExceptionTypeFilter(grpc.aio.AioRpcError))
    return router
