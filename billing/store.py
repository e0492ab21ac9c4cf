"""The port: what billing needs from storage, in domain terms.

Billing decides (billing/domain.py, billing/jobs.py); a store only
persists, applying those rules on the rows it has locked. The PostgreSQL
adapter is billing/postgres/; nothing here knows gRPC or a database driver.

Money calls take the idempotency key and an encoder for the response: they
return the serialised response, fresh or stored, so a replay and the first
call answer byte for byte the same (Reserve excepted: its replay reports the
hold as it is now, see :class:`Answer`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from billing import domain, jobs
from billing.domain import (
    Balance,
    Hold,
    HoldResult,
    IdempotencyKey,
    StaleJob,
    Stats,
    TopUpRefundResult,
    Transaction,
    TransactionResult,
    User,
)
from billing.jobs import QueuedJob, Submitted

T = TypeVar("T")
Encoder = Callable[[T], bytes]


@dataclass(frozen=True)
class Answer:
    """A money call's serialised response; ``replayed`` when it came from the key."""

    body: bytes
    replayed: bool


class MoneyStore(Protocol):
    async def ensure_user(
        self, cmd: domain.EnsureUser, *, make_admin: bool, trial_credits: int
    ) -> tuple[User, bool]: ...

    async def get_user(self, user_id: int) -> User: ...

    async def get_balance(self, user_id: int) -> Balance: ...

    async def reserve(
        self,
        idem: IdempotencyKey,
        cmd: domain.Reserve,
        ttl_seconds: int,
        encode: Encoder[HoldResult],
    ) -> Answer: ...

    async def get_hold(self, hold_id: uuid.UUID) -> Hold: ...

    async def extend_hold(
        self, idem: IdempotencyKey, cmd: domain.ExtendHold, encode: Encoder[HoldResult]
    ) -> bytes: ...

    async def capture(
        self, idem: IdempotencyKey, cmd: domain.Capture, encode: Encoder[HoldResult]
    ) -> bytes: ...

    async def release(
        self, idem: IdempotencyKey, cmd: domain.Release, encode: Encoder[HoldResult]
    ) -> bytes: ...

    async def top_up(
        self, idem: IdempotencyKey, cmd: domain.TopUp, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def refund_top_up(
        self,
        idem: IdempotencyKey,
        cmd: domain.RefundTopUp,
        encode: Encoder[TopUpRefundResult],
    ) -> bytes: ...

    async def refund(
        self, idem: IdempotencyKey, cmd: domain.Refund, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def grant(
        self, idem: IdempotencyKey, cmd: domain.Grant, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def list_transactions(
        self, user_id: int, before_id: int | None, limit: int
    ) -> list[Transaction]: ...

    async def set_role(self, cmd: domain.SetRole) -> User: ...

    async def stats(self, actor_user_id: int) -> Stats: ...

    async def snapshot(self) -> Stats: ...

    async def list_stale_jobs(
        self, older_than_seconds: int, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> list[StaleJob]: ...

    async def expire_holds(self, batch_size: int) -> int: ...

    async def prune_idempotency_keys(self, ttl_hours: int, batch_size: int) -> int: ...


class JobStore(Protocol):
    async def submit_job(
        self, idem: IdempotencyKey, cmd: jobs.SubmitJob, *, max_queued: int
    ) -> Submitted: ...

    async def claim_job(self, cmd: jobs.ClaimJob) -> QueuedJob | None: ...

    async def renew_job(self, cmd: jobs.RenewJob) -> QueuedJob: ...

    async def finish_job(self, cmd: jobs.FinishJob) -> QueuedJob: ...

    async def attach_job_message(self, job_id: uuid.UUID, status_message_id: int) -> QueuedJob: ...

    async def cancel_job(self, user_id: int) -> QueuedJob: ...

    async def list_runnable_users(
        self, after: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]: ...

    async def erase_user(self, user_id: int) -> int: ...

    async def delete_old_jobs(self, retention_days: int, batch_size: int) -> int: ...


class BillingStore(MoneyStore, JobStore, Protocol):
    """Everything the servicer and the reaper need from storage."""
