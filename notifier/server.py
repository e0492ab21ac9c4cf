"""Wiring: settings -> Redis, Telegram, outbox, worker -> gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from notifier.config import NotifierSettings
from notifier.delivery import Deliverer
from notifier.domain import Notifier
from notifier.metrics import NotifierMetrics, refresh_depth
from notifier.outbox import Outbox, connect
from notifier.service import NotifierService
from notifier.telegram import TelegramClient
from notifier.v1 import notifier_pb2_grpc
from voxmesh.metrics import Metrics
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec, run_main, serve

SERVICE_NAME = "notifier.v1.NotifierService"
# Only the gateway (and admin tooling) may message users; every call is checked
# by caller identity (voxmesh.tls.Authz).
CALLER_POLICY = {"*": frozenset({"gateway", "admin"})}
DOMAIN = "notifier.voxmesh"
DEFAULT_LISTEN = "127.0.0.1:50053"


@dataclass
class NotifierApp:
    """Everything one notifier process runs; ``close`` releases it in order."""

    settings: NotifierSettings
    outbox: Outbox
    telegram: TelegramClient
    deliverer: Deliverer
    notifier: Notifier
    metrics: NotifierMetrics
    registry: CollectorRegistry
    _depth: asyncio.Task[None] | None = None

    def specs(self) -> list[ServiceSpec]:
        servicer = NotifierService(self.notifier)
        return [
            ServiceSpec(
                name=SERVICE_NAME,
                add_to_server=lambda s: notifier_pb2_grpc.add_NotifierServiceServicer_to_server(
                    servicer, s
                ),
            )
        ]

    def start(self, *, deliver: bool = True) -> None:
        self.outbox.start_listener()
        if deliver:
            self.deliverer.start()
        self._depth = asyncio.create_task(
            refresh_depth(self.metrics, self.outbox.redis, self.settings.key_prefix)
        )

    async def close(self, grace: float = 5.0) -> None:
        if self._depth is not None:
            self._depth.cancel()
        await self.deliverer.stop(grace)
        await self.outbox.close()
        await self.telegram.close()
        await self.outbox.redis.aclose()


def build(settings: NotifierSettings, *, default_timeout: float = 30.0) -> NotifierApp:
    """Build the app without touching the network (connections open lazily)."""
    client = connect(settings.redis_url, timeout=settings.redis_timeout_seconds)
    outbox = Outbox(
        client,
        prefix=settings.key_prefix,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        global_limit=settings.global_limit,
        lease_ms=settings.lease_ms,
        log_ttl_seconds=settings.dead_letter_ttl_seconds,
        max_queued_bytes=settings.max_queued_bytes,
    )
    telegram = TelegramClient(
        settings.bot_token, settings.api_base, timeout=settings.telegram_timeout_seconds
    )
    deliverer = Deliverer(outbox, telegram, settings)
    notifier = Notifier(outbox, telegram, settings, default_timeout=default_timeout)
    registry = CollectorRegistry()
    metrics = NotifierMetrics(registry)
    telegram.metrics = metrics
    deliverer.metrics = metrics
    return NotifierApp(settings, outbox, telegram, deliverer, notifier, metrics, registry)


def create_server(
    app: NotifierApp,
    server_settings: ServerSettings,
    *,
    tracer_provider: TracerProvider | None = None,
) -> GrpcServer:
    return GrpcServer(
        server_settings,
        app.specs(),
        domain=DOMAIN,
        metrics=Metrics("notifier", registry=app.registry),
        tracer_provider=tracer_provider,
        policy=CALLER_POLICY,
    )


async def run(
    settings: NotifierSettings,
    server_settings: ServerSettings,
    tracer_provider: TracerProvider | None = None,
) -> None:
    app = build(settings, default_timeout=server_settings.default_deadline_seconds)
    server = create_server(app, server_settings, tracer_provider=tracer_provider)

    async def ready() -> None:
        app.start()

    async def shutdown() -> None:
        await app.close(grace=server_settings.grace_seconds)

    await serve(server, ready=ready, on_shutdown=shutdown)


def main(env: Mapping[str, str] | None = None) -> None:
    def load(e: Mapping[str, str]) -> tuple[NotifierSettings, ServerSettings]:
        return NotifierSettings.from_env(e), ServerSettings.from_env(
            e, "NOTIFIER", default_listen=DEFAULT_LISTEN
        )

    run_main("notifier", load, lambda s, provider: run(*s, provider), env=env)
