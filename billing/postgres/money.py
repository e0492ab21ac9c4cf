"""Users, holds and credits on PostgreSQL: the money half of the store.

Each method reads or locks the rows, lets :mod:`billing.domain` decide on
them, and persists the effect in the frames of :mod:`billing.postgres.base`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from billing import domain, jobs, sql
from billing.domain import (
    Balance,
    Hold,
    HoldResult,
    HoldState,
    IdempotencyKey,
    Job,
    Role,
    StaleJob,
    Stats,
    TopUpRefundResult,
    Transaction,
    TransactionResult,
    TxKind,
    User,
)
from billing.postgres import rows
from billing.postgres.base import PgBase, check_prediction
from billing.postgres.pool import db_call
from billing.sql import EXTERNAL_ACCOUNT, PROMO_ACCOUNT, REVENUE_ACCOUNT
from billing.store import Answer, Encoder
from voxmesh.errors import AlreadyExists, Internal

_MAX_ID = 2**63 - 1

_JOB_STATE = {
    HoldState.CAPTURED: "done",
    HoldState.RELEASED: "cancelled",
    HoldState.EXPIRED: "expired",
}


def _role(value: str | None) -> Role | None:
    return Role(value) if value is not None else None


class PgMoneyStore(PgBase):
    """Users, holds and credits on an asyncpg pool."""

    # -- users --------------------------------------------------------------

    @db_call
    async def ensure_user(
        self, cmd: domain.EnsureUser, *, make_admin: bool, trial_credits: int
    ) -> tuple[User, bool]:
        # Every statement here stands alone: each is atomic, and a user's
        # creation (user, account, trial) is a single statement.
        args = (cmd.user_id, cmd.username, cmd.language_code)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
            if row is not None:
                return rows.user(row), False
            role = Role.ADMIN if make_admin else Role.USER
            row = await conn.fetchrow(sql.SQL_CREATE_USER, *args, role.value, trial_credits)
            if row is not None:
                return rows.user(row), True
            # Created by a concurrent call between our two statements.
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
        if row is None:  # pragma: no cover - users are never deleted
            raise domain.user_not_found(cmd.user_id)
        return rows.user(row), False

    @db_call
    async def get_user(self, user_id: int) -> User:
        row = await self._pool.fetchrow(sql.SQL_GET_USER, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return rows.user(row)

    @db_call
    async def get_balance(self, user_id: int) -> Balance:
        row = await self._pool.fetchrow(sql.SQL_GET_BALANCE, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return Balance(balance_credits=row["balance"], held_credits=row["held"])

    @db_call
    async def set_role(self, cmd: domain.SetRole) -> User:
        async with self._pool.acquire() as conn, conn.transaction():
            domain.require_admin(_role(await conn.fetchval(sql.SQL_GET_ROLE, cmd.actor_user_id)))
            row = await conn.fetchrow(sql.SQL_SET_ROLE, cmd.user_id, cmd.role.value)
            if row is None:
                raise domain.user_not_found(cmd.user_id)
            return rows.user(row)

    # -- holds ------------------------------------------------------------------

    @db_call
    async def reserve(
        self,
        idem: IdempotencyKey,
        cmd: domain.Reserve,
        ttl_seconds: int,
        encode: Encoder[HoldResult],
    ) -> Answer:
        job_id = cmd.job.job_id

        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            domain.check_reserve(Role(row["role"]), row["balance"], cmd.amount_credits)
            job = cmd.job
            if job_id is not None:
                state = row["job_state"]
                jobs.check_open(job_id, jobs.JobState(state) if state is not None else None)
                # The durable job keeps the chat, message and trace it was
                # submitted with; the hold brings the file and the duration.
                job = Job(
                    chat_id=row["job_chat_id"],
                    message_id=row["job_message_id"],
                    file_id=cmd.job.file_id,
                    duration_seconds=cmd.job.duration_seconds,
                    trace_id=row["job_trace_id"],
                    job_id=job_id,
                )
            hold = Hold(
                hold_id=row["new_id"],
                user_id=cmd.user_id,
                amount_credits=cmd.amount_credits,
                captured_credits=0,
                refunded_credits=0,
                state=HoldState.PENDING,
                # The database's now(): the same clock the reaper compares with.
                expire_time=row["now"] + dt.timedelta(seconds=ttl_seconds),
                job=job,
            )
            expected = row["balance"] - cmd.amount_credits
            body = encode(HoldResult(hold=hold, balance_credits=expected))
            common = (
                idem.method,
                idem.key,
                idem.request_hash,
                body,
                hold.hold_id,
                cmd.user_id,
                cmd.amount_credits,
                hold.expire_time,
                row["account_id"],
            )
            if job_id is None:
                balance = await conn.fetchval(
                    sql.SQL_RESERVE,
                    *common,
                    job.chat_id,
                    job.message_id,
                    job.file_id,
                    job.duration_seconds,
                    job.trace_id,
                    row["balance"],
                    row["held"],
                )
            else:
                balance = await conn.fetchval(
                    sql.SQL_RESERVE_FOR_JOB,
                    *common,
                    job.file_id,
                    job.duration_seconds,
                    row["balance"],
                    row["held"],
                    job_id,
                )
            if balance is None:
                return None
            check_prediction(expected, balance, "reserve")
            return body

        if job_id is None:
            return await self._guarded(idem, sql.SQL_READ_ACCOUNT, (cmd.user_id,), write)
        return await self._guarded(idem, sql.SQL_READ_ACCOUNT_JOB, (cmd.user_id, job_id), write)

    @db_call
    async def get_hold(self, hold_id: uuid.UUID) -> Hold:
        row = await self._pool.fetchrow(sql.SQL_GET_HOLD, hold_id)
        if row is None or row["hold_id"] is None:
            raise domain.hold_not_found(hold_id)
        return rows.hold(row)

    @db_call
    async def extend_hold(
        self, idem: IdempotencyKey, cmd: domain.ExtendHold, encode: Encoder[HoldResult]
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            hold = rows.hold(row)
            increase = domain.check_extend(hold, row["balance"], cmd.amount_credits)
            expire = hold.expire_time
            if cmd.ttl_seconds is not None:
                expire = row["now"] + dt.timedelta(seconds=cmd.ttl_seconds)
            grown = dataclasses.replace(hold, amount_credits=cmd.amount_credits, expire_time=expire)
            expected = row["balance"] - increase
            body = encode(HoldResult(hold=grown, balance_credits=expected))
            balance = await conn.fetchval(
                sql.SQL_EXTEND_HOLD,
                idem.method,
                idem.key,
                idem.request_hash,
                body,
                hold.hold_id,
                cmd.amount_credits,
                expire,
                hold.amount_credits,
                hold.expire_time,
                row["balance"],
                row["held"],
            )
            if balance is None:
                return None
            check_prediction(expected, balance, "extend")
            return body

        answer = await self._guarded(idem, sql.SQL_READ_HOLD, (cmd.hold_id,), write)
        return answer.body

    async def _settle(
        self,
        conn: asyncpg.Connection,
        idem: IdempotencyKey,
        row: asyncpg.Record,
        state: HoldState,
        captured: int,
        note: str,
        encode: Encoder[HoldResult],
    ) -> bytes | None:
        hold = rows.hold(row)
        expected = row["balance"] + hold.amount_credits - captured
        settled = dataclasses.replace(hold, state=state, captured_credits=captured)
        body = encode(HoldResult(hold=settled, balance_credits=expected))
        balance = await conn.fetchval(
            sql.SQL_SETTLE,
            idem.method,
            idem.key,
            idem.request_hash,
            body,
            hold.hold_id,
            captured,
            state.value,
            _JOB_STATE[state],
            note,
            row["balance"],
            row["held"],
        )
        if balance is None:
            return None
        check_prediction(expected, balance, state.value)
        return body

    @db_call
    async def capture(
        self, idem: IdempotencyKey, cmd: domain.Capture, encode: Encoder[HoldResult]
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            domain.check_capture(rows.hold(row), cmd.amount_credits)
            return await self._settle(
                conn,
                idem,
                row,
                HoldState.CAPTURED,
                cmd.amount_credits,
                "capture remainder",
                encode,
            )

        return (await self._guarded(idem, sql.SQL_READ_HOLD, (cmd.hold_id,), write)).body

    @db_call
    async def release(
        self, idem: IdempotencyKey, cmd: domain.Release, encode: Encoder[HoldResult]
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            domain.check_pending(rows.hold(row))
            note = f"released: {cmd.reason}" if cmd.reason else "released"
            return await self._settle(conn, idem, row, HoldState.RELEASED, 0, note, encode)

        return (await self._guarded(idem, sql.SQL_READ_HOLD, (cmd.hold_id,), write)).body

    # -- credits ---------------------------------------------------------------

    async def _credit(
        self,
        conn: asyncpg.Connection,
        idem: IdempotencyKey,
        encode: Encoder[TransactionResult],
        kind: TxKind,
        user_id: int,
        amount: int,
        source_account: int,
        *,
        hold_id: uuid.UUID | None = None,
        provider: str | None = None,
        charge_id: str | None = None,
        description: str = "",
    ) -> bytes:
        row = await conn.fetchrow(
            sql.SQL_CREDIT,
            kind.value,
            user_id,
            amount,
            source_account,
            hold_id,
            provider,
            charge_id,
            description,
        )
        if row is None:
            raise domain.user_not_found(user_id)
        body = encode(
            TransactionResult(transaction=rows.transaction(row), balance_credits=row["balance"])
        )
        await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, body)
        return body

    @db_call
    async def top_up(
        self, idem: IdempotencyKey, cmd: domain.TopUp, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            try:
                return await self._credit(
                    conn,
                    idem,
                    encode,
                    TxKind.TOP_UP,
                    cmd.user_id,
                    cmd.amount_credits,
                    EXTERNAL_ACCOUNT,
                    provider=cmd.provider,
                    charge_id=cmd.provider_charge_id,
                    description=f"{cmd.provider} {cmd.provider_charge_id}",
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "ledger_transactions_charge_key":
                    raise
                # The whole transaction rolls back on this error, key included.
                raise _charge_reused("credited", cmd.provider, cmd.provider_charge_id) from None

        return await self._idempotent(idem, sql.SQL_CLAIM_ACCOUNT, (cmd.user_id, 0), act)

    @db_call
    async def refund_top_up(
        self,
        idem: IdempotencyKey,
        cmd: domain.RefundTopUp,
        encode: Encoder[TopUpRefundResult],
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["user_id"] is None:
                raise domain.charge_not_found(cmd.provider, cmd.provider_charge_id)
            if row["refunds"]:
                raise _charge_reused("refunded", cmd.provider, cmd.provider_charge_id)
            user_id, amount = row["user_id"], row["amount_credits"]
            domain.check_refund_top_up(row["balance"], amount)
            note = f"{cmd.provider} {cmd.provider_charge_id} refunded" + (
                f": {cmd.reason}" if cmd.reason else ""
            )
            try:
                moved = await conn.fetchrow(
                    sql.SQL_DEBIT,
                    TxKind.TOP_UP_REFUND.value,
                    user_id,
                    amount,
                    EXTERNAL_ACCOUNT,
                    None,
                    cmd.provider,
                    cmd.provider_charge_id,
                    note,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "ledger_transactions_charge_refund_once":
                    raise
                raise _charge_reused("refunded", cmd.provider, cmd.provider_charge_id) from None
            if moved is None:  # pragma: no cover - the account was locked above
                raise Internal("the account of a top-up vanished")
            body = encode(
                TopUpRefundResult(
                    transaction=rows.transaction(moved),
                    balance_credits=moved["balance"],
                    user_id=user_id,
                )
            )
            await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, body)
            return body

        claim_args = (cmd.provider, cmd.provider_charge_id)
        return await self._idempotent(idem, sql.SQL_CLAIM_CHARGE, claim_args, act)

    @db_call
    async def refund(
        self, idem: IdempotencyKey, cmd: domain.Refund, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            hold = rows.hold(row)
            domain.check_refund(hold, cmd.amount_credits)
            await conn.execute(sql.SQL_ADD_REFUNDED, cmd.hold_id, cmd.amount_credits)
            note = f"refund job {cmd.hold_id}" + (f": {cmd.reason}" if cmd.reason else "")
            return await self._credit(
                conn,
                idem,
                encode,
                TxKind.REFUND,
                hold.user_id,
                cmd.amount_credits,
                REVENUE_ACCOUNT,
                hold_id=cmd.hold_id,
                description=note,
            )

        return await self._idempotent(idem, sql.SQL_CLAIM_HOLD, (cmd.hold_id,), act)

    @db_call
    async def grant(
        self, idem: IdempotencyKey, cmd: domain.Grant, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            domain.require_admin(_role(row["actor_role"]))
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            return await self._credit(
                conn,
                idem,
                encode,
                TxKind.GRANT,
                cmd.user_id,
                cmd.amount_credits,
                PROMO_ACCOUNT,
                description=f"grant by {cmd.actor_user_id}",
            )

        claim_args = (cmd.user_id, cmd.actor_user_id)
        return await self._idempotent(idem, sql.SQL_CLAIM_ACCOUNT, claim_args, act)

    # -- reads -------------------------------------------------------------------

    @db_call
    async def list_transactions(
        self, user_id: int, before_id: int | None, limit: int
    ) -> list[Transaction]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                sql.SQL_LIST_TRANSACTIONS, user_id, before_id if before_id else _MAX_ID, limit
            )
            if not found and await conn.fetchval(sql.SQL_GET_ROLE, user_id) is None:
                raise domain.user_not_found(user_id)
        return [rows.transaction(r) for r in found]

    @db_call
    async def stats(self, actor_user_id: int) -> Stats:
        async with self._pool.acquire() as conn:
            domain.require_admin(_role(await conn.fetchval(sql.SQL_GET_ROLE, actor_user_id)))
            row = await conn.fetchrow(sql.SQL_STATS)
        return rows.stats(row)

    @db_call
    async def snapshot(self) -> Stats:
        """The totals behind the billing metrics (no caller check: not exposed as an RPC)."""
        async with self._pool.acquire() as conn:
            return rows.stats(await conn.fetchrow(sql.SQL_STATS))

    @db_call
    async def list_stale_jobs(
        self, older_than_seconds: int, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> list[StaleJob]:
        """Pending holds placed more than ``older_than_seconds`` ago, oldest first."""
        after_time, after_hold = after if after is not None else (None, None)
        found = await self._pool.fetch(
            sql.SQL_STALE_JOBS, float(older_than_seconds), after_time, after_hold, limit
        )
        return [
            StaleJob(
                hold=rows.hold(r), create_time=r["create_time"], language_code=r["language_code"]
            )
            for r in found
        ]

    # -- housekeeping ---------------------------------------------------------------

    @db_call
    async def expire_holds(self, batch_size: int) -> int:
        """Return expired pending holds to their owners; safe in many replicas.

        SKIP LOCKED makes concurrent reapers (and a Capture racing the
        reaper) take disjoint holds instead of queueing on the same rows.
        """
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                due = await conn.fetch(sql.SQL_DUE_HOLDS, batch_size)
                # Accounts in ascending user order: two reapers settling
                # holds of the same users can then never deadlock.
                for row in sorted(due, key=lambda r: (r["user_id"], r["hold_id"])):
                    balance = await conn.fetchval(
                        sql.SQL_EXPIRE, row["hold_id"], 0, "expired", "expired", "hold expired"
                    )
                    if balance is None:  # pragma: no cover - locked and pending above
                        raise Internal(f"hold {row['hold_id']} changed under its lock")
            total += len(due)
            if len(due) < batch_size:
                return total

    @db_call
    async def prune_idempotency_keys(self, ttl_hours: int, batch_size: int) -> int:
        total = 0
        while True:
            status: str = await self._pool.execute(sql.SQL_PRUNE_KEYS, ttl_hours, batch_size)
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < batch_size:
                return total


def _charge_reused(what: str, provider: str, charge_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"this provider charge was already {what} under another idempotency key",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata={"provider": provider, "provider_charge_id": charge_id},
    )
