"""PostgreSQL restarts under load: billing heals by itself, no ledger entry is lost or doubled.

Billing runs as its own process on a PostgreSQL this test owns. Eight clients
keep reserving and capturing (or releasing) over gRPC, each call retried with
the same idempotency key until it gets an answer, as the gateway does. In the
middle PostgreSQL is stopped and started again. Afterwards what the clients
were told and what the ledger holds must agree exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg
import grpc
import pytest

from billing.migrate import migrate
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc
from tests.faults.support import ledger
from voxmesh.errors import error_details
from voxmesh_dev.embedded import EmbeddedPostgres, free_port

pytestmark = pytest.mark.slow

T = TypeVar("T")
USERS = list(range(740001, 740021))
TRIAL = 10_000
WORKERS = 8


@pytest.fixture
def own_postgres(tmp_path: pathlib.Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def billing_target(
    own_postgres: EmbeddedPostgres, tmp_path: pathlib.Path
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    await migrate(own_postgres.dsn)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": own_postgres.dsn,
        "BILLING_LISTEN_ADDR": f"127.0.0.1:{port}",
        "BILLING_TRIAL_CREDITS": str(TRIAL),
        "BILLING_POOL_MIN_SIZE": "4",
        "BILLING_POOL_MAX_SIZE": "8",
        "VOXMESH_TRACES_EXPORTER": "none",
        "VOXMESH_LOG_FORMAT": "text",
    }
    log_path = tmp_path / "billing.log"
    with log_path.open("wb") as out:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "billing"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"127.0.0.1:{port}", proc
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
            errors = [line for line in log_path.read_text().splitlines() if " ERROR " in line]
            print("\n".join(errors[:20]))


# pg_ctl, forked from this multi-threaded (gRPC) process, now and then dies
# (SIGSEGV) before it does anything, and EmbeddedPostgres.stop only logs a
# failure. So both steps check the outcome and try again, as an operator would.


def stop_for_real(server: EmbeddedPostgres) -> None:
    for _ in range(3):
        server.stop()
        if not (server.data_dir / "postmaster.pid").exists():
            return
    raise AssertionError("PostgreSQL would not stop")


def start_again(server: EmbeddedPostgres) -> None:
    for attempt in range(3):
        try:
            server.start()
            return
        except subprocess.CalledProcessError:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", server.port), timeout=1),
            ):
                return  # pg_ctl died, the server it started did not
            if attempt == 2:
                raise


@dataclasses.dataclass
class Tally:
    # hold id: (user, amount reserved)
    reserved: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    # hold id: amount charged
    captured: dict[str, int] = dataclasses.field(default_factory=dict)
    released: set[str] = dataclasses.field(default_factory=set)
    unavailable: int = 0
    other_errors: list[str] = dataclasses.field(default_factory=list)


async def retried(tally: Tally, call: Callable[[], Awaitable[T]]) -> T:
    """Call until answered; only the outage's own status may come back meanwhile."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                d = error_details(exc)
                tally.other_errors.append(f"{exc.code().name} {d.reason} {d.message}")
                raise
            tally.unavailable += 1
            if loop.time() > end:
                raise
            await asyncio.sleep(0.1)


async def worker(
    n: int, stub: billing_pb2_grpc.BillingServiceStub, tally: Tally, stop: asyncio.Event
) -> None:
    rng = random.Random(n)
    i = 0
    while not stop.is_set():
        i += 1
        user = rng.choice(USERS)
        amount = rng.randint(1, 9)
        reserve = pb.ReserveRequest(
            idempotency_key=f"pg-r-{n}-{i}",
            user_id=user,
            amount_credits=amount,
            job=pb.Job(chat_id=user, message_id=n * 100_000 + i, duration_seconds=amount * 6),
        )
        hold = (await retried(tally, lambda r=reserve: stub.Reserve(r, timeout=3))).hold
        tally.reserved[hold.hold_id] = (user, amount)
        if rng.random() < 0.75:
            charge = rng.randint(0, amount)
            capture = pb.CaptureRequest(
                idempotency_key=f"pg-c-{n}-{i}", hold_id=hold.hold_id, amount_credits=charge
            )
            await retried(tally, lambda c=capture: stub.Capture(c, timeout=3))
            tally.captured[hold.hold_id] = charge
        else:
            release = pb.ReleaseRequest(
                idempotency_key=f"pg-x-{n}-{i}", hold_id=hold.hold_id, reason="test"
            )
            await retried(tally, lambda x=release: stub.Release(x, timeout=3))
            tally.released.add(hold.hold_id)


async def test_postgres_restart_under_load(
    own_postgres: EmbeddedPostgres, billing_target: tuple[str, subprocess.Popen[bytes]]
) -> None:
    target, proc = billing_target
    tally = Tally()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        await channel.channel_ready()
        for user in USERS:
            await retried(
                tally, lambda u=user: stub.EnsureUser(pb.EnsureUserRequest(user_id=u), timeout=5)
            )
        stop = asyncio.Event()
        workers = [asyncio.create_task(worker(n, stub, tally, stop)) for n in range(WORKERS)]
        await asyncio.sleep(2)
        before = len(tally.reserved)
        # The restart, with the clients hammering away.
        await asyncio.to_thread(stop_for_real, own_postgres)
        gone = len(tally.reserved)
        await asyncio.sleep(1.5)
        down = len(tally.reserved)
        await asyncio.to_thread(start_again, own_postgres)
        restarted = len(tally.reserved)
        await asyncio.sleep(3)
        stop.set()
        failures = [
            r
            for r in await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 90)
            if r is not None
        ]
        after = len(tally.reserved)

    assert proc.poll() is None, "billing died instead of healing"
    assert tally.other_errors == []
    assert failures == []
    print(f"calls: {after} holds ({before} before the restart), {tally.unavailable} retries")
    assert before > 20, "too little load before the restart"
    assert tally.unavailable > 0, "the outage was never seen"
    assert down - gone <= WORKERS, "calls succeeded while PostgreSQL was down?"
    assert after - restarted > 20, "billing did not heal after the restart"

    conn = await asyncpg.connect(own_postgres.dsn)
    try:
        holds = {
            str(r["hold_id"]): r
            for r in await conn.fetch(
                "SELECT hold_id, user_id, amount_credits, captured_credits, state FROM holds"
            )
        }
        kinds = {
            r["kind"]: r["n"]
            for r in await conn.fetch(
                "SELECT kind, count(*) AS n FROM ledger_transactions GROUP BY kind"
            )
        }
        per_hold = await conn.fetch(
            "SELECT hold_id, kind, count(*) AS n FROM ledger_transactions"
            " WHERE hold_id IS NOT NULL GROUP BY hold_id, kind HAVING count(*) > 1"
        )
        balances = {
            r["user_id"]: r["balance"]
            for r in await conn.fetch("SELECT user_id, balance FROM accounts WHERE kind = 'user'")
        }
        keys = await conn.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE 'pg-%' AND response IS NOT NULL"
        )
    finally:
        await conn.close()

    # Every hold a client was told about exists exactly once, settled as it was told.
    assert set(holds) == set(tally.reserved), "a hold was lost or one nobody asked for exists"
    for hold_id, (user, amount) in tally.reserved.items():
        row = holds[hold_id]
        assert (row["user_id"], row["amount_credits"]) == (user, amount)
        if hold_id in tally.captured:
            assert (row["state"], row["captured_credits"]) == ("captured", tally.captured[hold_id])
        else:
            assert hold_id in tally.released and row["state"] == "released"
    # One ledger transaction per effect: nothing doubled, nothing missing.
    assert per_hold == [], "a hold was booked twice"
    assert kinds.get("hold", 0) == len(tally.reserved)
    assert kinds.get("capture", 0) == sum(1 for c in tally.captured.values() if c > 0)
    partial = sum(1 for h, c in tally.captured.items() if c < tally.reserved[h][1])
    assert kinds.get("release", 0) == len(tally.released) + partial
    assert keys == len(tally.reserved) + len(tally.captured) + len(tally.released)
    for user in USERS:
        spent = sum(c for h, c in tally.captured.items() if tally.reserved[h][0] == user)
        assert balances[user] == TRIAL - spent
    (await ledger(own_postgres.dsn)).assert_sound()
