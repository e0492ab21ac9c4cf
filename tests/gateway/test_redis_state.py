"""What the gateway keeps in Redis: preferences, rate limits, seen updates, job lanes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.jobs import JobLanes, LaneFullError
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
    assert await dedupe.first_time(42) is True
    assert await dedupe.first_time(42) is False
    assert await dedupe.first_time(43) is True
    assert 0 < await redis.ttl(f"{key_prefix}update:42") <= 60


def lanes(redis: Redis, prefix: str, **kwargs: float) -> JobLanes:
    return JobLanes(redis, prefix, heartbeat_seconds=0.05, poll_seconds=0.02, **kwargs)  # type: ignore[arg-type]


async def test_one_job_at_a_time_in_order(redis: Redis, key_prefix: str) -> None:
    lane = lanes(redis, key_prefix)
    tickets = [await lane.enqueue(1) for _ in range(3)]
    assert [t.ahead for t in tickets] == [0, 1, 2]
    order: list[int] = []
    running = 0

    async def job(i: int) -> None:
        nonlocal running
        async with tickets[i]:
            await tickets[i].wait_turn()
            running += 1
            assert running == 1
            order.append(i)
            await asyncio.sleep(0.05)
            running -= 1

    await asyncio.wait_for(asyncio.gather(*(job(i) for i in (2, 1, 0))), 5)
    assert order == [0, 1, 2]
    assert await redis.zcard(f"{key_prefix}jobs:1") == 0
    # Another user's lane never waits for this one.
    assert (await lane.enqueue(2)).ahead == 0


async def test_lane_is_bounded(redis: Redis, key_prefix: str) -> None:
    lane = JobLanes(redis, key_prefix, max_queued=2)
    tickets = [await lane.enqueue(1) for _ in range(3)]
    with pytest.raises(LaneFullError):
        await lane.enqueue(1)
    for ticket in tickets:
        await ticket.close()
    assert (await lane.enqueue(1)).ahead == 0


async def test_cancel_reaches_the_running_job_on_another_replica(
    redis: Redis, key_prefix: str
) -> None:
    here, there = lanes(redis, key_prefix), lanes(redis, key_prefix)
    running = await here.enqueue(1)
    waiting = await here.enqueue(1)
    assert await there.cancel(1) is True
    await asyncio.wait_for(running.stop.wait(), 2)
    assert not waiting.stop.is_set()
    await running.close()
    await asyncio.wait_for(waiting.wait_turn(), 2)
    await waiting.close()
    assert await there.cancel(1) is False


async def test_a_dead_replicas_job_stops_blocking_the_lane(redis: Redis, key_prefix: str) -> None:
    dead = lanes(redis, key_prefix, ttl_seconds=0.3)
    ticket = await dead.enqueue(1)
    # The replica dies: its heartbeat stops, the lane entry is never finished.
    assert ticket._task is not None
    ticket._task.cancel()
    alive = lanes(redis, key_prefix, ttl_seconds=0.3)
    successor = await alive.enqueue(1)
    assert successor.ahead == 1
    await asyncio.wait_for(successor.wait_turn(), 3)
    await successor.close()
