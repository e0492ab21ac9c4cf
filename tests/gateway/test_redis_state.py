"""What the gateway keeps in Redis: preferences, rate limits, seen updates, job lanes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.limits import RateLimiter, UpdateDedupe
from gateway.prefs import RedisPrefs, UserPrefs


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_prefs_round_trip(redis: Redis, key_prefix: str) -> None:
    prefs = RedisPrefs(redis, key_prefix)
    assert await prefs.user(1) == UserPrefs()
    await prefs.set_speech_language(1, "ru")
    await prefs.set_output_format(1, "srt")
    assert await prefs.user(1) == UserPrefs("ru", "srt")
    await prefs.set_speech_language(1, "auto")
    assert (await prefs.user(1)).speech_language == ""
    await prefs.set_output_format(1, "vtt")
    await prefs.set_translate(1, True)
    await prefs.set_interface_language(1, "ru")
    assert await prefs.user(1) == UserPrefs("", "vtt", translate=True, interface_language="ru")
    await prefs.set_translate(1, False)
    await prefs.set_interface_language(1, "auto")
    assert await prefs.user(1) == UserPrefs("", "vtt")
    assert await prefs.autotranscribe(-5) is False
    await prefs.set_autotranscribe(-5, True)
    assert await prefs.autotranscribe(-5) is True
    await prefs.set_autotranscribe(-5, False)
    assert await prefs.autotranscribe(-5) is False
    # A value some other version wrote is read as the default, not trusted.
    await redis.hset(f"{key_prefix}user:2", "format", "docx")
    assert (await prefs.user(2)).output_format == "text"


async def test_rate_limit_refuses_past_the_limit_and_says_so_once(
    redis: Redis, key_prefix: str
) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=3, window_seconds=0.5)
    verdicts = [await limiter.hit(7) for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.first_refusal for v in verdicts] == [False, False, False, True, False]
    assert (await limiter.hit(8)).allowed  # per user
    await asyncio.sleep(0.6)
    assert (await limiter.hit(7)).allowed  # a new window
    assert 0 < await redis.pttl(f"{key_prefix}rate:7") <= 500


async def test_rate_limit_is_atomic_under_concurrency(redis: Redis, key_prefix: str) -> None:
    limiter = RateLimiter(redis, key_prefix, limit=20)
    verdicts = await asyncio.gather(*(limiter.hit(9) for _ in range(50)))
    assert sum(v.allowed for v in verdicts) == 20
    assert sum(v.first_refusal for v in verdicts) == 1


async def test_dedupe_sees_an_update_once(redis: Redis, key_prefix: str) -> None:
    dedupe = UpdateDedupe(redis, key_prefix, ttl_seconds=60)
    assert await dedupe.handled(42) is False
    await dedupe.mark_handled(42)
    assert await dedupe.handled(42) is True
    assert await dedupe.handled(43) is False
    assert 0 < await redis.ttl(f"{key_prefix}update:42") <= 60
