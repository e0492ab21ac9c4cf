"""A notifier on real sockets for the reliability tests: Bot API emulator, Redis, gRPC."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import redis.asyncio as aioredis

from notifier.config import NotifierSettings
from notifier.server import NotifierApp, build, create_server
from notifier.v1 import notifier_pb2 as pb
from notifier.v1 import notifier_pb2_grpc
from tests.reliability.support import ErrorLog, LoopThread, serving
from voxmesh.server import GrpcServer, ServerSettings
from voxmesh_dev.telegram import BotApiEmulator

TOKEN = "123456:TEST-TOKEN-fuzz"
CHAT = 910001  # seeded messages live here
GROUP = -1009100001


@dataclass
class Notifier:
    loop: LoopThread
    emulator: BotApiEmulator
    app: NotifierApp
    server: GrpcServer
    stub: Any
    message_ids: list[int]
    callback_ids: list[str]
    errors: ErrorLog


async def _start(loop: LoopThread, redis_url: str, prefix: str) -> Notifier:
    # Flood limits are not what this run is about: lift them on both sides.
    emulator = BotApiEmulator(token=TOKEN, enforce_limits=False)
    await emulator.start()
    app = build(
        NotifierSettings(
            bot_token=TOKEN,
            api_base=emulator.base_url,
            redis_url=redis_url,
            key_prefix=prefix,
            global_per_second=10_000,
            private_per_second=10_000,
            group_per_minute=1_000_000,
            telegram_timeout_seconds=3.0,
            backoff_base_seconds=0.05,
            backoff_cap_seconds=0.2,
            max_attempts=2,
        ),
        default_timeout=10.0,
    )
    server = create_server(app, ServerSettings(service="notifier", listen="127.0.0.1:0"))
    await server.start()
    await server.set_serving(True)
    app.start()
    channel = grpc.aio.insecure_channel(server.address)
    stub = notifier_pb2_grpc.NotifierServiceStub(channel)
    ids = []
    for n in range(5):
        reply = await stub.Send(
            pb.SendRequest(idempotency_key=f"seed-{n}", chat_id=CHAT, text=f"seed {n}"),
            timeout=10,
        )
        ids.append(reply.message_id)
    callbacks = []
    for n in range(40):
        update = emulator.make_callback_update(
            chat_id=CHAT, user_id=CHAT, data="x", message_id=ids[0], query_id=f"cbq{n}"
        )
        emulator.push_update(update)
        callbacks.append(f"cbq{n}")
    return Notifier(loop, emulator, app, server, stub, ids, callbacks, ErrorLog())


async def _stop(run: Notifier, redis_url: str, prefix: str) -> None:
    await run.server.stop(0)
    await run.app.close(grace=1.0)
    await run.emulator.stop()
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.contextmanager
def running_notifier(redis_url: str) -> Iterator[Notifier]:
    loop = LoopThread("notifier-fuzz")
    prefix = f"fuzz{secrets.token_hex(4)}:"
    try:
        run = loop.run(_start(loop, redis_url, prefix))
        try:
            with run.errors:
                yield run
            assert loop.run(serving(run.server.address)), "notifier is not SERVING afterwards"
        finally:
            loop.run(_stop(run, redis_url, prefix))
    finally:
        loop.close()
