"""A real transcriber (tests/transcriber's fixtures) with the facade in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider

from facade.app import Facade, start
from facade.config import FacadeSettings
from tests.transcriber.conftest import (  # noqa: F401 - fixtures used here
    audio_dir,
    base_config,
    registry,
    start_server,
    transcripts,
)
from voxmesh.config import TelemetrySettings
from voxmesh.telemetry import make_tracer_provider

API_KEY = "sk-team-a-0123456789abcdef"
OTHER_KEY = "sk-team-b-0123456789abcdef"
KEYS = {API_KEY: "team-a", OTHER_KEY: "team-b"}


@dataclass
class RunningFacade:
    facade: Facade
    url: str

    def client(self, api_key: str = API_KEY) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=300
        )


FacadeFactory = Callable[..., Awaitable[RunningFacade]]


@pytest_asyncio.fixture
async def start_facade() -> AsyncIterator[FacadeFactory]:
    """Start a facade on 127.0.0.1:0 in front of ``target``; stop it after the test."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def run(
        target: str, *, tracer_provider: TracerProvider | None = None, **overrides: Any
    ) -> RunningFacade:
        settings = FacadeSettings(
            http_addr="127.0.0.1:0",
            transcriber_target=target,
            api_keys=overrides.pop("api_keys", KEYS),
            grace_seconds=1.0,
            **overrides,
        )
        # A provider even when nothing is exported: trace ids are the errors' references.
        provider = tracer_provider or make_tracer_provider(
            TelemetrySettings(service_name="facade", exporter="none")
        )
        facade = Facade(settings, tracer_provider=provider)
        runner, port = await start(facade, settings.http_addr)

        async def stop() -> None:
            await runner.cleanup()
            await facade.close()

        stops.append(stop)
        return RunningFacade(facade, f"http://127.0.0.1:{port}")

    yield run
    for stop in reversed(stops):
        await stop()
