"""A hold's write re-checks what its read saw, on real PostgreSQL row locks.

Another transaction holds the account's row lock while the store's write
waits at its gate; what that transaction does before it commits decides
which path the store takes: decide again, answer from the key, or give up.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from billing import sql
from billing.domain import HoldResult, IdempotencyKey, Job, Reserve
from billing.metrics import write_conflicts
from billing.postgres import PgBillingStore, base
from tests.billing.billing_support import Running
from tests.billing.test_money import balance, ledger_invariants, new_user
from voxmesh.errors import Unavailable

USER = 42
HASH = bytes(32)


def encode(result: HoldResult) -> bytes:
    return f"{result.hold.hold_id} {result.balance_credits}".encode()


def reserve_30(key: str = "r1") -> tuple[IdempotencyKey, Reserve]:
    job = Job(chat_id=1, message_id=1, file_id="f", duration_seconds=30, trace_id="")
    return IdempotencyKey("Reserve", key, HASH), Reserve(USER, 30, job)


async def waiting_on_a_lock(admin: asyncpg.Connection, count: int = 1) -> None:
    """Until `count` other backends of this database wait for a row lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the store's write never waited at its gate")


@pytest.fixture
async def other(billing: Running) -> asyncpg.Connection:
    conn = await asyncpg.connect(billing.settings.database_url)
    yield conn
    await conn.close()


def conflicts_of(store_registry: CollectorRegistry) -> float:
    value = store_registry.get_sample_value(
        "voxmesh_billing_write_conflicts_total", {"method": "Reserve"}
    )
    return value or 0.0


async def test_reserve_that_lost_to_a_top_up_decides_again(
    billing: Running, other: asyncpg.Connection
) -> None:
    await new_user(billing)
    assert await balance(billing) == (100, 0)
    registry = CollectorRegistry()
    store = PgBillingStore(billing.app.pool, conflicts=write_conflicts(registry))
    tx = other.transaction()
    await tx.start()
    await other.fetchrow(
        sql.SQL_CREDIT, "top_up", USER, 50, sql.EXTERNAL_ACCOUNT, None, "t", "c1", "top-up"
    )
    call = asyncio.create_task(store.reserve(*reserve_30(), 600, encode))
    await waiting_on_a_lock(other)
    await tx.commit()
    answer = await call
    assert not answer.replayed
    hold_id, after = answer.body.decode().split()
    # Read again after the top-up: 100 + 50 - 30, not the 70 the first read predicted.
    assert int(after) == 120
    assert await balance(billing) == (120, 30)
    assert conflicts_of(registry) == 1
    assert await other.fetchval("SELECT count(*) FROM holds") == 1
    assert await other.fetchval("SELECT hold_id FROM holds") == uuid.UUID(hold_id)
    await ledger_invariants(billing.settings.database_url)


async def test_reserve_whose_copy_committed_first_answers_from_the_key(
    billing: Running, other: asyncpg.Connection
) -> None:
    await new_user(billing)
    registry = CollectorRegistry()
    store = PgBillingStore(billing.app.pool, conflicts=write_conflicts(registry))
    # The copy: it locks the account, changes nothing, and stores its answer.
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE", USER)
    await other.execute(
        "INSERT INTO idempotency_keys (method, key, request_hash, response)"
        " VALUES ('Reserve', 'r1', $1, 'the first answer')",
        HASH,
    )
    call = asyncio.create_task(store.reserve(*reserve_30(), 600, encode))
    await waiting_on_a_lock(other)
    await tx.commit()
    # The gate passes (the account is as read), the key's primary key stops the
    # write whole, and the read that follows finds the stored answer.
    answer = await call
    assert (answer.body, answer.replayed) == (b"the first answer", True)
    assert await balance(billing) == (100, 0)
    assert await other.fetchval("SELECT count(*) FROM holds") == 0
    assert conflicts_of(registry) == 1


async def test_a_storm_on_one_account_is_unavailable_to_retry(
    billing: Running, other: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_user(billing)
    monkeypatch.setattr(base, "GUARD_ATTEMPTS", 1)
    store = PgBillingStore(billing.app.pool)
    tx = other.transaction()
    await tx.start()
    await other.fetchrow(
        sql.SQL_CREDIT, "grant", USER, 5, sql.PROMO_ACCOUNT, None, None, None, "grant"
    )
    call = asyncio.create_task(store.reserve(*reserve_30(), 600, encode))
    await waiting_on_a_lock(other)
    await tx.commit()
    with pytest.raises(Unavailable):
        await call
    # Nothing of the lost attempt was written, key included.
    assert await balance(billing) == (105, 0)
    assert await other.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    await ledger_invariants(billing.settings.database_url)
