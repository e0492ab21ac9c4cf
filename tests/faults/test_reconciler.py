"""The reconciler's parts on a real Redis: claims, records, one re-drive across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gateway.pipeline import Job, Media, Outcome
from gateway.reconciler import JobRef, JobRegistry, Reconciler, job_from_record, job_to_record
from redis.asyncio import Redis

from billing.v1 import billing_pb2
from gateway.jobs import JobLanes
from gateway.prefs import RedisPrefs
from transcriber.v1 import transcriber_pb2

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def a_job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "user_id": 42,
        "chat_id": -100500,
        "chat_type": "supergroup",
        "message_id": 77,  # the /t that asked
        "reply_to": 70,  # the note
        "media": Media("voice", "file-70", 15, 12345, "audio/ogg"),
        "lang": "ru",
        "speech_language": "en",
        "output_format": transcriber_pb2.OUTPUT_FORMAT_SRT,
        "status_message_id": 81,
    }
    values.update(overrides)
    return Job(**values)


def stale(job: Job, hold_id: str = "5f0e4a56-0000-4000-8000-000000000001") -> Any:
    return billing_pb2.StaleJob(
        hold=billing_pb2.Hold(
            hold_id=hold_id,
            user_id=job.user_id,
            amount_credits=3,
            state=billing_pb2.HOLD_STATE_PENDING,
            job=billing_pb2.Job(
                chat_id=job.chat_id,
                message_id=job.note_id,
                file_id=job.media.file_id,
                duration_seconds=job.media.duration,
                trace_id=TRACE,
            ),
        ),
        language_code="en",
    )


def test_record_round_trip() -> None:
    job = a_job()
    assert job_from_record(job_to_record(job)) == job


async def test_a_claim_excludes_others_until_it_lapses(redis: Redis, key_prefix: str) -> None:
    registry = JobRegistry(redis, key_prefix, owner_ttl_seconds=1.0)
    job = a_job()
    ref = JobRef.of(job)
    assert ref == JobRef(-100500, 70, 42)
    runner = await registry.own(job)
    assert await registry.record(ref) == job
    # The heartbeat keeps the runner's claim past its TTL.
    await asyncio.sleep(1.5)
    assert await registry.take(ref) is None
    runner.finished = True
    await runner.release()
    assert await registry.record(ref) is None  # a finished job leaves nothing behind
    # A dead runner's claim lapses by itself.
    crashed = await registry.own(job)
    assert crashed._task is not None
    crashed._task.cancel()  # the process "dies": no more heartbeats
    await asyncio.sleep(1.3)
    taker = await registry.take(ref)
    assert taker is not None
    assert await registry.take(ref) is None
    await taker.release()
    assert await registry.record(ref) == job  # unfinished: the record stays for a retry


class FakeBilling:
    def __init__(self, jobs: list[Any]) -> None:
        self.jobs = jobs

    async def ListStaleJobs(
        self, request: billing_pb2.ListStaleJobsRequest, timeout: float | None = None
    ) -> billing_pb2.ListStaleJobsResponse:
        return billing_pb2.ListStaleJobsResponse(jobs=self.jobs)


class FakeServices:
    def __init__(self, jobs: list[Any]) -> None:
        self.billing = FakeBilling(jobs)


class FakePipeline:
    def __init__(self) -> None:
        self.runs: list[tuple[Job, str]] = []
        self.given_up: list[str] = []

    async def run(self, job: Job, stop: asyncio.Event, *, hold: billing_pb2.Hold) -> Outcome:
        self.runs.append((job, hold.hold_id))
        await asyncio.sleep(0.3)
        return Outcome("done")

    async def give_up(self, job: Job, hold_id: str, exc: BaseException) -> bool:
        self.given_up.append(hold_id)
        return True


def reconciler(redis: Redis, prefix: str, jobs: list[Any], pipeline: FakePipeline) -> Reconciler:
    return Reconciler(
        FakeServices(jobs),  # type: ignore[arg-type]
        pipeline,  # type: ignore[arg-type]
        JobRegistry(redis, prefix, owner_ttl_seconds=2.0),
        JobLanes(redis, prefix),
        RedisPrefs(redis, prefix),
        max_attempts=2,
    )


async def drain(*reconcilers: Reconciler) -> None:
    for r in reconcilers:
        await r.stop(grace=10)


async def test_two_replicas_redrive_a_job_once_as_recorded(redis: Redis, key_prefix: str) -> None:
    job = a_job()
    # The crashed runner left its record (its claim lapsed long ago).
    await redis.set(f"{key_prefix}job:-100500:70:42", job_to_record(job))
    pipeline = FakePipeline()
    one = reconciler(redis, key_prefix, [stale(job)], pipeline)
    two = reconciler(redis, key_prefix, [stale(job)], pipeline)
    started = await asyncio.gather(one.run_once(), two.run_once())
    assert sorted(started) == [0, 1]
    await drain(one, two)
    [(ran, hold_id)] = pipeline.runs
    assert ran == job  # the /t message, the queued notice, languages, the format
    assert hold_id == "5f0e4a56-0000-4000-8000-000000000001"
    assert await redis.exists(f"{key_prefix}job:-100500:70:42") == 0


async def test_without_a_record_the_job_is_rebuilt_from_billing(
    redis: Redis, key_prefix: str
) -> None:
    note = a_job(chat_id=42, chat_type="private", message_id=70, status_message_id=0)
    await RedisPrefs(redis, key_prefix).set_output_format(42, "timestamps")
    pipeline = FakePipeline()
    r = reconciler(redis, key_prefix, [stale(note)], pipeline)
    assert await r.run_once() == 1
    await drain(r)
    [(ran, _)] = pipeline.runs
    assert (ran.chat_id, ran.chat_type, ran.message_id, ran.note_id) == (42, "private", 70, 70)
    assert (ran.media.file_id, ran.media.duration, ran.lang) == ("file-70", 15, "en")
    assert ran.output_format == transcriber_pb2.OUTPUT_FORMAT_TIMESTAMPED_TEXT


async def test_a_job_that_keeps_failing_is_released(redis: Redis, key_prefix: str) -> None:
    job = a_job()
    pipeline = FakePipeline()
    r = reconciler(redis, key_prefix, [stale(job)], pipeline)
    # Two earlier re-drives died with their gateway.
    await redis.set(f"{key_prefix}job:-100500:70:42:attempts", 2)
    assert await r.run_once() == 1
    await drain(r)
    assert pipeline.runs == []
    assert pipeline.given_up == ["5f0e4a56-0000-4000-8000-000000000001"]
