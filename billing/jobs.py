"""Durable jobs in plain Python: a note's life from acceptance to its outcome.

A job is QUEUED in its user's lane when the gateway accepts the note,
RUNNING under one runner's lease, then DONE, FAILED or CANCELLED. Each claim
increments ``attempt``, the fencing token: a runner whose lease lapsed and
was claimed again (attempt + 1) is refused at its next call and must stop.
No gRPC and no database here; the store applies these rules.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from voxmesh.errors import FailedPrecondition, NotFound, ResourceExhausted


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
# A job that may still get a hold: it has not ended.
OPEN = frozenset({JobState.QUEUED, JobState.RUNNING})


@dataclass(frozen=True)
class QueuedJob:
    job_id: uuid.UUID
    user_id: int
    chat_id: int
    message_id: int
    state: JobState
    #: Opaque to billing; empty once the job finished (retention).
    spec: bytes
    status_message_id: int
    attempt: int
    #: RUNNING only.
    lease_expire_time: datetime | None
    cancel_requested: bool
    hold_id: uuid.UUID | None
    create_time: datetime
    trace_id: str
    outcome: str


@dataclass(frozen=True)
class Submitted:
    job: QueuedJob
    created: bool
    #: Jobs of the user ahead of it (queued or running), when QUEUED.
    ahead: int


# Commands: validated requests, in domain terms.


@dataclass(frozen=True)
class SubmitJob:
    user_id: int
    chat_id: int
    message_id: int
    spec: bytes
    trace_id: str


@dataclass(frozen=True)
class ClaimJob:
    user_id: int
    owner: str
    lease_seconds: float


@dataclass(frozen=True)
class RenewJob:
    job_id: uuid.UUID
    attempt: int
    lease_seconds: float


@dataclass(frozen=True)
class FinishJob:
    job_id: uuid.UUID
    attempt: int
    state: JobState
    outcome: str


# Rules.


def job_not_found(job_id: uuid.UUID) -> NotFound:
    return NotFound(f"job {job_id} not found", metadata={"job_id": str(job_id)})


def nothing_to_cancel(user_id: int) -> NotFound:
    return NotFound(f"user {user_id} has no running or queued job", metadata={"user_id": user_id})


def check_queue(queued: int, max_queued: int) -> None:
    """A user's lane holds at most ``max_queued`` waiting jobs."""
    if queued >= max_queued:
        raise ResourceExhausted(
            f"the user already has {queued} jobs waiting",
            reason="QUEUE_FULL",
            metadata={"max_queued": max_queued},
        )


def lease_lost(job: QueuedJob, attempt: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"job {job.job_id} is {job.state.value} at attempt {job.attempt}; this runner lost it",
        reason="JOB_LEASE_LOST",
        metadata={"job_id": str(job.job_id), "attempt": job.attempt, "state": job.state.value},
    )


def check_finish_again(job: QueuedJob, cmd: FinishJob) -> QueuedJob:
    """A fenced finish matched no running job: a repeat of the finish that
    already ended this attempt returns the job; anything else lost the lease."""
    if job.attempt == cmd.attempt and job.state is cmd.state:
        return job
    raise lease_lost(job, cmd.attempt)


def check_open(job_id: uuid.UUID, state: JobState | None) -> None:
    """A hold may be placed for a job that exists and has not ended."""
    if state is None:
        raise job_not_found(job_id)
    if state not in OPEN:
        raise FailedPrecondition(
            f"job {job_id} is {state.value}",
            reason="JOB_LEASE_LOST",
            metadata={"job_id": str(job_id), "state": state.value},
        )
