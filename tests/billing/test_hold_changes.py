"""ExtendHold, GetHold, Reserve replays and fingerprints, RefundTopUp, over real
gRPC and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration

from billing.postgres import PgBillingStore
from billing.v1 import billing_pb2 as pb
from tests.billing.billing_support import Running, StartBilling, job
from tests.billing.test_money import balance, fails, ledger_invariants, new_user, reserve

OTHER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def extend(
    b: Running, key: str, hold_id: str, amount: int, ttl: int | None = None
) -> pb.ExtendHoldResponse:
    req = pb.ExtendHoldRequest(idempotency_key=key, hold_id=hold_id, amount_credits=amount)
    if ttl is not None:
        req.ttl.CopyFrom(Duration(seconds=ttl))
    return await b.stub.ExtendHold(req)


async def top_up(b: Running, charge: str, amount: int) -> pb.TopUpResponse:
    return await b.stub.TopUp(
        pb.TopUpRequest(
            idempotency_key=f"stars:{charge}",
            user_id=42,
            amount_credits=amount,
            provider="telegram_stars",
            provider_charge_id=charge,
        )
    )


async def test_extend_hold_grows_it_from_the_balance(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 30)
    grown = await extend(billing, "e1", hold.hold_id, 50)
    assert (grown.hold.amount_credits, grown.hold.state, grown.balance_credits) == (
        50,
        pb.HOLD_STATE_PENDING,
        50,
    )
    assert grown.hold.expire_time == hold.expire_time  # no ttl: the expiry stays
    assert await balance(billing) == (50, 50)
    # Replayed: the first answer, nothing taken twice.
    assert await extend(billing, "e1", hold.hold_id, 50) == grown
    assert await balance(billing) == (50, 50)
    # Not enough: refused, the hold unchanged.
    code, reason, meta = await fails(extend(billing, "e2", hold.hold_id, 101))
    assert (code, reason, meta["required_credits"], meta["balance_credits"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
        "51",
        "50",
    )
    got = await billing.stub.GetHold(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert got.hold.amount_credits == 50
    # Shrinking is not extending.
    code, _, meta = await fails(extend(billing, "e3", hold.hold_id, 20))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "amount_credits")
    # Only the lifetime: the same amount, a later expiry.
    later = await extend(billing, "e4", hold.hold_id, 50, ttl=7200)
    assert later.hold.expire_time.seconds > hold.expire_time.seconds + 3000
    assert later.hold.amount_credits == 50 and later.balance_credits == 50
    cap = await billing.stub.Capture(
        pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=45)
    )
    assert cap.balance_credits == 55
    code, reason, meta = await fails(extend(billing, "e5", hold.hold_id, 60))
    assert (code, reason, meta["state"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_NOT_PENDING",
        "captured",
    )
    code, _, _ = await fails(extend(billing, "e6", str(uuid.uuid4()), 60))
    assert code == grpc.StatusCode.NOT_FOUND
    await ledger_invariants(billing.settings.database_url)


async def test_the_reaper_returns_an_extended_hold_whole(start_billing: StartBilling) -> None:
    b = await start_billing(reaper_interval_seconds=0.2)
    await new_user(b)
    hold = await reserve(b, "r", 10)
    await extend(b, "e", hold.hold_id, 35, ttl=1)
    assert await balance(b) == (65, 35)
    for _ in range(100):
        if await balance(b) == (100, 0):
            break
        await asyncio.sleep(0.1)
    got = await b.stub.GetHold(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert (got.hold.state, got.hold.amount_credits) == (pb.HOLD_STATE_EXPIRED, 35)
    assert await balance(b) == (100, 0)
    snapshot = await PgBillingStore(b.app.pool).snapshot()
    assert (snapshot.holds_pending, snapshot.credits_held, snapshot.holds_expired) == (0, 0, 1)
    await ledger_invariants(b.settings.database_url)


async def test_get_hold(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 10)
    got = await billing.stub.GetHold(pb.GetHoldRequest(hold_id=hold.hold_id))
    assert got.hold == hold
    code, _, _ = await fails(billing.stub.GetHold(pb.GetHoldRequest(hold_id=str(uuid.uuid4()))))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _, meta = await fails(billing.stub.GetHold(pb.GetHoldRequest(hold_id="x")))
    assert (code, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "hold_id")


async def test_a_replayed_reserve_reports_the_hold_as_it_is_now(billing: Running) -> None:
    await new_user(billing)
    req = pb.ReserveRequest(
        idempotency_key="reserve:100:1", user_id=42, amount_credits=20, job=job()
    )
    first = (await billing.stub.Reserve(req)).hold
    # A re-processed update: a new trace id. The same request, so a replay.
    retraced = pb.ReserveRequest()
    retraced.CopyFrom(req)
    retraced.job.trace_id = OTHER_TRACE
    assert (await billing.stub.Reserve(retraced)).hold == first
    await billing.stub.Release(pb.ReleaseRequest(idempotency_key="x", hold_id=first.hold_id))
    again = (await billing.stub.Reserve(req)).hold
    assert (again.hold_id, again.state) == (first.hold_id, pb.HOLD_STATE_RELEASED)
    assert await balance(billing) == (100, 0)
    # What the caller asked for differs (the file): key reuse.
    changed = pb.ReserveRequest()
    changed.CopyFrom(req)
    changed.job.file_id = "another"
    code, reason, _ = await fails(billing.stub.Reserve(changed))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_keys_stored_with_the_old_fingerprint_still_replay(billing: Running) -> None:
    await new_user(billing)
    req = pb.ReserveRequest(
        idempotency_key="reserve:100:7", user_id=42, amount_credits=5, job=job(7)
    )
    hold = (await billing.stub.Reserve(req)).hold
    # Before this release the hash covered the whole request, trace id included.
    body = pb.ReserveRequest()
    body.CopyFrom(req)
    body.ClearField("idempotency_key")
    old_hash = hashlib.sha256(body.SerializeToString(deterministic=True)).digest()
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        await conn.execute(
            "UPDATE idempotency_keys SET request_hash = $1 WHERE key = 'reserve:100:7'", old_hash
        )
    finally:
        await conn.close()
    assert (await billing.stub.Reserve(req)).hold.hold_id == hold.hold_id
    assert await balance(billing) == (95, 5)


async def test_refund_top_up_takes_a_payment_back_once(billing: Running) -> None:
    await new_user(billing)
    await top_up(billing, "abc", 500)
    req = pb.RefundTopUpRequest(
        idempotency_key="refund:abc",
        provider="telegram_stars",
        provider_charge_id="abc",
        reason="admin",
    )
    first = await billing.stub.RefundTopUp(req)
    assert (first.user_id, first.balance_credits) == (42, 100)
    assert first.transaction.kind == pb.TRANSACTION_KIND_TOP_UP_REFUND
    assert first.transaction.amount_credits == -500
    assert await billing.stub.RefundTopUp(req) == first
    other = pb.RefundTopUpRequest()
    other.CopyFrom(req)
    other.idempotency_key = "refund:abc:again"
    code, reason, _ = await fails(billing.stub.RefundTopUp(other))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert await balance(billing) == (100, 0)
    listing = await billing.stub.ListTransactions(pb.ListTransactionsRequest(user_id=42))
    assert [t.kind for t in listing.transactions][:2] == [
        pb.TRANSACTION_KIND_TOP_UP_REFUND,
        pb.TRANSACTION_KIND_TOP_UP,
    ]
    unknown = pb.RefundTopUpRequest()
    unknown.CopyFrom(req)
    unknown.idempotency_key, unknown.provider_charge_id = "refund:zzz", "zzz"
    code, _, _ = await fails(billing.stub.RefundTopUp(unknown))
    assert code == grpc.StatusCode.NOT_FOUND
    await ledger_invariants(billing.settings.database_url)


async def test_spent_credits_cannot_be_refunded(billing: Running) -> None:
    await new_user(billing)
    await top_up(billing, "def", 50)
    await reserve(billing, "r", 120)  # 150 -> 30 spendable
    req = pb.RefundTopUpRequest(
        idempotency_key="refund:def", provider="telegram_stars", provider_charge_id="def"
    )
    code, reason, meta = await fails(billing.stub.RefundTopUp(req))
    assert (code, reason, meta["balance_credits"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BALANCE_TOO_LOW",
        "30",
    )
    assert await balance(billing) == (30, 120)
    await ledger_invariants(billing.settings.database_url)
