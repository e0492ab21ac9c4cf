"""What the notifier keeps in Redis: dead letters hold ids and reasons (never the
message), forget them after a while, and queued payloads are bounded in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
import redis.asyncio as aioredis

from notifier.v1 import notifier_pb2 as pb
from voxmesh.errors import error_details
from voxmesh_dev.telegram import BotApiEmulator

SECRET_TEXT = "the user's private transcript"
DEAD_FIELDS = {"job", "chat", "method", "idem", "attempts", "reason"}


@pytest.fixture
async def redis_client(settings: Any) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def _entries(client: aioredis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    return cast(list[tuple[str, dict[str, str]]], await client.xrange(key))


async def _bury(n: Any, key: str, chat: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await n.stub.Send(
            pb.SendRequest(idempotency_key=key, chat_id=chat, text=SECRET_TEXT), timeout=10
        )


async def test_dead_letters_keep_ids_and_reasons_and_expire(
    start_notifier: Any, emulator: BotApiEmulator, settings: Any, redis_client: aioredis.Redis
) -> None:
    n = await start_notifier(max_attempts=2, dead_letter_ttl_seconds=2)
    emulator.faults.rate_500 = 1.0
    dead_key = settings.key_prefix + "dead"
    await _bury(n, "d1", 41)
    (first,) = await _entries(redis_client, dead_key)
    assert set(first[1]) == DEAD_FIELDS
    assert first[1]["chat"] == "41" and first[1]["method"] == "send"
    assert first[1]["attempts"] == "2" and first[1]["reason"]
    assert not any(SECRET_TEXT in value for value in first[1].values())
    # The job (and its payload) is gone, and its bytes left the queue's count.
    assert [k async for k in redis_client.scan_iter(match=settings.key_prefix + "job:*")] == []
    assert int(await redis_client.get(settings.key_prefix + "queued_bytes") or 0) == 0
    assert 0 < await redis_client.pttl(dead_key) <= 2000

    # Entries older than the TTL are trimmed when the next one is added ...
    await asyncio.sleep(2.2)
    await _bury(n, "d2", 42)
    ids = [entry_id for entry_id, _ in await _entries(redis_client, dead_key)]
    assert first[0] not in ids and len(ids) == 1
    # ... and the whole stream goes once nothing has died for the TTL.
    await asyncio.sleep(2.2)
    assert await redis_client.exists(dead_key) == 0


async def test_queued_payloads_are_bounded_in_bytes(
    start_notifier: Any, settings: Any, redis_client: aioredis.Redis, emulator: BotApiEmulator
) -> None:
    # No worker yet: whatever is sent stays queued.
    idle = await start_notifier(deliver=False, max_queued_bytes=3000)
    with pytest.raises(grpc.aio.AioRpcError):
        await idle.stub.Send(
            pb.SendRequest(idempotency_key="q1", chat_id=51, text="a" * 1000), timeout=1
        )
    used = int(await redis_client.get(settings.key_prefix + "queued_bytes") or 0)
    assert 1000 < used < 2000
    # The next one would pass the bound: refused at once, nothing stored for it.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await idle.stub.Send(
            pb.SendRequest(idempotency_key="q2", chat_id=52, text="b" * 2500), timeout=5
        )
    details = error_details(info.value)
    assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert details.retry_after is not None and details.retry_after > 0
    assert int(await redis_client.get(settings.key_prefix + "queued_bytes") or 0) == used
    # Once delivered, the bytes are given back and the same send goes through.
    await start_notifier(max_queued_bytes=3000)
    for _ in range(100):
        if emulator.messages(51):
            break
        await asyncio.sleep(0.05)
    for _ in range(40):
        if int(await redis_client.get(settings.key_prefix + "queued_bytes") or 0) == 0:
            break
        await asyncio.sleep(0.05)
    assert int(await redis_client.get(settings.key_prefix + "queued_bytes") or 0) == 0
    res = await idle.stub.Send(
        pb.SendRequest(idempotency_key="q2", chat_id=52, text="b" * 2500), timeout=10
    )
    assert [m.message_id for m in emulator.messages(52)] == [res.message_id]
