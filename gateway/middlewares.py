"""Outer middlewares: a root span per update, then the user and their language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import lang_of
from voxmesh.telemetry import current_trace_id

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

_MEDIA = ("voice", "audio", "video", "video_note", "document")


class TracingMiddleware(BaseMiddleware):
    """One trace per Telegram update: every later span is its descendant.

    Polled updates get an INTERNAL root span; a webhook delivery is a request
    Telegram made to us, so there it is a SERVER span.
    """

    def __init__(self, *, webhook: bool = False) -> None:
        self._kind = SpanKind.SERVER if webhook else SpanKind.INTERNAL
        self._tracer = trace.get_tracer("voxmesh.gateway")

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        update_type = event.event_type
        attributes: dict[str, Any] = {
            "telegram.update_id": event.update_id,
            "telegram.update_type": update_type,
        }
        message = event.message
        if message is not None:
            attributes["telegram.chat_type"] = message.chat.type
            for kind in _MEDIA:
                media = getattr(message, kind, None)
                if media is not None:
                    attributes["telegram.media_type"] = kind
                    duration = getattr(media, "duration", None)
                    if duration is not None:
                        attributes["telegram.media_duration_s"] = duration
        with self._tracer.start_as_current_span(
            f"telegram.update/{update_type}", kind=self._kind, attributes=attributes
        ):
            data["trace_id"] = current_trace_id()
            return await handler(event, data)


class UserMiddleware(BaseMiddleware):
    """Makes sure billing knows the user; injects ``lang`` and ``account``."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        data["lang"] = lang_of(user.language_code if user else None)
        if user is not None and not user.is_bot:
            response = await self._services.billing.EnsureUser(
                billing_pb2.EnsureUserRequest(
                    user_id=user.id,
                    username=(user.username or "")[:64],
                    language_code=(user.language_code or "")[:16],
                ),
                timeout=5,
            )
            data["account"] = response.user
            data["account_created"] = response.created
        return await handler(event, data)
