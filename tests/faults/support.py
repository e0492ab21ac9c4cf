"""Shared by the fault tests: a mesh with a Redis of its own, pushes, waits, ledger checks."""

from __future__ import annotations

import asyncio
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import asyncpg
import psutil

from billing.v1 import billing_pb2
from tests.gateway.support import reply_to, start_mesh, transactions
from voxmesh_dev.mesh import ALL_SERVICES, Mesh
from voxmesh_dev.telegram import RecordedMessage

TRIAL = 100  # billing's default free trial
JFK_PRICE = 2  # 11 s at 10 credits a minute, rounded up
REF = re.compile(r"Reference: ([0-9a-f]{32})$")

# Short clocks so that a dead runner's jobs are taken over in seconds, not minutes.
RECONCILE_ENV = {
    "GATEWAY_RECONCILE_INTERVAL_SECONDS": "0.5",
    "GATEWAY_JOB_LEASE_SECONDS": "3",
    "GATEWAY_GRACE_SECONDS": "10",
}


async def faults_mesh(
    state: pathlib.Path, postgres_dsn: str, redis_url: str, env: Mapping[str, str] | None = None
) -> Mesh:
    return await start_mesh(
        state=state,
        postgres_dsn=postgres_dsn,
        redis_url=redis_url,
        env={**RECONCILE_ENV, **(env or {})},
    )


def push(mesh: Mesh, **kwargs: object) -> int:
    """Push a message update; return the message id."""
    update = mesh.emulator.make_message_update(**kwargs)
    mesh.emulator.push_update(update)
    return int(update["message"]["message_id"])


def push_note(mesh: Mesh, user: int, content: bytes, seconds: int) -> int:
    file_id = mesh.emulator.add_file(content, mime_type="audio/ogg")
    return push(mesh, chat_id=user, user_id=user, voice=(file_id, seconds))


def captures(txs: list[billing_pb2.Transaction]) -> list[int]:
    return [tx.amount_credits for tx in txs if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE]


async def captured(mesh: Mesh, user: int) -> list[int]:
    return captures(await transactions(mesh, user))


def only_reply(mesh: Mesh, chat_id: int, note_id: int) -> RecordedMessage:
    """The one message the bot sent about a note (asserting there is exactly one)."""
    msgs = reply_to(mesh, chat_id, note_id)
    assert len(msgs) == 1, [(m.message_id, m.text) for m in msgs]
    return msgs[0]


async def restart(mesh: Mesh, name: str, timeout: float = 120) -> None:
    """Start a stopped or killed service again and wait until it serves."""
    proc = mesh.procs[name]
    if proc.poll() is None:
        proc.wait(5)
    # Mesh.spawn opens a new log handle without closing the last one (an
    # unclosed file is an error under this suite's warning filter).
    old_log = mesh._logs.pop(name, None)
    if old_log is not None:
        old_log.close()
    mesh.spawn(name)
    await mesh.wait_ready((name,), timeout=timeout)


async def gateway_ready(mesh: Mesh) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://{mesh.target('gateway')}/readyz", timeout=aiohttp.ClientTimeout(total=2)
        ) as resp,
    ):
        return resp.status


@dataclass(frozen=True)
class Ledger:
    unbalanced: int  # transactions whose entries are not exactly two summing to zero
    drift: int  # user accounts whose balance differs from the sum of their entries
    escrow: int
    pending: int
    held: int
    negative: int
    double_captures: int  # holds captured more than once

    def assert_sound(self) -> None:
        assert self.unbalanced == 0, self
        assert self.drift == 0, self
        assert self.escrow == self.pending == self.held, self
        assert self.negative == 0, self
        assert self.double_captures == 0, self


LEDGER_SQL = """
SELECT
  (SELECT count(*) FROM (
     SELECT t.transaction_id FROM ledger_transactions t
     LEFT JOIN ledger_entries e USING (transaction_id)
     GROUP BY t.transaction_id
     HAVING count(e.account_id) <> 2 OR coalesce(sum(e.amount_credits), 1) <> 0) x) AS unbalanced,
  (SELECT count(*) FROM (
     SELECT a.account_id FROM accounts a LEFT JOIN ledger_entries e USING (account_id)
     WHERE a.kind = 'user' GROUP BY a.account_id, a.balance
     HAVING a.balance <> coalesce(sum(e.amount_credits), 0)) y) AS drift,
  (SELECT coalesce(sum(amount_credits), 0) FROM ledger_entries WHERE account_id = 4) AS escrow,
  (SELECT coalesce(sum(amount_credits), 0) FROM holds WHERE state = 'pending') AS pending,
  (SELECT coalesce(sum(held), 0) FROM accounts) AS held,
  (SELECT count(*) FROM accounts WHERE balance < 0 OR held < 0) AS negative,
  (SELECT count(*) FROM (
     SELECT hold_id FROM ledger_transactions WHERE kind = 'capture'
     GROUP BY hold_id HAVING count(*) > 1) z) AS double_captures
"""


async def ledger(dsn: str) -> Ledger:
    """The ledger's invariants, read in one statement (one snapshot)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(LEDGER_SQL)
    finally:
        await conn.close()
    assert row is not None
    return Ledger(**{k: int(v) for k, v in dict(row).items()})


async def pending_holds(dsn: str, user_ids: list[int]) -> list[tuple[int, int]]:
    """(user, amount) of holds still pending for these users."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT user_id, amount_credits FROM holds"
            " WHERE state = 'pending' AND user_id = ANY($1::bigint[])",
            user_ids,
        )
    finally:
        await conn.close()
    return [(r["user_id"], r["amount_credits"]) for r in rows]


def rss_by_service(mesh: Mesh) -> dict[str, int]:
    """Resident memory of every service process, children included (bytes)."""
    out: dict[str, int] = {}
    for name in ALL_SERVICES:
        proc = psutil.Process(mesh.procs[name].pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        out[name] = total
    return out


async def eventually(check: object, timeout: float, what: str, interval: float = 0.2) -> None:
    """Await ``check()`` (sync or async) until it is truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
