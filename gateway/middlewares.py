"""Middlewares: a root span per update, per-user order, de-duplication, the user, rate limits.

Outer update middlewares run in the order :func:`gateway.app.build_dispatcher`
registers them; :class:`UserOrderMiddleware` must come before the first one
that awaits I/O, so a user's updates keep their arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import lang_of, t
from gateway.limits import RateLimiter, UpdateDedupe
from gateway.polling import NotAcceptedError
from gateway.prefs import Prefs
from gateway.redis_health import REDIS_DOWN_ERRORS, RedisHealth
from gateway.replies import answer_callback, reply
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


class Gate:
    """A user's turn to have an update handled; ``release()`` lets the next in early."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class UserOrderMiddleware(BaseMiddleware):
    """Handles one user's updates one at a time, in the order they arrived.

    Updates run as concurrent tasks; without this, five notes sent at once
    could reach the job queue in any order, since each first awaits billing
    and Redis. The lock is taken before the first await (asyncio.Lock is
    FIFO), so arrival order is queue order. A handler that goes on to wait
    for something long (a job's turn) releases its gate first.
    """

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        lock, users = self._locks.get(user.id, (asyncio.Lock(), 0))
        self._locks[user.id] = (lock, users + 1)
        try:
            await lock.acquire()
            gate = Gate(lock)
            data["gate"] = gate
            try:
                return await handler(event, data)
            finally:
                gate.release()
        finally:
            lock, users = self._locks[user.id]
            if users == 1:
                del self._locks[user.id]
            else:
                self._locks[user.id] = (lock, users - 1)


class DedupeMiddleware(BaseMiddleware):
    """Drops an update that was already handled (re-delivered); marks one handled
    once its handler returned.

    It is an update's first use of Redis: with ``health``, an update that
    finds Redis down waits here for it to return (nothing was done for it
    yet), instead of failing where not even the user can be told.
    """

    def __init__(
        self, dedupe: UpdateDedupe, duplicates: Counter, health: RedisHealth | None = None
    ) -> None:
        self._dedupe = dedupe
        self._duplicates = duplicates
        self._health = health

    async def _handled(self, update_id: int) -> bool:
        health = self._health
        while True:
            if health is not None:
                await health.wait_up()
            try:
                return await self._dedupe.handled(update_id)
            except REDIS_DOWN_ERRORS:
                if health is None:
                    raise
                health.trip()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        if await self._handled(event.update_id):
            self._duplicates.inc()
            trace.get_current_span().set_attribute("telegram.duplicate", True)
            return None
        result = await handler(event, data)
        with contextlib.suppress(*REDIS_DOWN_ERRORS):
            # Not marked: it may run again, harmlessly (its effects are keyed).
            await self._dedupe.mark_handled(event.update_id)
        return result


class UserMiddleware(BaseMiddleware):
    """Makes sure billing knows the user; injects ``lang`` and ``account``.

    ``lang`` is the interface language the user chose (``/interface``, in the
    dispatcher's ``prefs``), else the one Telegram's ``language_code`` gives.
    """

    def __init__(self, services: Services) -> None:
        self._services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        prefs: Prefs | None = data.get("prefs")
        chosen = ""
        if user is not None and not user.is_bot and prefs is not None:
            chosen = (await prefs.user(user.id)).interface_language
        data["lang"] = lang_of(user.language_code if user else None, chosen)
        if user is not None and not user.is_bot:
            try:
                response = await self._services.billing.EnsureUser(
                    billing_pb2.EnsureUserRequest(
                        user_id=user.id,
                        username=(user.username or "")[:64],
                        language_code=(user.language_code or "")[:16],
                    ),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                # A payment must be recorded now, billing or not (gateway.payments);
                # anything else waits with Telegram until billing is back.
                message = event.message if isinstance(event, Update) else event
                if not (isinstance(message, Message) and message.successful_payment):
                    raise NotAcceptedError("billing unreachable") from exc
            else:
                data["account"] = response.user
                data["account_created"] = response.created
        return await handler(event, data)


class RateLimitMiddleware(BaseMiddleware):
    """At most N messages and button presses a user per minute.

    Payments are never limited: a successful_payment must be credited and a
    pre_checkout_query answered whatever the user did before.
    """

    def __init__(self, limiter: RateLimiter, services: Services, refused: Counter) -> None:
        self._limiter = limiter
        self._services = services
        self._refused = refused

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or (isinstance(event, Message) and event.successful_payment):
            return await handler(event, data)
        verdict = await self._limiter.hit(user.id)
        if verdict.allowed:
            return await handler(event, data)
        self._refused.inc()
        lang = data.get("lang", "en")
        if isinstance(event, CallbackQuery):
            await answer_callback(self._services, event, t(lang, "rate_limited"))
        elif verdict.first_refusal and isinstance(event, Message):
            await reply(self._services, event, "rate", t(lang, "rate_limited"), quote=True)
        return None
