"""Hostile requests to all 24 billing RPCs over a real socket: only documented statuses,
always with ErrorInfo, and a server that still answers SERVING afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.config import BillingSettings
from billing.migrate import migrate
from billing.server import BillingApp, create_app
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc
from tests.reliability.support import (
    FUZZ,
    INT64_MAX,
    QUIET_REPR,
    Code,
    ErrorLog,
    LoopThread,
    Outcomes,
    build,
    enums,
    expect,
    int32s,
    int64s,
    log_tail,
    optional,
    requests,
    serving,
    strings,
)
from voxmesh.server import ServerSettings

pytestmark = QUIET_REPR

ADMIN, ALICE, BOB, BANNED = 900001, 900002, 900003, 900004
KNOWN_USERS = [ADMIN, ALICE, BOB, BANNED]
TRACE = "0af7651916cd43dd8448eb211c80319c"

BAD = Code.INVALID_ARGUMENT
# Per RPC, the statuses billing.proto documents (idempotency reuse is ALREADY_EXISTS).
ALLOWED: dict[str, frozenset[grpc.StatusCode]] = {
    "EnsureUser": frozenset({BAD}),
    "GetUser": frozenset({BAD, Code.NOT_FOUND}),
    "GetBalance": frozenset({BAD, Code.NOT_FOUND}),
    "Quote": frozenset({BAD}),
    "Reserve": frozenset(
        {BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.PERMISSION_DENIED, Code.ALREADY_EXISTS}
    ),
    "Capture": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS}),
    "Release": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS}),
    "TopUp": frozenset({BAD, Code.NOT_FOUND, Code.ALREADY_EXISTS}),
    "Refund": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS}),
    "ListTransactions": frozenset({BAD, Code.NOT_FOUND}),
    "SetRole": frozenset({BAD, Code.NOT_FOUND, Code.PERMISSION_DENIED}),
    "Grant": frozenset({BAD, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.ALREADY_EXISTS}),
    "Stats": frozenset({BAD, Code.PERMISSION_DENIED}),
    "ExtendHold": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS}),
    "GetHold": frozenset({BAD, Code.NOT_FOUND}),
    "SubmitJob": frozenset({BAD, Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.RESOURCE_EXHAUSTED}),
    "ClaimJob": frozenset({BAD}),
    "RenewJob": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION}),
    "FinishJob": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION}),
    "AttachJobMessage": frozenset({BAD, Code.NOT_FOUND}),
    "CancelJob": frozenset({BAD, Code.NOT_FOUND}),
    "ListRunnableJobs": frozenset({BAD}),
    "RefundTopUp": frozenset({BAD, Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS}),
    "EraseUser": frozenset({BAD, Code.NOT_FOUND}),
}


@dataclass
class Billing:
    loop: LoopThread
    app: BillingApp
    target: str
    stub: Any  # BillingServiceStub, bound to ``loop``
    holds: list[str]  # pending, captured and released holds made by the seed
    page_tokens: list[str]
    jobs: list[str]  # durable jobs made by the seed: queued, one claimed
    extendable: list[str]  # pending holds only ExtendHold touches
    errors: ErrorLog


def _with_database(dsn: str, name: str) -> str:
    base, _, rest = dsn.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


async def _admin_sql(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed(stub: Any) -> tuple[list[str], list[str], list[str], list[str]]:
    """Users of every role, holds in every state, durable jobs, and a real page
    token to mutate."""
    for uid in KNOWN_USERS:
        await stub.EnsureUser(pb.EnsureUserRequest(user_id=uid, username=f"u{uid}"), timeout=10)
    await stub.SetRole(
        pb.SetRoleRequest(actor_user_id=ADMIN, user_id=BANNED, role=pb.ROLE_BANNED), timeout=10
    )
    await stub.TopUp(
        pb.TopUpRequest(
            idempotency_key="seed-topup",
            user_id=ALICE,
            amount_credits=100_000,
            provider="telegram_stars",
            provider_charge_id="seed-charge",
        ),
        timeout=10,
    )
    holds: list[str] = []
    for n in range(4):
        job = pb.Job(
            chat_id=ALICE, message_id=n + 1, file_id=f"f{n}", duration_seconds=30, trace_id=TRACE
        )
        reply = await stub.Reserve(
            pb.ReserveRequest(
                idempotency_key=f"seed-reserve-{n}", user_id=ALICE, amount_credits=50, job=job
            ),
            timeout=10,
        )
        holds.append(reply.hold.hold_id)
    await stub.Capture(
        pb.CaptureRequest(idempotency_key="seed-capture", hold_id=holds[1], amount_credits=40),
        timeout=10,
    )
    await stub.Release(
        pb.ReleaseRequest(idempotency_key="seed-release", hold_id=holds[2], reason="seed"),
        timeout=10,
    )
    page = await stub.ListTransactions(
        pb.ListTransactionsRequest(user_id=ALICE, page_size=1), timeout=10
    )
    jobs: list[str] = []
    for n in range(3):
        submitted = await stub.SubmitJob(
            pb.SubmitJobRequest(
                idempotency_key=f"seed-job-{n}", user_id=BOB, chat_id=BOB, message_id=n + 1
            ),
            timeout=10,
        )
        jobs.append(submitted.job.job_id)
    await stub.ClaimJob(
        pb.ClaimJobRequest(user_id=BOB, owner="seed", lease=Duration(seconds=600)), timeout=10
    )
    extendable = []
    for n in range(2):
        reply = await stub.Reserve(
            pb.ReserveRequest(
                idempotency_key=f"seed-extend-{n}",
                user_id=ALICE,
                amount_credits=40,
                job=pb.Job(chat_id=ALICE, message_id=100 + n, duration_seconds=30),
            ),
            timeout=10,
        )
        extendable.append(reply.hold.hold_id)
    return holds, [page.next_page_token], jobs, extendable


@pytest.fixture(scope="module")
def billing(postgres_dsn: str) -> Iterator[Billing]:
    loop = LoopThread("billing-fuzz")
    name = f"billing_fuzz_{secrets.token_hex(4)}"
    dsn = _with_database(postgres_dsn, name)

    async def start() -> Billing:
        await _admin_sql(postgres_dsn, f'CREATE DATABASE "{name}"')
        await migrate(dsn)
        settings = BillingSettings(
            database_url=dsn,
            pool_min_size=1,
            pool_max_size=4,
            reaper_interval_seconds=3600.0,
            admin_user_ids=frozenset({ADMIN}),
        )
        app = await create_app(
            settings, ServerSettings(service="billing", listen="127.0.0.1:0", grace_seconds=1.0)
        )
        port = await app.start()
        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(target)
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        holds, tokens, jobs, extendable = await _seed(stub)
        return Billing(loop, app, target, stub, holds, tokens, jobs, extendable, ErrorLog())

    run = loop.run(start())
    try:
        with run.errors:
            yield run
        assert loop.run(serving(run.target)), "billing is not SERVING after the fuzz run"
    finally:
        loop.run(run.app.stop(grace=1.0))
        loop.run(_admin_sql(postgres_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        loop.close()


# ------------------------------------------------------------------ strategies

users = st.one_of(st.sampled_from(KNOWN_USERS), int64s)
keys = st.one_of(strings(128), st.uuids().map(lambda u: f"fuzz-{u}"))
amounts = st.one_of(st.integers(0, 200), int64s)


_chars1 = st.sampled_from(["A", "/", "=", "-", "_", "\x00", "é", ""])


def _holds(b: Billing) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(b.holds), st.uuids().map(str), strings(64))


def _tokens(b: Billing) -> st.SearchStrategy[str]:
    real = st.sampled_from(b.page_tokens)
    mutated = st.tuples(real, st.integers(0, 40), _chars1).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    )
    return st.one_of(real, mutated, strings(64), st.binary(max_size=40).map(lambda b_: b_.hex()))


jobs = optional(
    st.builds(
        lambda chat, mid, fid, dur, tid: build(
            pb.Job, chat_id=chat, message_id=mid, file_id=fid, duration_seconds=dur, trace_id=tid
        ),
        optional(int64s),
        optional(int64s),
        optional(strings(512)),
        optional(int32s),
        optional(st.one_of(st.just(TRACE), strings(32))),
    )
)
roles = enums(pb.Role.values())


def _fuzz(
    billing: Billing,
    method: str,
    requests: st.SearchStrategy[Any],
    *,
    examples: int = 80,
    expect_ok: bool = True,
) -> Outcomes:
    outcomes = Outcomes()
    allowed = ALLOWED[method]

    @settings(FUZZ, max_examples=examples)
    @given(request=requests)
    def one(request: Any) -> None:
        rpc: Callable[..., Any] = getattr(billing.stub, method)
        billing.loop.run(
            expect(lambda: rpc(request, timeout=15), allowed, outcomes, request), timeout=30
        )

    one()
    print(f"{method}: {outcomes}")
    assert not billing.errors.records, log_tail(billing.errors.records)
    assert outcomes.codes[BAD.name] > 0, f"never hit validation: {outcomes}"
    if expect_ok:
        assert outcomes.codes["OK"] > 0, f"never succeeded: {outcomes}"
    return outcomes


# ------------------------------------------------------------------ tests

uuid_keys = st.uuids().map(lambda u: f"fuzz-{u}")
good_names = st.text(st.characters(categories=["L", "N"]), max_size=64)
good_amounts = st.integers(1, 100)
good_job = st.builds(
    pb.Job,
    chat_id=st.integers(1, 2**40),
    message_id=st.integers(1, 2**31),
    file_id=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=80),
    duration_seconds=st.integers(1, 3600),
    trace_id=st.just(TRACE),
)


def test_ensure_user(billing: Billing) -> None:
    _fuzz(
        billing,
        "EnsureUser",
        requests(
            pb.EnsureUserRequest,
            {
                "user_id": st.one_of(st.sampled_from(KNOWN_USERS), st.integers(1, INT64_MAX)),
                "username": good_names,
                "language_code": st.sampled_from(["", "en", "ru", "pt-BR"]),
            },
            {"user_id": users, "username": strings(64), "language_code": strings(16)},
        ),
    )


def test_get_user(billing: Billing) -> None:
    _fuzz(
        billing,
        "GetUser",
        requests(pb.GetUserRequest, {"user_id": st.sampled_from(KNOWN_USERS)}, {"user_id": users}),
    )


def test_get_balance(billing: Billing) -> None:
    _fuzz(
        billing,
        "GetBalance",
        requests(
            pb.GetBalanceRequest, {"user_id": st.sampled_from(KNOWN_USERS)}, {"user_id": users}
        ),
    )


def test_quote(billing: Billing) -> None:
    _fuzz(
        billing,
        "Quote",
        requests(
            pb.QuoteRequest,
            {"duration_seconds": st.integers(1, 86400)},
            {"duration_seconds": int32s},
        ),
    )


def test_reserve(billing: Billing) -> None:
    _fuzz(
        billing,
        "Reserve",
        requests(
            pb.ReserveRequest,
            {
                "idempotency_key": uuid_keys,
                "user_id": st.sampled_from([ALICE, ALICE, BOB, BANNED]),
                "amount_credits": good_amounts,
                "job": good_job,
            },
            {"idempotency_key": keys, "user_id": users, "amount_credits": amounts, "job": jobs},
        ),
        examples=120,
    )


def test_capture(billing: Billing) -> None:
    _fuzz(
        billing,
        "Capture",
        requests(
            pb.CaptureRequest,
            {
                "idempotency_key": uuid_keys,
                "hold_id": st.sampled_from(billing.holds),
                "amount_credits": st.integers(0, 60),
            },
            {"idempotency_key": keys, "hold_id": _holds(billing), "amount_credits": amounts},
        ),
        expect_ok=False,  # the seed leaves two pending holds: success depends on order
    )


def test_release(billing: Billing) -> None:
    _fuzz(
        billing,
        "Release",
        requests(
            pb.ReleaseRequest,
            {
                "idempotency_key": uuid_keys,
                "hold_id": st.sampled_from(billing.holds),
                "reason": good_names,
            },
            {"idempotency_key": keys, "hold_id": _holds(billing), "reason": strings(256)},
        ),
        expect_ok=False,
    )


def test_top_up(billing: Billing) -> None:
    _fuzz(
        billing,
        "TopUp",
        requests(
            pb.TopUpRequest,
            {
                "idempotency_key": uuid_keys,
                "user_id": st.sampled_from(KNOWN_USERS),
                "amount_credits": st.integers(1, 1000),
                "provider": st.just("telegram_stars"),
                "provider_charge_id": st.uuids().map(str),
            },
            {
                "idempotency_key": keys,
                "user_id": users,
                "amount_credits": amounts,
                "provider": strings(64),
                "provider_charge_id": strings(256),
            },
        ),
        examples=120,
    )


def test_refund(billing: Billing) -> None:
    _fuzz(
        billing,
        "Refund",
        requests(
            pb.RefundRequest,
            {
                "idempotency_key": uuid_keys,
                "hold_id": st.sampled_from(billing.holds),
                "amount_credits": st.integers(1, 5),
                "reason": good_names,
            },
            {
                "idempotency_key": keys,
                "hold_id": _holds(billing),
                "amount_credits": amounts,
                "reason": strings(256),
            },
        ),
    )


def test_list_transactions(billing: Billing) -> None:
    _fuzz(
        billing,
        "ListTransactions",
        requests(
            pb.ListTransactionsRequest,
            {
                "user_id": st.sampled_from(KNOWN_USERS),
                "page_size": st.integers(0, 100),
                "page_token": st.one_of(st.just(""), st.sampled_from(billing.page_tokens)),
            },
            {
                "user_id": users,
                "page_size": st.one_of(st.integers(-2, 102), int32s),
                "page_token": _tokens(billing),
            },
        ),
        examples=120,
    )


def test_set_role(billing: Billing) -> None:
    # Never demote the admin the other tests act as.
    _fuzz(
        billing,
        "SetRole",
        requests(
            pb.SetRoleRequest,
            {
                "actor_user_id": st.just(ADMIN),
                "user_id": st.sampled_from([BOB, BANNED]),
                "role": st.sampled_from([pb.ROLE_USER, pb.ROLE_BANNED]),
            },
            {
                "actor_user_id": users,
                "user_id": st.one_of(st.sampled_from([BOB, BANNED]), int64s),
                "role": roles,
            },
        ),
    )


def test_grant(billing: Billing) -> None:
    _fuzz(
        billing,
        "Grant",
        requests(
            pb.GrantRequest,
            {
                "idempotency_key": uuid_keys,
                "actor_user_id": st.just(ADMIN),
                "user_id": st.sampled_from(KNOWN_USERS),
                "amount_credits": st.integers(1, 1000),
            },
            {
                "idempotency_key": keys,
                "actor_user_id": users,
                "user_id": users,
                "amount_credits": amounts,
            },
        ),
        examples=120,
    )


def test_stats(billing: Billing) -> None:
    _fuzz(
        billing,
        "Stats",
        requests(pb.StatsRequest, {"actor_user_id": st.just(ADMIN)}, {"actor_user_id": users}),
        examples=50,
    )


def test_money_still_adds_up(billing: Billing) -> None:
    """After every fuzz test above: no balance went negative or past int64."""

    async def balances() -> list[Any]:
        return [
            await billing.stub.GetBalance(pb.GetBalanceRequest(user_id=u), timeout=10)
            for u in KNOWN_USERS
        ]

    for balance in billing.loop.run(balances()):
        assert 0 <= balance.balance_credits < 2**62
        assert 0 <= balance.held_credits < 2**62


def _jobs(b: Billing) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(b.jobs), st.uuids().map(str), strings(64))


durations = st.one_of(
    st.builds(Duration, seconds=st.integers(1, 600)),
    st.builds(
        Duration, seconds=st.integers(-(10**6), 10**6), nanos=st.integers(-999_999_999, 999_999_999)
    ),
)
job_states = enums(pb.JobState.values())


def test_extend_hold(billing: Billing) -> None:
    _fuzz(
        billing,
        "ExtendHold",
        requests(
            pb.ExtendHoldRequest,
            {
                "idempotency_key": uuid_keys,
                "hold_id": st.sampled_from(billing.extendable),
                "amount_credits": st.integers(40, 80),
                "ttl": optional(st.builds(Duration, seconds=st.integers(60, 3600))),
            },
            {
                "idempotency_key": keys,
                "hold_id": _holds(billing),
                "amount_credits": amounts,
                "ttl": durations,
            },
        ),
    )


def test_get_hold(billing: Billing) -> None:
    _fuzz(
        billing,
        "GetHold",
        requests(
            pb.GetHoldRequest,
            {"hold_id": st.sampled_from(billing.holds)},
            {"hold_id": _holds(billing)},
        ),
    )


def test_submit_job(billing: Billing) -> None:
    _fuzz(
        billing,
        "SubmitJob",
        requests(
            pb.SubmitJobRequest,
            {
                "idempotency_key": uuid_keys,
                "user_id": st.sampled_from(KNOWN_USERS),
                "chat_id": st.integers(1, 2**40),
                "message_id": st.integers(1, 2**31),
                "spec": st.binary(max_size=64),
                "trace_id": st.just(TRACE),
            },
            {
                "idempotency_key": keys,
                "user_id": users,
                "chat_id": int64s,
                "message_id": int64s,
                "spec": st.binary(min_size=16 * 1024 - 2, max_size=16 * 1024 + 2),
                "trace_id": strings(32),
            },
        ),
    )


def test_claim_job(billing: Billing) -> None:
    _fuzz(
        billing,
        "ClaimJob",
        requests(
            pb.ClaimJobRequest,
            {
                "user_id": st.sampled_from(KNOWN_USERS),
                "owner": good_names,
                "lease": st.builds(Duration, seconds=st.integers(1, 600)),
            },
            {"user_id": users, "owner": strings(128), "lease": durations},
        ),
    )


def test_renew_job(billing: Billing) -> None:
    _fuzz(
        billing,
        "RenewJob",
        requests(
            pb.RenewJobRequest,
            {
                "job_id": st.sampled_from(billing.jobs),
                "attempt": st.integers(1, 2),
                "lease": st.builds(Duration, seconds=st.integers(1, 600)),
            },
            {"job_id": _jobs(billing), "attempt": int32s, "lease": durations},
        ),
        expect_ok=False,  # only the claimed job at its attempt renews
    )


def test_finish_job(billing: Billing) -> None:
    _fuzz(
        billing,
        "FinishJob",
        requests(
            pb.FinishJobRequest,
            {
                "job_id": st.sampled_from(billing.jobs),
                "attempt": st.integers(1, 2),
                "state": st.sampled_from([pb.JOB_STATE_DONE, pb.JOB_STATE_FAILED]),
                "outcome": st.sampled_from(["done", "no_speech"]),
            },
            {
                "job_id": _jobs(billing),
                "attempt": int32s,
                "state": job_states,
                "outcome": strings(64),
            },
        ),
        expect_ok=False,
    )


def test_attach_job_message(billing: Billing) -> None:
    _fuzz(
        billing,
        "AttachJobMessage",
        requests(
            pb.AttachJobMessageRequest,
            {
                "job_id": st.sampled_from(billing.jobs),
                "status_message_id": st.integers(1, 2**31),
            },
            {"job_id": _jobs(billing), "status_message_id": int64s},
        ),
    )


def test_cancel_job(billing: Billing) -> None:
    _fuzz(
        billing,
        "CancelJob",
        requests(
            pb.CancelJobRequest, {"user_id": st.sampled_from(KNOWN_USERS)}, {"user_id": users}
        ),
        expect_ok=False,
    )


def test_list_runnable_jobs(billing: Billing) -> None:
    _fuzz(
        billing,
        "ListRunnableJobs",
        requests(
            pb.ListRunnableJobsRequest,
            {"page_size": st.integers(0, 100), "page_token": st.just("")},
            {
                "page_size": st.one_of(st.integers(-2, 102), int32s),
                "page_token": st.one_of(strings(64), st.binary(max_size=40).map(lambda b: b.hex())),
            },
        ),
    )


def test_refund_top_up(billing: Billing) -> None:
    _fuzz(
        billing,
        "RefundTopUp",
        requests(
            pb.RefundTopUpRequest,
            {
                "idempotency_key": uuid_keys,
                "provider": st.just("telegram_stars"),
                "provider_charge_id": st.sampled_from(["seed-charge", "unknown-charge"]),
                "reason": good_names,
            },
            {
                "idempotency_key": keys,
                "provider": strings(64),
                "provider_charge_id": strings(256),
                "reason": strings(256),
            },
        ),
        expect_ok=False,  # the seed's one charge is refunded at most once
    )


def test_erase_user(billing: Billing) -> None:
    _fuzz(
        billing,
        "EraseUser",
        requests(
            pb.EraseUserRequest, {"user_id": st.sampled_from(KNOWN_USERS)}, {"user_id": users}
        ),
        examples=50,
    )
