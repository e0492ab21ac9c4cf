"""BillingService over real gRPC and a real PostgreSQL: the money paths."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc
from tests.billing.billing_support import Running, StartBilling, job
from voxmesh.errors import error_details


async def new_user(b: Running, user_id: int = 42, **kw: str) -> pb.EnsureUserResponse:
    return await b.stub.EnsureUser(pb.EnsureUserRequest(user_id=user_id, **kw))


async def balance(b: Running, user_id: int = 42) -> tuple[int, int]:
    r = await b.stub.GetBalance(pb.GetBalanceRequest(user_id=user_id))
    return r.balance_credits, r.held_credits


async def reserve(b: Running, key: str, amount: int, user_id: int = 42, msg: int = 1) -> pb.Hold:
    r = await b.stub.Reserve(
        pb.ReserveRequest(idempotency_key=key, user_id=user_id, amount_credits=amount, job=job(msg))
    )
    return r.hold


async def fails(call: object) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    d = error_details(info.value)
    return d.code, d.reason, dict(d.metadata or {})


async def ledger_invariants(dsn: str) -> None:
    """What must hold after any mix of calls, checked in SQL."""
    conn = await asyncpg.connect(dsn)
    try:
        # Debits equal credits, transaction by transaction and in total.
        assert (
            await conn.fetchval("SELECT coalesce(sum(amount_credits), 0) FROM ledger_entries") == 0
        )
        unbalanced = await conn.fetchval(
            "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries"
            " GROUP BY transaction_id HAVING sum(amount_credits) <> 0 OR count(*) <> 2) x"
        )
        assert unbalanced == 0
        # Each user's stored balance is what the ledger says it is.
        drift = await conn.fetch(
            "SELECT a.user_id FROM accounts a LEFT JOIN ledger_entries e USING (account_id)"
            " WHERE a.kind = 'user' GROUP BY a.user_id, a.balance"
            " HAVING a.balance <> coalesce(sum(e.amount_credits), 0)"
        )
        assert drift == []
        # Escrow holds exactly the pending holds, and each user's held column agrees.
        escrow = await conn.fetchval(
            "SELECT coalesce(sum(amount_credits), 0) FROM ledger_entries WHERE account_id = 4"
        )
        pending = await conn.fetchval(
            "SELECT coalesce(sum(amount_credits), 0) FROM holds WHERE state = 'pending'"
        )
        held = await conn.fetchval("SELECT coalesce(sum(held), 0) FROM accounts")
        assert escrow == pending == held
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE balance < 0") == 0
    finally:
        await conn.close()


async def test_ensure_user_grants_trial_once(billing: Running) -> None:
    first = await new_user(billing, username="ann", language_code="en")
    assert first.created
    assert first.user.role == pb.ROLE_USER
    assert first.user.username == "ann"
    again = await new_user(billing, username="ann2", language_code="ru")
    assert not again.created
    assert again.user.username == "ann2" and again.user.language_code == "ru"
    assert await balance(billing) == (100, 0)
    listing = await billing.stub.ListTransactions(pb.ListTransactionsRequest(user_id=42))
    assert [t.kind for t in listing.transactions] == [pb.TRANSACTION_KIND_TRIAL]
    assert listing.transactions[0].amount_credits == 100
    got = await billing.stub.GetUser(pb.GetUserRequest(user_id=42))
    assert got.user.username == "ann2"


async def test_concurrent_ensure_user_creates_once(billing: Running) -> None:
    results = await asyncio.gather(*(new_user(billing, user_id=7) for _ in range(10)))
    assert sum(r.created for r in results) == 1
    assert await balance(billing, 7) == (100, 0)


async def test_admin_ids_from_config(start_billing: StartBilling) -> None:
    b = await start_billing(admin_user_ids=frozenset({9}))
    r = await new_user(b, user_id=9)
    assert r.user.role == pb.ROLE_ADMIN


async def test_reserve_capture_partial_returns_the_rest(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r1", 30)
    assert hold.state == pb.HOLD_STATE_PENDING
    assert hold.amount_credits == 30
    assert hold.job.message_id == 1 and hold.job.file_id == "file-1"
    assert hold.expire_time.seconds > 0
    assert await balance(billing) == (70, 30)

    cap = await billing.stub.Capture(
        pb.CaptureRequest(idempotency_key="c1", hold_id=hold.hold_id, amount_credits=12)
    )
    assert cap.hold.state == pb.HOLD_STATE_CAPTURED
    assert cap.hold.captured_credits == 12
    assert cap.balance_credits == 88
    assert await balance(billing) == (88, 0)

    listing = await billing.stub.ListTransactions(pb.ListTransactionsRequest(user_id=42))
    kinds = [(t.kind, t.amount_credits, t.balance_after_credits) for t in listing.transactions]
    assert kinds == [(pb.TRANSACTION_KIND_CAPTURE, -12, 88), (pb.TRANSACTION_KIND_TRIAL, 100, 100)]
    await ledger_invariants(billing.settings.database_url)


async def test_release_returns_everything(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r1", 40)
    rel = await billing.stub.Release(
        pb.ReleaseRequest(idempotency_key="x1", hold_id=hold.hold_id, reason="asr failed")
    )
    assert rel.hold.state == pb.HOLD_STATE_RELEASED
    assert rel.balance_credits == 100
    assert await balance(billing) == (100, 0)
    # A second, different release is refused: the hold is settled.
    code, reason, meta = await fails(
        billing.stub.Release(pb.ReleaseRequest(idempotency_key="x2", hold_id=hold.hold_id))
    )
    assert (code, reason, meta["state"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "HOLD_NOT_PENDING",
        "released",
    )
    await ledger_invariants(billing.settings.database_url)


async def test_same_reserve_key_twice_charges_once(billing: Running) -> None:
    await new_user(billing)
    a = await reserve(billing, "reserve:100:1", 25)
    b = await reserve(billing, "reserve:100:1", 25)
    assert a == b
    assert await balance(billing) == (75, 25)
    # Concurrent copies of one new key: one effect, one answer.
    holds = await asyncio.gather(*(reserve(billing, "reserve:100:2", 5, msg=2) for _ in range(8)))
    assert len({h.hold_id for h in holds}) == 1
    assert await balance(billing) == (70, 30)


async def test_key_reuse_with_another_body_is_already_exists(billing: Running) -> None:
    await new_user(billing)
    await reserve(billing, "k", 10)
    code, reason, _ = await fails(reserve(billing, "k", 11))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    # Keys are per method: the same string on Capture is a different key.
    hold = await reserve(billing, "k", 10)
    cap = await billing.stub.Capture(
        pb.CaptureRequest(idempotency_key="k", hold_id=hold.hold_id, amount_credits=10)
    )
    assert cap.hold.captured_credits == 10


async def test_insufficient_funds_has_reason_and_metadata(billing: Running) -> None:
    await new_user(billing)
    code, reason, meta = await fails(reserve(billing, "big", 101))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert reason == "INSUFFICIENT_FUNDS"
    assert meta["required_credits"] == "101"
    assert meta["balance_credits"] == "100"
    # Nothing happened, so the same key may be tried again after a top-up.
    await billing.stub.TopUp(
        pb.TopUpRequest(
            idempotency_key="pay1",
            user_id=42,
            amount_credits=50,
            provider="telegram_stars",
            provider_charge_id="ch1",
        )
    )
    hold = await reserve(billing, "big", 101)
    assert hold.amount_credits == 101
    assert await balance(billing) == (49, 101)


async def test_banned_user_cannot_reserve(start_billing: StartBilling) -> None:
    b = await start_billing(admin_user_ids=frozenset({1}))
    await new_user(b, user_id=1)
    await new_user(b)
    r = await b.stub.SetRole(pb.SetRoleRequest(actor_user_id=1, user_id=42, role=pb.ROLE_BANNED))
    assert r.user.role == pb.ROLE_BANNED
    code, reason, _ = await fails(reserve(b, "r", 1))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "USER_BANNED")


async def test_capture_above_hold_is_refused(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 10)
    code, reason, _ = await fails(
        billing.stub.Capture(
            pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=11)
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CAPTURE_EXCEEDS_HOLD")
    assert await balance(billing) == (90, 10)


async def test_database_refuses_what_the_code_must_never_do(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 10)
    conn = await asyncpg.connect(billing.settings.database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE accounts SET balance = -1 WHERE user_id = 42")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE holds SET state = 'captured', captured_credits = 11, settle_time = now()"
                " WHERE hold_id = $1",
                uuid.UUID(hold.hold_id),
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE ledger_entries SET amount_credits = 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM ledger_transactions")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("TRUNCATE ledger_entries, ledger_transactions")
        # A transaction without its two entries cannot commit.
        with pytest.raises(asyncpg.CheckViolationError, match="not balanced"):
            await conn.execute(
                "INSERT INTO ledger_transactions (kind, user_id, amount_credits,"
                " debit_account_id, credit_account_id, balance_after)"
                " VALUES ('grant', 42, 5, 3, 1000, 0)"
            )
    finally:
        await conn.close()


async def test_repeated_capture_returns_first_response(billing: Running) -> None:
    await new_user(billing)
    hold = await reserve(billing, "r", 20)
    req = pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=20)
    first = await billing.stub.Capture(req)
    await billing.stub.TopUp(
        pb.TopUpRequest(
            idempotency_key="t",
            user_id=42,
            amount_credits=5,
            provider="telegram_stars",
            provider_charge_id="c9",
        )
    )
    again = await billing.stub.Capture(req)
    assert again == first  # the stored bytes, not today's balance
    code, reason, _ = await fails(
        billing.stub.Capture(
            pb.CaptureRequest(idempotency_key="c-other", hold_id=hold.hold_id, amount_credits=20)
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "HOLD_NOT_PENDING")


async def test_top_up_charge_id_credits_once(billing: Running) -> None:
    await new_user(billing)
    req = pb.TopUpRequest(
        idempotency_key="stars:abc",
        user_id=42,
        amount_credits=500,
        provider="telegram_stars",
        provider_charge_id="abc",
    )
    first = await billing.stub.TopUp(req)
    assert first.transaction.kind == pb.TRANSACTION_KIND_TOP_UP
    assert first.balance_credits == 600
    assert await billing.stub.TopUp(req) == first
    other_key = pb.TopUpRequest()
    other_key.CopyFrom(req)
    other_key.idempotency_key = "another"
    code, reason, meta = await fails(billing.stub.TopUp(other_key))
    assert (code, reason, meta["provider_charge_id"]) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        "abc",
    )
    assert await balance(billing) == (600, 0)


async def test_refund_grant_and_stats(start_billing: StartBilling) -> None:
    b = await start_billing(admin_user_ids=frozenset({1}))
    await new_user(b, user_id=1)
    await new_user(b)
    hold = await reserve(b, "r", 30)
    await b.stub.Capture(
        pb.CaptureRequest(idempotency_key="c", hold_id=hold.hold_id, amount_credits=30)
    )
    ref = await b.stub.Refund(
        pb.RefundRequest(idempotency_key="f", hold_id=hold.hold_id, amount_credits=10, reason="bad")
    )
    assert ref.transaction.kind == pb.TRANSACTION_KIND_REFUND
    assert ref.transaction.amount_credits == 10
    assert ref.balance_credits == 80
    code, _, meta = await fails(
        b.stub.Refund(
            pb.RefundRequest(idempotency_key="f2", hold_id=hold.hold_id, amount_credits=21)
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and meta["refundable_credits"] == "20"

    code, reason, _ = await fails(
        b.stub.Grant(
            pb.GrantRequest(idempotency_key="g", actor_user_id=42, user_id=42, amount_credits=5)
        )
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_ADMIN")
    g = await b.stub.Grant(
        pb.GrantRequest(idempotency_key="g", actor_user_id=1, user_id=42, amount_credits=5)
    )
    assert g.transaction.kind == pb.TRANSACTION_KIND_GRANT and g.balance_credits == 85

    code, reason, _ = await fails(b.stub.Stats(pb.StatsRequest(actor_user_id=42)))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_ADMIN")
    code, reason, _ = await fails(
        b.stub.SetRole(pb.SetRoleRequest(actor_user_id=999, user_id=42, role=pb.ROLE_ADMIN))
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_ADMIN")
    await reserve(b, "r2", 7, msg=2)
    s = await b.stub.Stats(pb.StatsRequest(actor_user_id=1))
    assert (s.users, s.holds_pending, s.credits_held, s.credits_captured, s.credits_topped_up) == (
        2,
        1,
        7,
        30,
        0,
    )
    await ledger_invariants(b.settings.database_url)


async def test_not_found(billing: Running) -> None:
    code, reason, _ = await fails(billing.stub.GetBalance(pb.GetBalanceRequest(user_id=5)))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    code, reason, _ = await fails(reserve(billing, "r", 1, user_id=5))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    code, reason, _ = await fails(
        billing.stub.Capture(
            pb.CaptureRequest(idempotency_key="c", hold_id=str(uuid.uuid4()), amount_credits=1)
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    code, _, _ = await fails(billing.stub.ListTransactions(pb.ListTransactionsRequest(user_id=5)))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ReserveRequest(user_id=42, amount_credits=1, job=job()), "idempotency_key"),
        (
            pb.ReserveRequest(idempotency_key="k" * 129, user_id=42, amount_credits=1, job=job()),
            "idempotency_key",
        ),
        (pb.ReserveRequest(idempotency_key="k", user_id=0, amount_credits=1, job=job()), "user_id"),
        (
            pb.ReserveRequest(idempotency_key="k", user_id=42, amount_credits=0, job=job()),
            "amount_credits",
        ),
        (pb.ReserveRequest(idempotency_key="k", user_id=42, amount_credits=1), "job"),
        (
            pb.ReserveRequest(
                idempotency_key="k",
                user_id=42,
                amount_credits=1,
                job=pb.Job(chat_id=1, message_id=1, trace_id="xyz"),
            ),
            "job.trace_id",
        ),
        *(
            (
                pb.ReserveRequest(
                    idempotency_key="k", user_id=42, amount_credits=1, job=job(), ttl=ttl
                ),
                "ttl",
            )
            for ttl in (
                Duration(seconds=0),
                Duration(seconds=7 * 86400 + 1),
                Duration(seconds=-5),
                Duration(seconds=60, nanos=500_000_000),
            )
        ),
        (pb.CaptureRequest(idempotency_key="k", hold_id="nope", amount_credits=1), "hold_id"),
        (
            pb.CaptureRequest(idempotency_key="k", hold_id=str(uuid.uuid4()), amount_credits=-1),
            "amount_credits",
        ),
        (pb.QuoteRequest(duration_seconds=0), "duration_seconds"),
        (pb.QuoteRequest(duration_seconds=86_401), "duration_seconds"),
        (pb.EnsureUserRequest(user_id=1, username="u" * 65), "username"),
        (
            pb.TopUpRequest(
                idempotency_key="k", user_id=1, amount_credits=1, provider_charge_id="c"
            ),
            "provider",
        ),
        (pb.SetRoleRequest(actor_user_id=1, user_id=2), "role"),
        (pb.ListTransactionsRequest(user_id=1, page_size=101), "page_size"),
        (pb.ListTransactionsRequest(user_id=1, page_token="garbage!"), "page_token"),
    ],
)
async def test_invalid_requests(billing: Running, request_: object, field: str) -> None:
    method = getattr(billing.stub, type(request_).__name__.removesuffix("Request"))
    code, reason, meta = await fails(method(request_))
    assert (code, reason, meta["field"]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
        field,
    )


async def test_quote_and_seconds_available(billing: Running) -> None:
    # 10 credits a minute: 1 s -> 1 (minimum), 6 s -> 1, 7 s -> 2, 61 s -> 11.
    prices = [
        (await billing.stub.Quote(pb.QuoteRequest(duration_seconds=s))).amount_credits
        for s in (1, 6, 7, 61)
    ]
    assert prices == [1, 1, 2, 11]
    await new_user(billing)
    r = await billing.stub.GetBalance(pb.GetBalanceRequest(user_id=42))
    assert r.seconds_available == 600


async def test_list_transactions_pages_newest_first(billing: Running) -> None:
    await new_user(billing)
    for i in range(1, 8):
        await billing.stub.TopUp(
            pb.TopUpRequest(
                idempotency_key=f"t{i}",
                user_id=42,
                amount_credits=i,
                provider="telegram_stars",
                provider_charge_id=f"ch{i}",
            )
        )
        # Hold movements stay off the statement.
        await reserve(billing, f"r{i}", 1, msg=i)
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = await billing.stub.ListTransactions(
            pb.ListTransactionsRequest(user_id=42, page_size=3, page_token=token)
        )
        pages += 1
        seen += [t.amount_credits for t in page.transactions]
        token = page.next_page_token
        if not token:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1, 100]
    assert pages == 3
    code, _, meta = await fails(
        billing.stub.ListTransactions(
            pb.ListTransactionsRequest(user_id=43, page_token="AAAAAAAAACoAAAAAAAAAAQ")
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and meta["field"] == "page_token"


def test_servicer_implements_every_rpc() -> None:
    from billing.service import BillingServicer

    rpcs = pb.DESCRIPTOR.services_by_name["BillingService"].methods_by_name
    generated = billing_pb2_grpc.BillingServiceServicer
    for name in rpcs:
        # Implemented by billing's classes, not the generated UNIMPLEMENTED default.
        implementer = next(c for c in BillingServicer.__mro__ if name in c.__dict__)
        assert implementer is not generated, f"{name} is not implemented"
