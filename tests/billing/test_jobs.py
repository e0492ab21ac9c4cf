"""Durable jobs over real gRPC and a real PostgreSQL: lanes, leases, fencing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from billing.v1 import billing_pb2 as pb
from tests.billing.billing_support import Running, StartBilling
from tests.billing.test_money import balance, fails, ledger_invariants, new_user

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
LEASE = Duration(seconds=60)
SHORT = Duration(seconds=1)


async def submit(
    b: Running, message: int, user: int = 42, spec: bytes = b"spec", trace: str = TRACE
) -> pb.SubmitJobResponse:
    return await b.stub.SubmitJob(
        pb.SubmitJobRequest(
            idempotency_key=f"job:1:{user}:{message}",
            user_id=user,
            chat_id=user,
            message_id=message,
            spec=spec,
            trace_id=trace,
        )
    )


async def claim(b: Running, user: int = 42, lease: Duration = LEASE) -> pb.QueuedJob | None:
    reply = await b.stub.ClaimJob(pb.ClaimJobRequest(user_id=user, owner="pod-a", lease=lease))
    return reply.job if reply.HasField("job") else None


async def finish(
    b: Running, job: pb.QueuedJob, state: int = pb.JOB_STATE_DONE, outcome: str = "done"
) -> pb.QueuedJob:
    reply = await b.stub.FinishJob(
        pb.FinishJobRequest(job_id=job.job_id, attempt=job.attempt, state=state, outcome=outcome)
    )
    return reply.job


async def test_submit_records_a_queued_job_once(billing: Running) -> None:
    await new_user(billing)
    first = await submit(billing, 1)
    assert first.created and first.ahead == 0
    job = first.job
    assert job.state == pb.JOB_STATE_QUEUED and job.attempt == 0
    assert (job.user_id, job.chat_id, job.message_id) == (42, 42, 1)
    assert (job.spec, job.trace_id, job.hold_id) == (b"spec", TRACE, "")
    uuid.UUID(job.job_id)
    second = await submit(billing, 2)
    assert second.created and second.ahead == 1
    # A re-delivered update: another trace id, the spec serialised anew. The
    # same note, so the job as it is now, not a second one.
    again = await submit(billing, 1, spec=b"spec, re-encoded", trace=OTHER_TRACE)
    assert not again.created and again.job.job_id == job.job_id and again.job.spec == b"spec"
    # The same key for another note is refused.
    code, reason, _ = await fails(
        billing.stub.SubmitJob(
            pb.SubmitJobRequest(idempotency_key="job:1:42:1", user_id=42, chat_id=42, message_id=9)
        )
    )
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    code, reason, _ = await fails(submit(billing, 1, user=77))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


async def test_a_full_queue_is_refused(start_billing: StartBilling) -> None:
    b = await start_billing(max_queued_jobs=2)
    await new_user(b)
    await submit(b, 1)
    await submit(b, 2)
    code, reason, meta = await fails(submit(b, 3))
    assert (code, reason, meta["max_queued"]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUEUE_FULL",
        "2",
    )
    # Nothing was recorded, key included: once a job runs, the same key fits.
    assert await claim(b) is not None
    third = await submit(b, 3)
    assert third.created and third.ahead == 2


async def test_claims_follow_the_order_of_submission(billing: Running) -> None:
    await new_user(billing)
    submitted = [(await submit(billing, m)).job.job_id for m in (5, 3, 9, 1)]
    claimed = []
    for _ in submitted:
        job = await claim(billing)
        assert job is not None and job.state == pb.JOB_STATE_RUNNING and job.attempt == 1
        # One job at a time per user: nothing more to claim while it runs.
        assert await claim(billing) is None
        claimed.append(job.job_id)
        done = await finish(billing, job)
        assert done.state == pb.JOB_STATE_DONE and done.outcome == "done"
    assert claimed == submitted
    assert await claim(billing) is None


async def test_two_claimers_at_once_never_both_win(billing: Running) -> None:
    await new_user(billing)
    for m in range(1, 4):
        await submit(billing, m)
    for _ in range(3):
        results = await asyncio.gather(*(claim(billing) for _ in range(12)))
        won = [job for job in results if job is not None]
        assert len(won) == 1, won
        await finish(billing, won[0])
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        states = await conn.fetch("SELECT state, attempt FROM jobs ORDER BY seq")
        # The rule is the database's, not only the claim query's: a second
        # RUNNING job of one user cannot be stored, whoever writes it.
        await submit(billing, 8)
        await submit(billing, 9)
        with pytest.raises(asyncpg.UniqueViolationError, match="jobs_one_running_per_user"):
            await conn.execute(
                "UPDATE jobs SET state = 'running', lease_expire_time = now()"
                " WHERE user_id = 42 AND state = 'queued'"
            )
    finally:
        await conn.close()
    assert [(r["state"], r["attempt"]) for r in states] == [("done", 1)] * 3


async def test_a_lapsed_lease_is_claimed_again_and_fences_the_old_runner(
    billing: Running,
) -> None:
    await new_user(billing)
    await submit(billing, 1)
    await submit(billing, 2)
    old = await claim(billing, lease=SHORT)
    assert old is not None and old.attempt == 1
    renewed = await billing.stub.RenewJob(
        pb.RenewJobRequest(job_id=old.job_id, attempt=1, lease=SHORT)
    )
    assert renewed.job.lease_expire_time.ToDatetime() >= old.lease_expire_time.ToDatetime()
    listing = await billing.stub.ListRunnableJobs(pb.ListRunnableJobsRequest())
    assert list(listing.user_ids) == []  # running under a live lease
    await asyncio.sleep(1.3)
    listing = await billing.stub.ListRunnableJobs(pb.ListRunnableJobsRequest())
    assert list(listing.user_ids) == [42]
    # The lapsed job is claimed again first, before the queued one.
    new = await claim(billing)
    assert new is not None and new.job_id == old.job_id and new.attempt == 2
    for call in (
        billing.stub.RenewJob(pb.RenewJobRequest(job_id=old.job_id, attempt=1, lease=LEASE)),
        billing.stub.FinishJob(
            pb.FinishJobRequest(
                job_id=old.job_id, attempt=1, state=pb.JOB_STATE_DONE, outcome="done"
            )
        ),
    ):
        code, reason, meta = await fails(call)
        assert (code, reason, meta["attempt"]) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "JOB_LEASE_LOST",
            "2",
        )
    done = await finish(billing, new)
    assert done.state == pb.JOB_STATE_DONE
    # Finishing again the same way answers with the job; another way is refused.
    assert await finish(billing, new) == done
    code, reason, _ = await fails(finish(billing, new, pb.JOB_STATE_FAILED, "asr"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_LEASE_LOST")
    code, _, _ = await fails(
        billing.stub.RenewJob(pb.RenewJobRequest(job_id=str(uuid.uuid4()), attempt=1, lease=LEASE))
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_cancel_asks_the_running_job_else_drops_the_newest_queued(billing: Running) -> None:
    await new_user(billing)
    code, _, _ = await fails(billing.stub.CancelJob(pb.CancelJobRequest(user_id=42)))
    assert code == grpc.StatusCode.NOT_FOUND
    first = (await submit(billing, 1)).job
    second = (await submit(billing, 2)).job
    third = (await submit(billing, 3)).job
    # Nothing runs: the newest queued job is cancelled at once.
    cancelled = (await billing.stub.CancelJob(pb.CancelJobRequest(user_id=42))).job
    assert (cancelled.job_id, cancelled.state) == (third.job_id, pb.JOB_STATE_CANCELLED)
    assert cancelled.spec == b""
    running = await claim(billing)
    assert running is not None and running.job_id == first.job_id
    asked = (await billing.stub.CancelJob(pb.CancelJobRequest(user_id=42))).job
    assert (asked.job_id, asked.state, asked.cancel_requested) == (
        first.job_id,
        pb.JOB_STATE_RUNNING,
        True,
    )
    renewed = await billing.stub.RenewJob(
        pb.RenewJobRequest(job_id=first.job_id, attempt=1, lease=LEASE)
    )
    assert renewed.job.cancel_requested
    await finish(billing, running, pb.JOB_STATE_CANCELLED, "cancelled")
    nxt = await claim(billing)
    assert nxt is not None and nxt.job_id == second.job_id and not nxt.cancel_requested


async def test_the_first_status_message_wins(billing: Running) -> None:
    await new_user(billing)
    job = (await submit(billing, 1)).job
    replies = await asyncio.gather(
        *(
            billing.stub.AttachJobMessage(
                pb.AttachJobMessageRequest(job_id=job.job_id, status_message_id=m)
            )
            for m in (500, 501, 502)
        )
    )
    ids = {r.job.status_message_id for r in replies}
    assert len(ids) == 1 and ids <= {500, 501, 502}
    code, _, _ = await fails(
        billing.stub.AttachJobMessage(
            pb.AttachJobMessageRequest(job_id=str(uuid.uuid4()), status_message_id=1)
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_runnable_users_page_oldest_first(billing: Running) -> None:
    for user in (11, 12, 13, 14):
        await new_user(billing, user_id=user)
    await submit(billing, 1, user=13)
    await submit(billing, 1, user=11)
    await submit(billing, 2, user=13)
    await submit(billing, 1, user=12)
    await submit(billing, 1, user=14)
    await submit(billing, 2, user=14)
    assert await claim(billing, user=14) is not None  # a live lease: lane 14 cannot move
    seen: list[int] = []
    token = ""
    while True:
        page = await billing.stub.ListRunnableJobs(
            pb.ListRunnableJobsRequest(page_size=1, page_token=token)
        )
        seen += page.user_ids
        token = page.next_page_token
        if not token:
            break
    assert seen == [13, 11, 12]
    code, _, meta = await fails(
        billing.stub.ListRunnableJobs(pb.ListRunnableJobsRequest(page_token="nope!"))
    )
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")


async def test_reserve_links_the_hold_to_its_job_and_a_redrive_gets_a_new_one(
    billing: Running,
) -> None:
    await new_user(billing)
    job = await claim_one(billing)

    async def reserve_for(key: str, amount: int) -> pb.Hold:
        reply = await billing.stub.Reserve(
            pb.ReserveRequest(
                idempotency_key=key,
                user_id=42,
                amount_credits=amount,
                job=pb.Job(
                    chat_id=42,
                    message_id=1,
                    file_id="file-1",
                    duration_seconds=60,
                    trace_id=TRACE,
                    job_id=job.job_id,
                ),
            )
        )
        return reply.hold

    hold = await reserve_for("reserve:42:1", 10)
    assert hold.job.job_id == job.job_id and hold.job.file_id == "file-1"
    renewed = await billing.stub.RenewJob(
        pb.RenewJobRequest(job_id=job.job_id, attempt=job.attempt, lease=LEASE)
    )
    assert renewed.job.hold_id == hold.hold_id
    await billing.stub.Release(pb.ReleaseRequest(idempotency_key="x", hold_id=hold.hold_id))
    # Re-driven: a new hold for the same job; the old one still names its job.
    second = await reserve_for("reserve:42:1:2", 12)
    got = await billing.stub.GetHold(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert got.hold.state == pb.HOLD_STATE_RELEASED and got.hold.job.job_id == job.job_id
    renewed = await billing.stub.RenewJob(
        pb.RenewJobRequest(job_id=job.job_id, attempt=job.attempt, lease=LEASE)
    )
    assert renewed.job.hold_id == second.hold_id
    assert await balance(billing) == (88, 12)
    await finish(billing, job)
    code, reason, _ = await fails(reserve_for("reserve:42:1:3", 1))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_LEASE_LOST")
    code, reason, _ = await fails(
        billing.stub.Reserve(
            pb.ReserveRequest(
                idempotency_key="r-unknown",
                user_id=42,
                amount_credits=1,
                job=pb.Job(chat_id=42, message_id=1, job_id=str(uuid.uuid4())),
            )
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    await ledger_invariants(billing.settings.database_url)


async def claim_one(b: Running) -> pb.QueuedJob:
    await submit(b, 1)
    job = await claim(b)
    assert job is not None
    return job
