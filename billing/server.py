"""Billing wiring: the database pool, the servicer, the reaper, the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import asyncpg
from opentelemetry.sdk.trace import TracerProvider

from billing.config import BillingSettings
from billing.metrics import BillingMetrics, write_conflicts
from billing.postgres import PgBillingStore, create_pool, wait_for_database
from billing.reaper import Reaper
from billing.service import SERVICE_NAME, BillingServicer
from billing.v1 import billing_pb2_grpc
from voxmesh.metrics import Metrics
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec, run_main, serve
from voxmesh.tls import ANY

log = logging.getLogger(__name__)

DOMAIN = "billing.voxmesh"

# Who may call what, by caller identity (voxmesh.tls.Authz, on every server).
# Deny by default: a method not named below (every new one) moves money or
# names users, so only the gateway (or admin tooling) may call it until it is
# listed as a read. Admin RPCs also check the actor's role in the database.
_MONEY = frozenset({"gateway", "admin"})
CALLER_POLICY = {
    "*": _MONEY,
    # Reads: open to any authenticated mesh identity.
    "GetUser": ANY,
    "GetBalance": ANY,
    "Quote": ANY,
    "ListTransactions": ANY,
    "GetHold": ANY,
    # Forgetting a user is an operator's act, never the bot's.
    "EraseUser": frozenset({"admin"}),
}
DEFAULT_LISTEN = "127.0.0.1:50051"


class BillingApp:
    """The server plus what it owns: the pool and the reaper task."""

    def __init__(self, server: GrpcServer, pool: asyncpg.Pool, reaper: Reaper | None) -> None:
        self.server = server
        self.pool = pool
        self.reaper = reaper
        self._reaper_task: asyncio.Task[None] | None = None

    def start_reaper(self) -> None:
        if self.reaper is not None and self._reaper_task is None:
            self._reaper_task = asyncio.create_task(self.reaper.run(), name="billing-reaper")

    async def start(self) -> int:
        """Bind, start the reaper, report SERVING; return the port (tests)."""
        port = await self.server.start()
        self.start_reaper()
        await self.server.set_serving(True)
        return port

    async def close(self) -> None:
        """After the server drained: stop the reaper, close the pool."""
        if self._reaper_task is not None:
            self._reaper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper_task
            self._reaper_task = None
        await self.pool.close()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.close()


async def create_app(
    settings: BillingSettings,
    server_settings: ServerSettings,
    *,
    tracer_provider: TracerProvider | None = None,
    run_reaper: bool = True,
) -> BillingApp:
    pool = await create_pool(settings)
    metrics = Metrics(server_settings.service)
    store = PgBillingStore(pool, conflicts=write_conflicts(metrics.registry))
    servicer = BillingServicer(store, settings)
    services = [
        ServiceSpec(
            name=SERVICE_NAME,
            add_to_server=lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(
                servicer, s
            ),
        )
    ]
    server = GrpcServer(
        server_settings,
        services,
        domain=DOMAIN,
        tracer_provider=tracer_provider,
        policy=CALLER_POLICY,
        metrics=metrics,
    )
    reaper = (
        Reaper(
            store,
            interval_seconds=settings.reaper_interval_seconds,
            batch_size=settings.reaper_batch_size,
            idempotency_ttl_hours=settings.idempotency_ttl_hours,
            job_retention_days=settings.job_retention_days,
            metrics=BillingMetrics(server.metrics.registry),
        )
        if run_reaper
        else None
    )
    return BillingApp(server, pool, reaper)


async def run(
    settings: BillingSettings,
    server_settings: ServerSettings,
    tracer_provider: TracerProvider | None = None,
) -> None:
    await wait_for_database(settings.database_url)
    app = await create_app(settings, server_settings, tracer_provider=tracer_provider)

    async def ready() -> None:
        app.start_reaper()

    await serve(app.server, on_shutdown=app.close, ready=ready)


def main(env: Mapping[str, str] | None = None) -> None:
    def load(e: Mapping[str, str]) -> tuple[BillingSettings, ServerSettings]:
        return BillingSettings.from_env(e), ServerSettings.from_env(
            e, "BILLING", default_listen=DEFAULT_LISTEN
        )

    run_main("billing", load, lambda s, provider: run(*s, provider), env=env)
