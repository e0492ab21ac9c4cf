"""Fixtures: the Bot API emulator over HTTP, Redis under a per-test prefix, a real gRPC server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
import redis.asyncio as aioredis

from notifier.config import NotifierSettings
from notifier.server import NotifierApp, build, create_server
from notifier.v1 import notifier_pb2_grpc
from voxmesh.server import GrpcServer, ServerSettings
from voxmesh_dev.telegram import BotApiEmulator

TOKEN = "123456:TEST-TOKEN"


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emu = BotApiEmulator(token=TOKEN, enforce_limits=True)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
def settings(emulator: BotApiEmulator, redis_url: str, key_prefix: str) -> NotifierSettings:
    return NotifierSettings(
        bot_token=TOKEN,
        api_base=emulator.base_url,
        redis_url=redis_url,
        key_prefix=key_prefix,
        # Tests see failures quickly; production waits longer.
        telegram_timeout_seconds=3.0,
        backoff_base_seconds=0.05,
        backoff_cap_seconds=0.5,
        max_attempts=4,
    )


@dataclass
class Running:
    app: NotifierApp
    server: GrpcServer
    channel: grpc.aio.Channel
    stub: notifier_pb2_grpc.NotifierServiceStub


@pytest.fixture
async def start_notifier(
    settings: NotifierSettings,
) -> AsyncIterator[Callable[..., object]]:
    """Start notifier replicas (all sharing the test's Redis prefix) on real sockets."""
    running: list[Running] = []

    async def start(*, deliver: bool = True, **overrides: object) -> Running:
        s = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
        app = build(s)
        server = create_server(app, ServerSettings(service="notifier", listen="127.0.0.1:0"))
        await server.start()
        await server.set_serving(True)
        app.start(deliver=deliver)
        channel = grpc.aio.insecure_channel(server.address)
        r = Running(app, server, channel, notifier_pb2_grpc.NotifierServiceStub(channel))
        running.append(r)
        return r

    yield start
    for r in running:
        await r.channel.close()
        await r.server.stop(0)
        await r.app.close(grace=1.0)
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=settings.key_prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def notifier(start_notifier: Callable[..., object]) -> Running:
    return await start_notifier()  # type: ignore[no-any-return,misc]
