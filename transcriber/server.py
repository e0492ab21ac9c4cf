"""Transcriber wiring: settings, models (loaded before SERVING), the gRPC server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from opentelemetry.sdk.trace import TracerProvider

from transcriber.config import TranscriberConfig, TranscriberConfigError
from transcriber.errors import ModelUnavailable
from transcriber.metrics import TranscriberMetrics
from transcriber.models import ModelRegistry
from transcriber.service import TranscriberService
from transcriber.v1 import transcriber_pb2_grpc as pb_grpc
from voxmesh.config import ConfigError
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec, run_main, serve

log = logging.getLogger(__name__)

SERVICE_NAME = "transcriber.v1.TranscriberService"
DOMAIN = "transcriber.voxmesh"
DEFAULT_LISTEN = "127.0.0.1:50052"


def service_specs(service: TranscriberService) -> list[ServiceSpec]:
    return [
        ServiceSpec(
            name=SERVICE_NAME,
            add_to_server=lambda s: pb_grpc.add_TranscriberServiceServicer_to_server(service, s),
        )
    ]


class TranscriberApp:
    """The server plus what it owns: the servicer, its models and worker threads."""

    def __init__(self, server: GrpcServer, service: TranscriberService) -> None:
        self.server = server
        self.service = service

    async def load_models(self) -> None:
        """Load the default model off the event loop; health stays NOT_SERVING meanwhile."""
        await asyncio.to_thread(self.service.registry.get)

    async def start(self) -> int:
        """Bind, load the default model, report SERVING; return the port (tests)."""
        port = await self.server.start()
        await self.load_models()
        await self.server.set_serving(True)
        return port

    async def close(self) -> None:
        self.service.close()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.close()


def create_app(
    config: TranscriberConfig,
    server_settings: ServerSettings,
    *,
    registry: ModelRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
) -> TranscriberApp:
    service = TranscriberService(config, registry or ModelRegistry(config))
    server = GrpcServer(
        server_settings, service_specs(service), domain=DOMAIN, tracer_provider=tracer_provider
    )
    service.metrics = TranscriberMetrics(
        server.metrics.registry,
        {"file": service.admission, "live": service.live_admission},
        config.device,
        live_lag=service.live_lag_seconds,
    )
    return TranscriberApp(server, service)


async def run(
    config: TranscriberConfig,
    server_settings: ServerSettings,
    tracer_provider: TracerProvider | None = None,
) -> None:
    # faster-whisper logs every window it starts at INFO; one line per RPC is enough.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    app = create_app(config, server_settings, tracer_provider=tracer_provider)
    log.info(
        "transcriber: model %s on %s/%s, %d active + %d queued streams",
        config.model_name,
        config.device,
        config.compute_type,
        config.max_active_streams,
        config.max_queued_streams,
    )
    await serve(app.server, on_shutdown=app.close, ready=app.load_models)


def main(env: Mapping[str, str] | None = None) -> None:
    def load(e: Mapping[str, str]) -> tuple[TranscriberConfig, ServerSettings]:
        # Long files take minutes; callers normally set their own deadline.
        return TranscriberConfig.from_env(e), ServerSettings.from_env(
            e, "TRANSCRIBER", default_listen=DEFAULT_LISTEN, default_deadline=600.0
        )

    run_main(
        "transcriber",
        load,
        lambda s, provider: run(*s, provider),
        env=env,
        config_errors=(ConfigError, TranscriberConfigError),
        fatal=(ModelUnavailable,),
    )
