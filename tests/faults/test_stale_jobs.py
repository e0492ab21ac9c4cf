"""ListStaleJobs, what the gateway's reconciler asks billing: pending holds past an age."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest

from billing.config import BillingSettings
from billing.migrate import migrate
from billing.server import CALLER_POLICY, create_app
from billing.sql import SQL_STALE_JOBS
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc
from voxmesh.errors import error_details
from voxmesh.server import ServerSettings

TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
async def stub(fresh_database: str) -> AsyncIterator[billing_pb2_grpc.BillingServiceStub]:
    await migrate(fresh_database)
    app = await create_app(
        BillingSettings(database_url=fresh_database, pool_min_size=1, pool_max_size=4),
        ServerSettings(service="billing", listen="127.0.0.1:0", grace_seconds=1.0),
        run_reaper=False,
    )
    port = await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield billing_pb2_grpc.BillingServiceStub(channel)
    await app.stop(grace=1.0)


async def reserve(stub: billing_pb2_grpc.BillingServiceStub, user: int, message: int) -> pb.Hold:
    reply = await stub.Reserve(
        pb.ReserveRequest(
            idempotency_key=f"reserve:{user}:{message}",
            user_id=user,
            amount_credits=3,
            job=pb.Job(
                chat_id=user,
                message_id=message,
                file_id=f"file-{message}",
                duration_seconds=15,
                trace_id=TRACE,
            ),
        )
    )
    return reply.hold


async def test_lists_pending_holds_past_the_age_oldest_first(
    stub: billing_pb2_grpc.BillingServiceStub, fresh_database: str
) -> None:
    for user, lang in ((1001, "ru"), (1002, "en")):
        await stub.EnsureUser(pb.EnsureUserRequest(user_id=user, language_code=lang))
    first = await reserve(stub, 1001, 1)
    second = await reserve(stub, 1002, 2)
    captured = await reserve(stub, 1001, 3)
    released = await reserve(stub, 1002, 4)
    await stub.Capture(
        pb.CaptureRequest(idempotency_key="c", hold_id=captured.hold_id, amount_credits=3)
    )
    await stub.Release(pb.ReleaseRequest(idempotency_key="r", hold_id=released.hold_id))
    # Nothing is that old yet.
    none = await stub.ListStaleJobs(pb.ListStaleJobsRequest(older_than_seconds=1))
    assert list(none.jobs) == []

    await asyncio.sleep(1.2)
    fresh = await reserve(stub, 1001, 5)  # too young to be listed
    page = await stub.ListStaleJobs(pb.ListStaleJobsRequest(older_than_seconds=1, page_size=1))
    [job] = page.jobs
    assert job.hold.hold_id == first.hold_id
    assert job.hold.state == pb.HOLD_STATE_PENDING
    assert (job.hold.job.chat_id, job.hold.job.message_id) == (1001, 1)
    assert (job.hold.job.file_id, job.hold.job.trace_id) == ("file-1", TRACE)
    assert job.language_code == "ru"
    assert page.next_page_token

    rest = await stub.ListStaleJobs(
        pb.ListStaleJobsRequest(older_than_seconds=1, page_size=1, page_token=page.next_page_token)
    )
    assert [j.hold.hold_id for j in rest.jobs] == [second.hold_id]
    assert rest.jobs[0].language_code == "en"
    assert rest.next_page_token == ""  # the fresh hold is too young to be listed
    every = await stub.ListStaleJobs(pb.ListStaleJobsRequest(older_than_seconds=1))
    assert {j.hold.hold_id for j in every.jobs} == {first.hold_id, second.hold_id}
    assert fresh.hold_id not in {j.hold.hold_id for j in every.jobs}

    # The partial index on pending holds can serve the listing (no index of its own).
    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN " + SQL_STALE_JOBS, 1.0, None, None, 10)
        )
    finally:
        await conn.close()
    assert "holds_pending_expire_time_idx" in plan, plan


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListStaleJobsRequest(older_than_seconds=0), "older_than_seconds"),
        (pb.ListStaleJobsRequest(older_than_seconds=8 * 86400), "older_than_seconds"),
        (pb.ListStaleJobsRequest(older_than_seconds=5, page_size=101), "page_size"),
        (pb.ListStaleJobsRequest(older_than_seconds=5, page_token="nope!"), "page_token"),
    ],
)
async def test_bad_requests_name_the_field(
    stub: billing_pb2_grpc.BillingServiceStub, request_: pb.ListStaleJobsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListStaleJobs(request_)
    details = error_details(info.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (details.metadata or {}).get("field") == field


def test_only_the_gateway_and_admin_may_list() -> None:
    # Not named in billing's policy: the deny-by-default rule covers it.
    assert "ListStaleJobs" not in CALLER_POLICY
    assert CALLER_POLICY["*"] == frozenset({"gateway", "admin"})
