"""Every word the bot says goes through the notifier: these are the few shapes it takes.

Idempotency keys derive from the update that caused the reply (chat and
message id, or the callback query id), so a re-delivered update never
produces a second message.

While Telegram refuses (a 429 longer than the call's deadline), the notifier
keeps a message in its durable outbox and answers UNAVAILABLE with
``queued``: the message will go out, so for these replies that is success,
not a failure to report (which would queue a second, false message).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import grpc
from aiogram.types import CallbackQuery, Chat, Message

from gateway.clients import Services
from notifier.v1 import notifier_pb2
from voxmesh.errors import error_details

log = logging.getLogger(__name__)

Buttons = Sequence[Sequence[tuple[str, str]]]  # rows of (label, callback data)

TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


def is_queued(err: grpc.aio.AioRpcError) -> bool:
    """The notifier kept the request in its outbox: it will be delivered later."""
    details = error_details(err)
    return (
        details.code == grpc.StatusCode.UNAVAILABLE
        and (details.metadata or {}).get("queued") == "true"
    )


async def _unless_queued(call: Awaitable[T]) -> T | None:
    try:
        return await call
    except grpc.aio.AioRpcError as err:
        if not is_queued(err):
            raise
        log.info("reply queued in the notifier's outbox; it goes out when Telegram lets it")
        return None


def chat_kind(chat: Chat) -> notifier_pb2.ChatKind:
    if chat.type == "private":
        return notifier_pb2.CHAT_KIND_PRIVATE
    return notifier_pb2.CHAT_KIND_GROUP


def button_rows(buttons: Buttons | None) -> list[notifier_pb2.ButtonRow]:
    return [
        notifier_pb2.ButtonRow(
            buttons=[notifier_pb2.Button(text=text, callback_data=data) for text, data in row]
        )
        for row in buttons or ()
    ]


async def reply(
    services: Services,
    message: Message,
    key: str,
    text: str,
    *,
    buttons: Buttons | None = None,
    quote: bool = False,
    idempotency_key: str = "",
) -> int:
    """Answer ``message`` in its chat; ``quote`` makes it a reply to it.

    The idempotency key is ``key`` plus the message's chat and id unless
    ``idempotency_key`` names the event itself (a payment's charge id).
    Returns the message's id, or 0 while it waits in the notifier's outbox.
    """
    response = await _unless_queued(
        services.notifier.Send(
            notifier_pb2.SendRequest(
                idempotency_key=idempotency_key or f"{key}:{message.chat.id}:{message.message_id}",
                chat_id=message.chat.id,
                text=text,
                reply_to_message_id=message.message_id if quote else 0,
                buttons=button_rows(buttons),
                chat_kind=chat_kind(message.chat),
            ),
            timeout=TIMEOUT_SECONDS,
        )
    )
    return int(response.message_id) if response is not None else 0


async def edit_from_callback(
    services: Services, query: CallbackQuery, text: str, *, buttons: Buttons | None = None
) -> None:
    """Replace the text (and buttons) of the message whose button was pressed."""
    message = query.message
    if message is None:
        return
    await _unless_queued(
        services.notifier.Edit(
            notifier_pb2.EditRequest(
                idempotency_key=f"cb-edit:{query.id}",
                chat_id=message.chat.id,
                message_id=message.message_id,
                text=text,
                buttons=button_rows(buttons),
                chat_kind=chat_kind(message.chat),
            ),
            timeout=TIMEOUT_SECONDS,
        )
    )


async def answer_callback(
    services: Services, query: CallbackQuery, text: str = "", *, alert: bool = False
) -> None:
    """Stop the button's spinner (every press must be answered)."""
    await services.notifier.AnswerCallback(
        notifier_pb2.AnswerCallbackRequest(
            idempotency_key=f"cb-answer:{query.id}",
            callback_query_id=query.id,
            text=text[:200],
            show_alert=alert,
        ),
        timeout=TIMEOUT_SECONDS,
    )
