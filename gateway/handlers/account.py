"""/balance and /history (paged with inline buttons)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from gateway.replies import Buttons, answer_callback, edit_from_callback, reply

HISTORY_PAGE_SIZE = 5
# Callback data: "h:" + ListTransactions page token ("" = the newest page).
HISTORY_PREFIX = "h:"

_KINDS = {
    billing_pb2.TRANSACTION_KIND_TOP_UP: "tx_top_up",
    billing_pb2.TRANSACTION_KIND_CAPTURE: "tx_capture",
    billing_pb2.TRANSACTION_KIND_REFUND: "tx_refund",
    billing_pb2.TRANSACTION_KIND_GRANT: "tx_grant",
    billing_pb2.TRANSACTION_KIND_TRIAL: "tx_trial",
}


async def on_balance(message: Message, services: Services, lang: str) -> None:
    assert message.from_user is not None
    balance = await services.billing.GetBalance(
        billing_pb2.GetBalanceRequest(user_id=message.from_user.id), timeout=5
    )
    minutes = balance.seconds_available / 60
    text = t(lang, "balance", balance=balance.balance_credits, minutes=minutes)
    await reply(services, message, "balance", text)


def render_history(
    lang: str, page: billing_pb2.ListTransactionsResponse, token: str
) -> tuple[str, Buttons]:
    """The page as text, with Older/Newest buttons where there is somewhere to go."""
    if not page.transactions:
        return t(lang, "history_empty"), []
    lines = [t(lang, "history_title")]
    for tx in page.transactions:
        when = tx.create_time.ToDatetime()
        kind = t(lang, _KINDS.get(tx.kind, "tx_other"))
        line = t(
            lang,
            "history_row",
            when=f"{when:%Y-%m-%d %H:%M}",
            kind=kind,
            sign="-" if tx.amount_credits < 0 else "+",
            amount=abs(tx.amount_credits),
            balance=tx.balance_after_credits,
        )
        lines.append(line)
    row: list[tuple[str, str]] = []
    if token:
        row.append((t(lang, "history_newest"), HISTORY_PREFIX))
    if page.next_page_token:
        row.append((t(lang, "history_older"), HISTORY_PREFIX + page.next_page_token))
    return "\n".join(lines), [row] if row else []


async def _page(
    services: Services, user_id: int, token: str
) -> billing_pb2.ListTransactionsResponse:
    return await services.billing.ListTransactions(
        billing_pb2.ListTransactionsRequest(
            user_id=user_id, page_size=HISTORY_PAGE_SIZE, page_token=token
        ),
        timeout=5,
    )


async def on_history_in_group(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "history", t(lang, "history_private"), quote=True)


async def on_history(message: Message, services: Services, lang: str) -> None:
    assert message.from_user is not None
    page = await _page(services, message.from_user.id, "")
    text, buttons = render_history(lang, page, "")
    await reply(services, message, "history", text, buttons=buttons)


async def on_history_page(query: CallbackQuery, services: Services, lang: str) -> None:
    assert query.data is not None
    token = query.data.removeprefix(HISTORY_PREFIX)
    page = await _page(services, query.from_user.id, token)
    text, buttons = render_history(lang, page, token)
    await edit_from_callback(services, query, text, buttons=buttons)
    await answer_callback(services, query)


def make_router() -> Router:
    router = Router(name="account")
    router.message.register(on_balance, Command("balance"))
    router.message.register(on_history_in_group, Command("history"), F.chat.type != "private")
    router.message.register(on_history, Command("history"))
    router.callback_query.register(on_history_page, F.data.startswith(HISTORY_PREFIX))
    return router
