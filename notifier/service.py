"""NotifierService servicer: proto in, domain call, proto out. Nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from notifier.domain import Buttons, Notifier, Outgoing
from notifier.v1 import notifier_pb2, notifier_pb2_grpc
from notifier.v1.notifier_pb2 import ButtonRow

Context = grpc.aio.ServicerContext[Any, Any]

_KINDS = {
    notifier_pb2.CHAT_KIND_PRIVATE: "private",
    notifier_pb2.CHAT_KIND_GROUP: "group",
}


def _buttons(rows: Iterable[ButtonRow]) -> Buttons:
    return [[(b.text, b.callback_data) for b in row.buttons] for row in rows]


def _timeout(context: Context) -> float | None:
    left = context.time_remaining()
    return left if left is not None and left < 86_400 else None


class NotifierService(notifier_pb2_grpc.NotifierServiceServicer):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def Send(
        self, request: notifier_pb2.SendRequest, context: Context
    ) -> notifier_pb2.SendResponse:
        res = await self._notifier.send(
            Outgoing(
                idempotency_key=request.idempotency_key,
                chat_id=request.chat_id,
                text=request.text,
                html=request.parse_mode == notifier_pb2.PARSE_MODE_HTML,
                reply_to=request.reply_to_message_id,
                buttons=_buttons(request.buttons),
                chat_kind=_KINDS.get(request.chat_kind, ""),
            ),
            _timeout(context),
        )
        return notifier_pb2.SendResponse(message_id=res.message_id, message_ids=res.message_ids)

    async def Edit(
        self, request: notifier_pb2.EditRequest, context: Context
    ) -> notifier_pb2.EditResponse:
        res = await self._notifier.edit(
            request.idempotency_key,
            request.chat_id,
            request.message_id,
            request.text,
            html=request.parse_mode == notifier_pb2.PARSE_MODE_HTML,
            buttons=_buttons(request.buttons),
            chat_kind=_KINDS.get(request.chat_kind, ""),
            time_left=_timeout(context),
        )
        return notifier_pb2.EditResponse(message_id=res.message_id, coalesced=res.coalesced)

    async def SendDocument(
        self, request: notifier_pb2.SendDocumentRequest, context: Context
    ) -> notifier_pb2.SendDocumentResponse:
        mid = await self._notifier.send_document(
            request.idempotency_key,
            request.chat_id,
            request.filename,
            request.content,
            caption=request.caption,
            reply_to=request.reply_to_message_id,
            chat_kind=_KINDS.get(request.chat_kind, ""),
            time_left=_timeout(context),
        )
        return notifier_pb2.SendDocumentResponse(message_id=mid)

    async def Delete(
        self, request: notifier_pb2.DeleteRequest, context: Context
    ) -> notifier_pb2.DeleteResponse:
        deleted = await self._notifier.delete(
            request.idempotency_key, request.chat_id, request.message_id, _timeout(context)
        )
        return notifier_pb2.DeleteResponse(deleted=deleted)

    async def AnswerCallback(
        self, request: notifier_pb2.AnswerCallbackRequest, context: Context
    ) -> notifier_pb2.AnswerCallbackResponse:
        await self._notifier.answer_callback(
            request.idempotency_key,
            request.callback_query_id,
            request.text,
            request.show_alert,
            _timeout(context),
        )
        return notifier_pb2.AnswerCallbackResponse()
