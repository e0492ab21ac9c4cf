"""Gateway wiring: the bot, its routers and middlewares, health and metrics over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import ErrorEvent, TelegramObject
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from gateway.clients import Services
from gateway.config import GatewaySettings
from gateway.handlers import routers
from gateway.i18n import lang_of, t
from gateway.middlewares import TracingMiddleware, UserMiddleware
from gateway.pipeline import Pipeline
from gateway.telegram_files import TelegramFiles
from notifier.v1 import notifier_pb2
from voxmesh import logging as vlogging
from voxmesh import telemetry
from voxmesh.config import ConfigError, parse_addr
from voxmesh.telemetry import current_trace_id

log = logging.getLogger(__name__)


class InFlight(BaseMiddleware):
    """Counts updates being handled, so shutdown can wait for them to finish."""

    def __init__(self, gauge: Gauge) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self._gauge = gauge

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.count += 1
        self.idle.clear()
        self._gauge.inc()
        try:
            return await handler(event, data)
        finally:
            self.count -= 1
            self._gauge.dec()
            if self.count == 0:
                self.idle.set()


def make_bot(settings: GatewaySettings) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.api_base, is_local=settings.api_local)
    )
    return Bot(settings.bot_token, session=session)


def build_dispatcher(
    services: Services, pipeline: Pipeline, registry: CollectorRegistry, *, webhook: bool = False
) -> tuple[Dispatcher, InFlight]:
    dp = Dispatcher()
    updates = Counter(
        "voxmesh_gateway_updates", "Telegram updates handled.", ["type"], registry=registry
    )
    in_flight = InFlight(
        Gauge("voxmesh_gateway_updates_in_flight", "Updates being handled.", registry=registry)
    )

    class _Count(BaseMiddleware):
        async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
            updates.labels(event.event_type).inc()
            return await handler(event, data)

    dp.update.outer_middleware(in_flight)
    dp.update.outer_middleware(_Count())
    dp.update.outer_middleware(TracingMiddleware(webhook=webhook))
    dp.update.outer_middleware(UserMiddleware(services))
    dp["services"] = services
    dp["pipeline"] = pipeline
    dp.include_routers(*routers())

    @dp.errors()
    async def on_error(event: ErrorEvent) -> bool:
        ref = current_trace_id() or "-"
        log.error("update failed (trace %s)", ref, exc_info=event.exception)
        message = event.update.message
        if message is None:
            return True
        lang = lang_of(message.from_user.language_code if message.from_user else None)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await services.notifier.Send(
                notifier_pb2.SendRequest(
                    idempotency_key=f"error:{message.chat.id}:{message.message_id}",
                    chat_id=message.chat.id,
                    text=t(lang, "failed_no_hold", ref=ref),
                    reply_to_message_id=message.message_id,
                ),
                timeout=10,
            )
        return True

    return dp, in_flight


def http_app(registry: CollectorRegistry, ready: Callable[[], bool]) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready" if ready() else "starting", status=200 if ready() else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def run(settings: GatewaySettings, *, grace: float = 30.0) -> None:
    registry = CollectorRegistry()
    services = Services.connect(
        settings.billing_target, settings.transcriber_target, settings.notifier_target
    )
    bot = make_bot(settings)
    pipeline = Pipeline(
        services,
        TelegramFiles(bot, limit=settings.download_limit),
        download_limit=settings.download_limit,
        job_base_seconds=settings.job_base_seconds,
        job_seconds_per_audio_second=settings.job_seconds_per_audio_second,
        edit_interval_seconds=settings.edit_interval_seconds,
        text_document_threshold=settings.text_document_threshold,
    )
    dp, in_flight = build_dispatcher(services, pipeline, registry)
    is_ready = False
    runner = web.AppRunner(http_app(registry, lambda: is_ready))
    await runner.setup()
    host, port = parse_addr("GATEWAY_HTTP_ADDR", settings.http_addr)
    await web.TCPSite(runner, host, port).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=10)
    )
    is_ready = True
    log.info("gateway polling %s", telemetry.redact(settings.api_base))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({polling, stopper}, return_when=asyncio.FIRST_COMPLETED)
    is_ready = False
    if not polling.done():
        await dp.stop_polling()
    # Let jobs in flight finish (their holds are captured or released) within the grace.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(in_flight.idle.wait(), grace)
    with contextlib.suppress(Exception):
        await polling
    await bot.session.close()
    await services.close()
    await runner.cleanup()


def main() -> None:
    try:
        settings = GatewaySettings.from_env(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"gateway: {exc}") from None
    vlogging.setup("gateway", fmt=settings.telemetry.log_format, level=settings.telemetry.log_level)
    provider = telemetry.setup(settings.telemetry)
    try:
        asyncio.run(run(settings))
    finally:
        provider.shutdown()
