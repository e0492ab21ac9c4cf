"""The durable job queue, kept by billing in PostgreSQL; this is its client.

Why billing's jobs table and not a Redis Stream: a job must outlive a Redis
loss (FLUSHALL, a failover, the AOF's last second) as surely as the money
it is about, and billing already keeps every hold's job. One lane per user
(one running job at a time, the rest in arrival order) is a database rule
there, and the claim's attempt number is a fencing token: a runner that
lost its lease (it stalled, another replica took over) is refused at its
next renewal and stops, so no job is driven twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType

import grpc
from google.protobuf.duration_pb2 import Duration

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.jobs.model import Job, JobSpec
from voxmesh.errors import error_details

log = logging.getLogger(__name__)

_STATES = {
    "done": billing_pb2.JOB_STATE_DONE,
    "failed": billing_pb2.JOB_STATE_FAILED,
    "cancelled": billing_pb2.JOB_STATE_CANCELLED,
}


class QueueFullError(Exception):
    """The user already has the most jobs waiting that billing keeps."""

    def __init__(self, max_queued: int) -> None:
        super().__init__(f"{max_queued} jobs waiting already")
        self.max_queued = max_queued


class LeaseLostError(Exception):
    """Another runner holds the job now (or it ended): stop without effects."""


@dataclass(frozen=True)
class Submitted:
    job: billing_pb2.QueuedJob
    created: bool
    ahead: int


def job_of(queued: billing_pb2.QueuedJob) -> Job:
    return Job(
        job_id=queued.job_id,
        attempt=queued.attempt,
        spec=JobSpec.from_bytes(queued.spec),
        status_message_id=queued.status_message_id,
        hold_id=queued.hold_id,
        trace_id=queued.trace_id,
    )


def _lease_lost(exc: grpc.aio.AioRpcError) -> bool:
    return error_details(exc).reason in ("JOB_LEASE_LOST", "NOT_FOUND")


class JobQueue:
    def __init__(self, services: Services, *, bot_id: int, owner: str) -> None:
        self._billing = services.billing
        self.bot_id = bot_id
        self.owner = owner

    def submit_key(self, spec: JobSpec) -> str:
        # The bot's id: two bots (or a re-created one) share no keys.
        return f"job:{self.bot_id}:{spec.chat_id}:{spec.message_id}"

    async def submit(self, spec: JobSpec, trace_id: str) -> Submitted:
        try:
            response = await self._billing.SubmitJob(
                billing_pb2.SubmitJobRequest(
                    idempotency_key=self.submit_key(spec),
                    user_id=spec.user_id,
                    chat_id=spec.chat_id,
                    message_id=spec.message_id,
                    spec=spec.to_bytes(),
                    trace_id=trace_id,
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            details = error_details(exc)
            if details.reason == "QUEUE_FULL":
                most = (details.metadata or {}).get("max_queued", "0")
                raise QueueFullError(int(most) if most.isdigit() else 0) from exc
            raise
        return Submitted(response.job, response.created, response.ahead)

    async def claim(self, user_id: int, lease_seconds: float) -> billing_pb2.QueuedJob | None:
        response = await self._billing.ClaimJob(
            billing_pb2.ClaimJobRequest(
                user_id=user_id, owner=self.owner, lease=_duration(lease_seconds)
            ),
            timeout=10,
        )
        return response.job if response.HasField("job") else None

    async def renew(self, job: Job, lease_seconds: float) -> billing_pb2.QueuedJob:
        try:
            response = await self._billing.RenewJob(
                billing_pb2.RenewJobRequest(
                    job_id=job.job_id, attempt=job.attempt, lease=_duration(lease_seconds)
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            if _lease_lost(exc):
                raise LeaseLostError(job.job_id) from exc
            raise
        return response.job

    async def finish(self, job_id: str, attempt: int, state: str, outcome: str) -> None:
        try:
            await self._billing.FinishJob(
                billing_pb2.FinishJobRequest(
                    job_id=job_id,
                    attempt=attempt,
                    state=_STATES[state],
                    outcome=outcome[:64],
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            if _lease_lost(exc):
                raise LeaseLostError(job_id) from exc
            raise

    async def attach_message(self, job_id: str, message_id: int) -> int:
        """Record the job's status message; returns the one recorded (the first wins)."""
        response = await self._billing.AttachJobMessage(
            billing_pb2.AttachJobMessageRequest(job_id=job_id, status_message_id=message_id),
            timeout=10,
        )
        return int(response.job.status_message_id)

    async def cancel(self, user_id: int) -> billing_pb2.QueuedJob | None:
        """Ask the user's running job to stop (or drop the newest queued one)."""
        try:
            response = await self._billing.CancelJob(
                billing_pb2.CancelJobRequest(user_id=user_id), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            if error_details(exc).reason == "NOT_FOUND":
                return None
            raise
        return response.job

    async def runnable_users(self, page_size: int = 100) -> list[int]:
        users: list[int] = []
        token = ""
        while True:
            page = await self._billing.ListRunnableJobs(
                billing_pb2.ListRunnableJobsRequest(page_size=page_size, page_token=token),
                timeout=10,
            )
            users.extend(page.user_ids)
            token = page.next_page_token
            if not token:
                return users


def _duration(seconds: float) -> Duration:
    return Duration(seconds=max(1, round(seconds)))


class Lease:
    """Keeps a claimed job's lease alive while it runs.

    ``stop`` is set when the user cancels the job (seen at a renewal, or at
    once through :meth:`cancel` on this replica); ``lost`` when billing says
    another runner holds the job now, which also sets ``stop``: a runner
    that lost its lease must end without further effects.
    """

    def __init__(
        self, queue: JobQueue, job: Job, *, lease_seconds: float, renew_seconds: float
    ) -> None:
        self._queue = queue
        self.job = job
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self.stop = asyncio.Event()
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    def cancel(self) -> None:
        self.stop.set()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                renewed = await self._queue.renew(self.job, self._lease_seconds)
            except LeaseLostError:
                log.warning("job %s: lease lost to another runner", self.job.job_id)
                self.lost = True
                self.stop.set()
                return
            except grpc.aio.AioRpcError as exc:
                # Billing unreachable: keep working; the lease lapses only if
                # this goes on longer than the lease itself.
                log.warning("job %s: lease renewal failed (%s)", self.job.job_id, exc.code())
                continue
            if renewed.cancel_requested:
                self.stop.set()

    async def let_go(self) -> None:
        """Shorten the lease to its minimum, so another runner takes the job soon."""
        with contextlib.suppress(grpc.aio.AioRpcError, LeaseLostError):
            await self._queue.renew(self.job, 1)

    async def __aenter__(self) -> Lease:
        self._task = asyncio.create_task(self._beat(), name=f"lease-{self.job.job_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
