"""Retention and erasure: EraseUser, the job retention sweep, and rows written
before migration 0002, over real gRPC and a real PostgreSQL."""

from __future__ import annotations

import pathlib
import uuid

import asyncpg
import grpc

from billing.migrate import default_directory, migrate
from billing.postgres import PgBillingStore
from billing.reaper import Reaper
from billing.v1 import billing_pb2 as pb
from tests.billing.billing_support import Running, StartBilling, with_database
from tests.billing.test_jobs import claim, finish, submit
from tests.billing.test_money import balance, fails, ledger_invariants, new_user, reserve


async def test_erase_user_keeps_the_amounts(billing: Running) -> None:
    await new_user(billing, username="ann", language_code="en")
    hold = await reserve(billing, "r", 30)
    await billing.stub.Capture(
        pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=20)
    )
    await submit(billing, 5)
    before = await balance(billing)
    erased = await billing.stub.EraseUser(pb.EraseUserRequest(user_id=42))
    assert erased.jobs_erased == 2
    user = (await billing.stub.GetUser(pb.GetUserRequest(user_id=42))).user
    assert (user.username, user.language_code) == ("", "")
    assert await balance(billing) == before == (80, 0)
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        left = await conn.fetch(
            "SELECT chat_id, message_id, file_id, trace_id, spec FROM jobs WHERE user_id = 42"
        )
    finally:
        await conn.close()
    assert {tuple(r) for r in left} == {(0, 0, "", "", None)}
    listing = await billing.stub.ListTransactions(pb.ListTransactionsRequest(user_id=42))
    assert [t.amount_credits for t in listing.transactions] == [-20, 100]
    code, _, _ = await fails(billing.stub.EraseUser(pb.EraseUserRequest(user_id=9)))
    assert code == grpc.StatusCode.NOT_FOUND
    await ledger_invariants(billing.settings.database_url)


async def test_retention_deletes_old_finished_jobs_only(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 10)  # a plain Reserve's job row
    await billing.stub.Capture(
        pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=10)
    )
    await submit(billing, 1)
    await submit(billing, 2)
    running = await claim(billing)
    assert running is not None
    done = await finish(billing, running)
    assert done.spec == b""  # a finished job keeps no spec
    await submit(billing, 3)  # queued, and stays however old
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        await conn.execute("UPDATE jobs SET create_time = now() - interval '31 days'")
        assert await conn.fetchval("SELECT count(*) FROM jobs WHERE file_id <> ''") == 0
        reaper = Reaper(
            PgBillingStore(billing.app.pool),
            interval_seconds=1,
            batch_size=10,
            idempotency_ttl_hours=24,
            job_retention_days=30,
        )
        await reaper.run_once()
        left = await conn.fetch("SELECT state FROM jobs ORDER BY seq")
    finally:
        await conn.close()
    assert [r["state"] for r in left] == ["queued", "queued"]
    # The hold and the ledger stay: the hold is readable, and refundable.
    got = await billing.stub.GetHold(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert (got.hold.state, got.hold.job.chat_id) == (pb.HOLD_STATE_CAPTURED, 0)
    refund = await billing.stub.Refund(
        pb.RefundRequest(idempotency_key="rf", hold_id=hold.hold_id, amount_credits=3)
    )
    assert refund.balance_credits == 93
    await ledger_invariants(billing.settings.database_url)


async def test_rows_written_before_the_migration_stay_readable(
    tmp_path: pathlib.Path, postgres_dsn: str, start_billing: StartBilling
) -> None:
    """0001 alone, a hold per job as it was; then 0002 and the service reads them."""
    name = f"billing_old_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(postgres_dsn, name)
    try:
        only_first = tmp_path / "m"
        only_first.mkdir()
        src = default_directory({}) / "0001_billing_core.sql"
        (only_first / src.name).write_text(src.read_text())
        await migrate(dsn, only_first)
        old = await asyncpg.connect(dsn)
        pending, settled = uuid.uuid4(), uuid.uuid4()
        try:
            await old.execute("INSERT INTO users (user_id) VALUES (42)")
            for hold_id, state in ((pending, "pending"), (settled, "released")):
                await old.execute(
                    "INSERT INTO holds (hold_id, user_id, amount_credits, state, expire_time,"
                    " settle_time) VALUES ($1, 42, 5, $2, now() + interval '1 hour',"
                    " CASE WHEN $2 = 'pending' THEN NULL ELSE now() END)",
                    hold_id,
                    state,
                )
                await old.execute(
                    "INSERT INTO jobs (hold_id, user_id, chat_id, message_id, file_id,"
                    " duration_seconds, state) VALUES ($1, 42, 100, 7, 'f', 30, $2)",
                    hold_id,
                    "pending" if state == "pending" else "cancelled",
                )
        finally:
            await old.close()
        assert await migrate(dsn) == ["0002_durable_jobs.sql"]
        b = await start_billing(database_url=dsn)
        live = (await b.stub.GetHold(pb.GetHoldRequest(hold_id=str(pending)))).hold
        assert (live.job.chat_id, live.job.message_id, live.job.file_id) == (100, 7, "f")
        assert live.job.job_id == ""  # not a durable job
        gone = (await b.stub.GetHold(pb.GetHoldRequest(hold_id=str(settled)))).hold
        assert (gone.state, gone.job.file_id) == (pb.HOLD_STATE_RELEASED, "")
        await b.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
