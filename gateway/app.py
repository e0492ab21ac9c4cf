"""Gateway wiring: the bot, its routers and middlewares, Redis, webhook or polling, HTTP.

Long polling by default; ``GATEWAY_MODE=webhook`` serves Telegram's POSTs at
``/webhook`` (checked against TELEGRAM_WEBHOOK_SECRET) beside ``/healthz``,
``/readyz`` and ``/metrics`` on GATEWAY_HTTP_ADDR. SIGTERM: ``/readyz``
turns 503, no new updates are taken, jobs in flight get
GATEWAY_GRACE_SECONDS to finish; what is still running then is cancelled and
its lease let go, so another replica (or this one, restarted) goes on with
it. An update is acknowledged only once handled (:mod:`gateway.polling`;
a webhook answers after the handler). While Redis is down no updates are
taken and ``/readyz`` is 503 (:mod:`gateway.redis_health`). Every replica
runs the reconciler (:mod:`gateway.jobs.reconciler`), which starts the jobs
a restart, a crash or an outage left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, TelegramObject
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from redis.asyncio import Redis

from gateway.clients import Services
from gateway.config import WEBHOOK_PATH, GatewaySettings
from gateway.handlers import routers
from gateway.i18n import COMMANDS
from gateway.jobs.accept import Jobs
from gateway.jobs.cache import TranscriptCache
from gateway.jobs.model import Job, Outcome
from gateway.jobs.queue import JobQueue
from gateway.jobs.reconciler import Reconciler
from gateway.jobs.runner import Runner
from gateway.jobs.saga import Saga
from gateway.limits import RateLimiter, UpdateDedupe
from gateway.middlewares import (
    DedupeMiddleware,
    RateLimitMiddleware,
    TracingMiddleware,
    UserMiddleware,
    UserOrderMiddleware,
)
from gateway.payments import Payments
from gateway.polling import AckPolling
from gateway.prefs import Prefs, RedisPrefs
from gateway.redis_health import PauseUpdates, RedisHealth
from gateway.telegram_files import TelegramFiles
from voxmesh import telemetry
from voxmesh.config import parse_addr
from voxmesh.metrics import ClientMetrics, register_process_metrics
from voxmesh.server import run_main

log = logging.getLogger(__name__)


class InFlight(BaseMiddleware):
    """Tracks updates being handled, so shutdown can wait for them, then cancel the rest."""

    def __init__(self, gauge: Gauge) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self._gauge = gauge

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.idle.clear()
        self._gauge.inc()
        try:
            return await handler(event, data)
        finally:
            self.tasks.discard(task)
            self._gauge.dec()
            if not self.tasks:
                self.idle.set()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds, then cancel what is left (holds get released)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), grace)
        left = list(self.tasks)
        if left:
            log.warning("cancelling %d updates still running after %.0fs", len(left), grace)
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=15)


@dataclass
class Guards:
    """What the middlewares keep in Redis."""

    limiter: RateLimiter
    dedupe: UpdateDedupe


def make_bot(settings: GatewaySettings) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.api_base, is_local=settings.api_local)
    )
    return Bot(settings.bot_token, session=session)


def build_dispatcher(
    *,
    services: Services,
    jobs: Jobs,
    prefs: Prefs,
    payments: Payments,
    guards: Guards,
    settings: GatewaySettings,
    registry: CollectorRegistry,
    health: RedisHealth | None = None,
) -> tuple[Dispatcher, InFlight]:
    dp = Dispatcher()
    updates = Counter(
        "voxmesh_gateway_updates", "Telegram updates handled.", ["type"], registry=registry
    )
    duplicates = Counter(
        "voxmesh_gateway_duplicate_updates",
        "Updates dropped because they were already handled.",
        registry=registry,
    )
    refused = Counter(
        "voxmesh_gateway_rate_limited",
        "Messages and button presses dropped by the per-user rate limit.",
        registry=registry,
    )
    in_flight = InFlight(
        Gauge("voxmesh_gateway_updates_in_flight", "Updates being handled.", registry=registry)
    )

    class _Count(BaseMiddleware):
        async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
            updates.labels(event.event_type).inc()
            return await handler(event, data)

    # Order matters: nothing before UserOrderMiddleware may await I/O (see it).
    dp.update.outer_middleware(in_flight)
    dp.update.outer_middleware(TracingMiddleware(webhook=settings.mode == "webhook"))
    dp.update.outer_middleware(UserOrderMiddleware())
    dp.update.outer_middleware(DedupeMiddleware(guards.dedupe, duplicates, health))
    dp.update.outer_middleware(_Count())
    dp.update.outer_middleware(UserMiddleware(services))
    # Inner: counts only what some handler takes, never a group's chatter.
    limit = RateLimitMiddleware(guards.limiter, services, refused)
    dp.message.middleware(limit)
    dp.callback_query.middleware(limit)
    dp["services"] = services
    dp["jobs"] = jobs
    dp["prefs"] = prefs
    dp["payments"] = payments
    dp["settings"] = settings
    dp.include_routers(*routers())
    return dp, in_flight


class Readiness(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


@dataclass
class State:
    readiness: Readiness = Readiness.STARTING
    # Taking no updates while Redis is down (see gateway.redis_health).
    health: RedisHealth | None = None

    @property
    def redis_down(self) -> bool:
        return self.health is not None and not self.health.up


def http_app(registry: CollectorRegistry, state: State) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if state.readiness is Readiness.READY and state.redis_down:
            return web.Response(text="redis unavailable", status=503)
        ready = state.readiness is Readiness.READY
        return web.Response(text=state.readiness.value, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class WebhookHandler(SimpleRequestHandler):
    """aiogram's handler (secret checked: a wrong one is 401 and nothing else happens),
    answering 503 while draining so Telegram re-delivers the update to another pod."""

    def __init__(self, dp: Dispatcher, bot: Bot, *, secret: str, state: State) -> None:
        # Not in the background: Telegram gets its 200 only once the update was
        # handled (its job recorded); a failure answers 500 and it comes again.
        super().__init__(dispatcher=dp, bot=bot, secret_token=secret, handle_in_background=False)
        self._state = state

    async def handle(self, request: web.Request) -> web.Response:
        if self._state.readiness is Readiness.DRAINING:
            return web.Response(status=503, text="draining")
        if self._state.redis_down:
            # Telegram delivers it again later, once Redis is back.
            return web.Response(status=503, text="redis unavailable")
        return await super().handle(request)

    async def close(self) -> None:
        # run() closes the bot session itself, after the drain.
        return None


async def set_commands(bot: Bot) -> None:
    """The command menu in both interface languages (a setting, not a message)."""
    for lang, commands in COMMANDS.items():
        await bot.set_my_commands(
            [BotCommand(command=c, description=d) for c, d in commands.items()],
            language_code=None if lang == "en" else lang,
        )


@dataclass
class Parts:
    """Everything run() wires together, built before anything connects."""

    registry: CollectorRegistry
    services: Services
    redis: Redis
    health: RedisHealth
    bot: Bot
    runner: Runner
    reconciler: Reconciler
    dp: Dispatcher
    in_flight: InFlight


def build(settings: GatewaySettings) -> Parts:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    services = Services.connect(
        settings.billing_target,
        settings.transcriber_target,
        settings.notifier_target,
        tls=settings.tls,
        metrics=ClientMetrics(registry),
    )
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    prefix = settings.key_prefix
    health = RedisHealth(redis, epoch_key=f"{prefix}epoch")
    bot = make_bot(settings)
    bot.session.middleware(PauseUpdates(health))
    saga = Saga(
        services,
        TelegramFiles(bot, limit=settings.download_limit),
        download_limit=settings.download_limit,
        job_base_seconds=settings.job_base_seconds,
        job_seconds_per_audio_second=settings.job_seconds_per_audio_second,
        edit_interval_seconds=settings.edit_interval_seconds,
        text_document_threshold=settings.text_document_threshold,
    )
    queue = JobQueue(
        services, bot_id=bot.id, owner=f"{socket.gethostname()}-{secrets.token_hex(3)}"
    )
    cache = TranscriptCache(redis, prefix, ttl_seconds=settings.transcript_cache_seconds)

    outcomes = Counter(
        "voxmesh_gateway_jobs",
        "Jobs that reached an outcome (done, no_speech, no_funds, cancelled, failed, ...).",
        ["outcome"],
        registry=registry,
    )

    async def remember(job: Job, outcome: Outcome) -> None:
        outcomes.labels(outcome.status).inc()
        if outcome.status == "done" and outcome.text:
            await cache.put(job.spec, outcome.text)

    runner = Runner(queue, saga, lease_seconds=settings.job_lease_seconds, on_outcome=remember)
    payments = Payments(redis, prefix, services)
    reconciler = Reconciler(
        queue, runner, payments, interval_seconds=settings.reconcile_interval_seconds
    )
    Gauge(
        "voxmesh_gateway_jobs_running", "Jobs running on this replica.", registry=registry
    ).set_function(runner.running)
    resets = Counter(
        "voxmesh_gateway_redis_resets",
        "Times Redis came back empty (its epoch marker gone): its state was lost.",
        registry=registry,
    )

    def on_reset() -> None:
        resets.inc()
        reconciler.wake()

    health.on_reset = on_reset
    prefs = RedisPrefs(redis, prefix)
    dp, in_flight = build_dispatcher(
        services=services,
        jobs=Jobs(queue, runner, saga, cache),
        prefs=prefs,
        payments=payments,
        guards=Guards(
            limiter=RateLimiter(redis, prefix, limit=settings.rate_limit_per_minute),
            dedupe=UpdateDedupe(
                redis, f"{prefix}{bot.id}:", ttl_seconds=settings.dedupe_ttl_seconds
            ),
        ),
        settings=settings,
        registry=registry,
        health=health,
    )
    return Parts(registry, services, redis, health, bot, runner, reconciler, dp, in_flight)


async def run(settings: GatewaySettings) -> None:
    parts = build(settings)
    registry, services, redis, health = parts.registry, parts.services, parts.redis, parts.health
    bot, runner, reconciler = parts.bot, parts.runner, parts.reconciler
    dp, in_flight = parts.dp, parts.in_flight
    state = State(health=health)
    app = http_app(registry, state)
    webhook = settings.mode == "webhook"
    if webhook:
        WebhookHandler(dp, bot, secret=settings.webhook_secret, state=state).register(
            app, path=WEBHOOK_PATH
        )
    site = web.AppRunner(app, access_log=None)
    await site.setup()
    host, port = parse_addr("GATEWAY_HTTP_ADDR", settings.http_addr)
    await web.TCPSite(site, host, port).start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    polling: asyncio.Task[None] | None = None
    poller: AckPolling | None = None
    allowed = dp.resolve_used_update_types()
    await set_commands(bot)
    if webhook:
        await bot.set_webhook(
            settings.webhook_url, secret_token=settings.webhook_secret, allowed_updates=allowed
        )
        log.info("gateway webhook %s", telemetry.redact(settings.webhook_url))
    else:
        # A webhook left by an earlier deployment would make getUpdates fail.
        await bot.delete_webhook()
        poller = AckPolling(dp, bot, allowed_updates=allowed, timeout=10)
        polling = asyncio.create_task(poller.run())
        log.info("gateway polling %s", telemetry.redact(settings.api_base))
    health.start()
    reconciler.start()
    state.readiness = Readiness.READY
    waits: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait())}
    if polling is not None:
        waits.add(polling)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    state.readiness = Readiness.DRAINING
    log.info("gateway draining (grace %.0fs)", settings.grace_seconds)
    if poller is not None:
        poller.stop()
    await reconciler.stop()
    await asyncio.gather(
        in_flight.drain(settings.grace_seconds), runner.drain(settings.grace_seconds)
    )
    await health.stop()
    if polling is not None:
        with contextlib.suppress(Exception):
            await polling
    await bot.session.close()
    await services.close()
    await redis.aclose()
    await site.cleanup()
    for task in waits:
        task.cancel()


def main(env: Mapping[str, str] | None = None) -> None:
    run_main("gateway", GatewaySettings.from_env, lambda settings, _: run(settings), env=env)
