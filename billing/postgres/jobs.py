"""Durable jobs on PostgreSQL: the job half of the store, plus retention and erasure.

The rules are :mod:`billing.jobs`; the statements, billing/sql_jobs.py. The
fencing is in the SQL itself: every runner call matches ``attempt`` and
``state = 'running'`` in its WHERE clause, so a stale runner's write is a
no-op that the store then explains (JOB_LEASE_LOST) from a fresh read.
"""

from __future__ import annotations

import uuid

import asyncpg

from billing import domain, jobs, sql, sql_jobs
from billing.domain import IdempotencyKey
from billing.jobs import QueuedJob, Submitted
from billing.postgres import rows
from billing.postgres.base import PgBase, stored_response
from billing.postgres.pool import db_call

# A CancelJob looks again when a claim took the queued job it aimed at; two
# misses in a row mean the lane is busy changing, and the caller retries.
_CANCEL_TRIES = 3


class PgJobStore(PgBase):
    async def _get(self, conn: asyncpg.Connection, job_id: uuid.UUID) -> QueuedJob:
        row = await conn.fetchrow(sql_jobs.SQL_GET_JOB, job_id)
        if row is None:
            raise jobs.job_not_found(job_id)
        return rows.job(row)

    @staticmethod
    async def _submitted(
        conn: asyncpg.Connection, row: asyncpg.Record, *, created: bool
    ) -> Submitted:
        job = rows.job(row)
        ahead = 0
        if job.state is jobs.JobState.QUEUED:
            ahead = await conn.fetchval(sql_jobs.SQL_AHEAD, job.user_id, row["seq"])
        return Submitted(job=job, created=created, ahead=ahead)

    @db_call
    async def submit_job(
        self, idem: IdempotencyKey, cmd: jobs.SubmitJob, *, max_queued: int
    ) -> Submitted:
        # The user's account row lock (taken by the claim) serialises one
        # user's submissions: the queue bound and the arrival order hold.
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                sql.SQL_CLAIM_ACCOUNT, idem.method, idem.key, idem.request_hash, cmd.user_id, 0
            )
            stored = stored_response(idem, row)
            if stored is not None:
                # The key's response is the job id: answer with the job as it is now.
                found = await conn.fetchrow(sql_jobs.SQL_GET_JOB, uuid.UUID(bytes=stored))
                if found is None:
                    raise jobs.job_not_found(uuid.UUID(bytes=stored))
                return await self._submitted(conn, found, created=False)
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            queued = await conn.fetchval(sql_jobs.SQL_COUNT_QUEUED, cmd.user_id)
            jobs.check_queue(queued, max_queued)
            new = await conn.fetchrow(
                sql_jobs.SQL_INSERT_JOB,
                cmd.user_id,
                cmd.chat_id,
                cmd.message_id,
                cmd.spec,
                cmd.trace_id,
            )
            await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, new["job_id"].bytes)
            return await self._submitted(conn, new, created=True)

    @db_call
    async def claim_job(self, cmd: jobs.ClaimJob) -> QueuedJob | None:
        try:
            row = await self._pool.fetchrow(
                sql_jobs.SQL_CLAIM_JOB, cmd.user_id, cmd.owner, cmd.lease_seconds
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "jobs_one_running_per_user":
                raise
            return None  # another claimer's job runs now: nothing for this one
        return rows.job(row) if row is not None else None

    @db_call
    async def renew_job(self, cmd: jobs.RenewJob) -> QueuedJob:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                sql_jobs.SQL_RENEW_JOB, cmd.job_id, cmd.attempt, cmd.lease_seconds
            )
            if row is not None:
                return rows.job(row)
            raise jobs.lease_lost(await self._get(conn, cmd.job_id), cmd.attempt)

    @db_call
    async def finish_job(self, cmd: jobs.FinishJob) -> QueuedJob:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                sql_jobs.SQL_FINISH_JOB, cmd.job_id, cmd.attempt, cmd.state.value, cmd.outcome
            )
            if row is not None:
                return rows.job(row)
            return jobs.check_finish_again(await self._get(conn, cmd.job_id), cmd)

    @db_call
    async def attach_job_message(self, job_id: uuid.UUID, status_message_id: int) -> QueuedJob:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql_jobs.SQL_ATTACH_MESSAGE, job_id, status_message_id)
            if row is not None:
                return rows.job(row)
            # Already attached (the first id wins), or no such job. A fresh
            # statement: it sees a racing attach that committed meanwhile.
            return await self._get(conn, job_id)

    @db_call
    async def cancel_job(self, user_id: int) -> QueuedJob:
        async with self._pool.acquire() as conn:
            for _ in range(_CANCEL_TRIES):
                row = await conn.fetchrow(sql_jobs.SQL_REQUEST_CANCEL, user_id)
                if row is None:
                    row = await conn.fetchrow(sql_jobs.SQL_CANCEL_QUEUED, user_id)
                if row is not None:
                    return rows.job(row)
                if not await conn.fetchval(sql_jobs.SQL_COUNT_QUEUED, user_id):
                    break
        raise jobs.nothing_to_cancel(user_id)

    @db_call
    async def list_runnable_users(
        self, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]:
        seq, user = after if after is not None else (None, None)
        found = await self._pool.fetch(sql_jobs.SQL_RUNNABLE_USERS, seq, user, limit)
        return [(r["first"], r["user_id"]) for r in found]

    @db_call
    async def erase_user(self, user_id: int) -> int:
        row = await self._pool.fetchrow(sql.SQL_ERASE_USER, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        erased: int = row["jobs_erased"]
        return erased

    @db_call
    async def delete_old_jobs(self, retention_days: int, batch_size: int) -> int:
        total = 0
        while True:
            status: str = await self._pool.execute(
                sql_jobs.SQL_DELETE_OLD_JOBS, retention_days, batch_size
            )
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < batch_size:
                return total
