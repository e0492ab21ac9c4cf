"""Holds on PostgreSQL: Reserve, ExtendHold, Capture, Release, the reaper's
expiry and the reconciler's stale list, in the guarded-write frame of
:mod:`billing.postgres.base`; :mod:`billing.domain` decides on the rows read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from billing import domain, jobs, sql
from billing.domain import (
    Hold,
    HoldResult,
    HoldState,
    IdempotencyKey,
    Job,
    Role,
    StaleJob,
)
from billing.postgres import rows
from billing.postgres.base import PgBase, check_prediction
from billing.postgres.pool import db_call
from billing.store import Answer, Encoder
from voxmesh.errors import Internal

_JOB_STATE = {
    HoldState.CAPTURED: "done",
    HoldState.RELEASED: "cancelled",
    HoldState.EXPIRED: "expired",
}


class PgHoldStore(PgBase):
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
