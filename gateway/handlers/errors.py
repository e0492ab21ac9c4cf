"""The last resort: any failure an update's handling raised becomes one short sentence.

It says that nothing was charged (a job that reserved money releases it and
says so itself, in :mod:`gateway.jobs.saga`) and gives the trace id as the
reference an SRE can look up.
"""

from __future__ import annotations

import contextlib
import logging

import grpc
from aiogram import Bot, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.types import ErrorEvent

from gateway.clients import Services
from gateway.i18n import lang_of, t
from gateway.polling import NotAcceptedError
from gateway.replies import answer_callback, reply
from voxmesh.telemetry import current_trace_id

log = logging.getLogger(__name__)


async def on_error(
    event: ErrorEvent, services: Services, bot: Bot, lang: str | None = None
) -> bool:
    if isinstance(event.exception, NotAcceptedError):
        # Not acknowledged: Telegram delivers it again (gateway.polling).
        raise SkipHandler()
    ref = current_trace_id() or "-"
    log.error("update %s failed (trace %s)", event.update.update_id, ref, exc_info=event.exception)
    update = event.update
    # Telling the user may itself fail (the notifier may be what is down).
    with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError):
        if update.message is not None:
            user = update.message.from_user
            lang = lang or lang_of(user.language_code if user else None)
            # Stars were paid but not credited: never claim nothing was charged.
            key = "payment_failed" if update.message.successful_payment else "failed_no_hold"
            await reply(services, update.message, "error", t(lang, key, ref=ref), quote=True)
        elif update.callback_query is not None:
            query = update.callback_query
            lang = lang or lang_of(query.from_user.language_code)
            await answer_callback(services, query, t(lang, "failed_no_hold", ref=ref), alert=True)
        elif update.pre_checkout_query is not None:
            query_ = update.pre_checkout_query
            lang = lang or lang_of(query_.from_user.language_code)
            # Direct Bot call, as in gateway.handlers.payments: the buyer must not wait.
            with contextlib.suppress(Exception):
                await bot.answer_pre_checkout_query(
                    pre_checkout_query_id=query_.id,
                    ok=False,
                    error_message=t(lang, "failed_no_hold", ref=ref),
                )
    return True


def make_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
