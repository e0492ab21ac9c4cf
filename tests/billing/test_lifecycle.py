"""Holds over time and failures: the reaper, a billing restart, a PostgreSQL restart."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from collections.abc import Iterator

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from billing.config import BillingSettings
from billing.migrate import migrate
from billing.postgres import PgBillingStore
from billing.reaper import Reaper
from billing.v1 import billing_pb2 as pb
from tests.billing.billing_support import Running, StartBilling
from tests.billing.test_money import balance, fails, ledger_invariants, new_user, reserve
from voxmesh.errors import error_details
from voxmesh_dev.embedded import EmbeddedPostgres


async def eventually(check: object, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            assert await check()  # type: ignore[operator]
            return
        except AssertionError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.1)


async def test_reaper_expires_abandoned_hold(start_billing: StartBilling) -> None:
    b = await start_billing(hold_ttl_seconds=1, reaper_interval_seconds=0.2)
    await new_user(b)
    hold = await reserve(b, "r", 60)
    assert await balance(b) == (40, 60)

    async def restored() -> bool:
        return await balance(b) == (100, 0)

    await eventually(restored)
    code, reason, meta = await fails(
        b.stub.Capture(pb.CaptureRequest(idempotency_key="late", hold_id=hold.hold_id))
    )
    assert (code, reason, meta["state"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_NOT_PENDING",
        "expired",
    )
    conn = await asyncpg.connect(b.settings.database_url)
    try:
        state = await conn.fetchval(
            "SELECT state FROM jobs WHERE hold_id = $1", uuid.UUID(hold.hold_id)
        )
        assert state == "expired"
    finally:
        await conn.close()
    await ledger_invariants(b.settings.database_url)


async def test_the_caller_sets_how_long_a_hold_waits(start_billing: StartBilling) -> None:
    # A two-hour note's job may run for hours: its hold must outlive it, so
    # the caller's ttl wins over the default (900 s here).
    b = await start_billing(reaper_interval_seconds=0.2)
    await new_user(b)
    long = await b.stub.Reserve(
        pb.ReserveRequest(
            idempotency_key="long",
            user_id=42,
            amount_credits=10,
            job=pb.Job(chat_id=1, message_id=1, duration_seconds=7200),
            ttl=Duration(seconds=7200 + 600),
        )
    )
    default = await reserve(b, "default", 10, msg=2)
    short = await b.stub.Reserve(
        pb.ReserveRequest(
            idempotency_key="short",
            user_id=42,
            amount_credits=10,
            job=pb.Job(chat_id=1, message_id=3),
            ttl=Duration(seconds=1),
        )
    )

    def lifetime(hold: pb.Hold) -> float:
        return hold.expire_time.ToDatetime().timestamp() - time.time()

    assert lifetime(long.hold) == pytest.approx(7800, abs=30)
    assert lifetime(default) == pytest.approx(900, abs=30)

    async def only_the_short_one_expired() -> bool:
        return await balance(b) == (80, 20)

    await eventually(only_the_short_one_expired)
    assert short.hold.state == pb.HOLD_STATE_PENDING


async def test_reapers_in_parallel_expire_each_hold_once(billing: Running) -> None:
    dsn = billing.settings.database_url
    for uid in range(1, 6):
        await new_user(billing, user_id=uid)
        for n in range(10):
            await reserve(billing, f"r{uid}-{n}", 3, user_id=uid, msg=n + 1)
    conn = await asyncpg.connect(dsn)
    await conn.execute("UPDATE holds SET expire_time = now() - interval '1 second'")
    await conn.close()
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=2) for _ in range(3)]
    try:
        reapers = [
            Reaper(PgBillingStore(p), interval_seconds=1, batch_size=4, idempotency_ttl_hours=24)
            for p in pools
        ]
        results = await asyncio.gather(*(r.run_once() for r in reapers))
    finally:
        for p in pools:
            await p.close()
    assert sum(expired for expired, _ in results) == 50
    for uid in range(1, 6):
        assert await balance(billing, uid) == (100, 0)
    await ledger_invariants(dsn)


async def test_reaper_prunes_old_idempotency_keys(billing: Running) -> None:
    await new_user(billing)
    await reserve(billing, "old", 1)
    await reserve(billing, "new", 1, msg=2)
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        await conn.execute(
            "UPDATE idempotency_keys SET create_time = now() - interval '25 hours'"
            " WHERE key = 'old'"
        )
        store = PgBillingStore(billing.app.pool)
        reaper = Reaper(store, interval_seconds=1, batch_size=10, idempotency_ttl_hours=24)
        assert await reaper.run_once() == (0, 1)
        keys = await conn.fetch("SELECT key FROM idempotency_keys ORDER BY key")
        assert [r["key"] for r in keys] == ["new"]
    finally:
        await conn.close()


async def test_capture_after_billing_restart(start_billing: StartBilling) -> None:
    first = await start_billing()
    await new_user(first)
    hold = await reserve(first, "reserve:100:1", 30)
    await first.stop()

    second = await start_billing()
    req = pb.CaptureRequest(
        idempotency_key="capture:100:1", hold_id=hold.hold_id, amount_credits=25
    )
    cap = await second.stub.Capture(req)
    assert cap.hold.state == pb.HOLD_STATE_CAPTURED
    assert cap.balance_credits == 75
    # The gateway retrying after a lost reply: the same answer, nothing charged twice.
    assert await second.stub.Capture(req) == cap
    # And the old Reserve key still answers with the original hold, as it is
    # now: captured (a caller must not run the job again), its file id gone.
    again = await reserve(second, "reserve:100:1", 30)
    assert again.hold_id == hold.hold_id and again.state == pb.HOLD_STATE_CAPTURED
    assert again.captured_credits == 25 and again.job.file_id == ""
    assert await balance(second) == (75, 0)
    await ledger_invariants(second.settings.database_url)


@pytest.fixture
def own_postgres(tmp_path: pathlib.Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server this test may stop and start."""
    server = EmbeddedPostgres(tmp_path / "pg")
    server.start()
    yield server
    server.stop()


async def test_postgres_restart_is_unavailable_then_heals(
    own_postgres: EmbeddedPostgres, start_billing: StartBilling
) -> None:
    dsn = own_postgres.dsn
    await migrate(dsn)
    b = await start_billing(database_url=dsn)
    await new_user(b)
    hold = await reserve(b, "r1", 10)

    await asyncio.to_thread(own_postgres.stop)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await b.stub.Capture(
            pb.CaptureRequest(idempotency_key="c1", hold_id=hold.hold_id, amount_credits=10)
        )
    d = error_details(info.value)
    assert (d.code, d.reason) == (grpc.StatusCode.UNAVAILABLE, "DEPENDENCY_UNAVAILABLE")
    assert d.retry_after is not None

    await asyncio.to_thread(own_postgres.start)

    async def healed() -> bool:
        try:
            cap = await b.stub.Capture(
                pb.CaptureRequest(idempotency_key="c1", hold_id=hold.hold_id, amount_credits=10)
            )
        except grpc.aio.AioRpcError as exc:
            # Only the outage's own status is acceptable while the pool heals.
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            return False
        return cap.balance_credits == 90

    await eventually(healed, timeout=20)
    assert await balance(b) == (90, 0)


def test_settings_from_env() -> None:
    s = BillingSettings.from_env(
        {
            "DATABASE_URL": "postgresql://x/y",
            "BILLING_ADMIN_USER_IDS": "1, 2,3",
            "BILLING_PRICE_PER_MINUTE_CREDITS": "6",
        }
    )
    assert s.admin_user_ids == frozenset({1, 2, 3})
    assert (s.price_per_minute_credits, s.trial_credits, s.hold_ttl_seconds) == (6, 100, 900)
    assert s.idempotency_ttl_hours == 48
    from voxmesh.config import ConfigError

    with pytest.raises(ConfigError, match="DATABASE_URL"):
        BillingSettings.from_env({})
    with pytest.raises(ConfigError, match="BILLING_IDEMPOTENCY_TTL_HOURS"):
        BillingSettings.from_env({"DATABASE_URL": "x", "BILLING_IDEMPOTENCY_TTL_HOURS": "12"})
    with pytest.raises(ConfigError, match="BILLING_ADMIN_USER_IDS"):
        BillingSettings.from_env({"DATABASE_URL": "x", "BILLING_ADMIN_USER_IDS": "1,bob"})
