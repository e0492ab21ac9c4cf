"""Runs users' lanes on this replica: each user's jobs one at a time, in arrival order.

Handlers :meth:`Runner.kick` a user after recording a job; the reconciler
kicks every user billing says has a job that can move (queued behind no
live runner, or running under a lapsed lease: its runner died). Kicking a
user whose lane already runs here only makes it look again before it stops.

Billing decides which job runs (ClaimJob): one per user across every
replica, each claim a new attempt, the attempt the fencing token of every
later call. Here, a job whose dependencies are unreachable lets its lease
go without an outcome; another claim (here or on another replica) tries it
again, up to the saga's ``max_attempts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from billing.v1 import billing_pb2
from gateway.jobs.model import Job, Outcome, SpecError
from gateway.jobs.queue import JobQueue, Lease, LeaseLostError, job_of
from gateway.jobs.saga import RetryLaterError, Saga

log = logging.getLogger(__name__)

# Called with every job that reached an outcome (the transcript cache).
OnOutcome = Callable[[Job, Outcome], Awaitable[None]]


def parent_context(trace_id: str) -> Any:
    """A context whose parent is the job's first trace, so every try joins it."""
    try:
        tid = int(trace_id, 16)
    except ValueError:
        return None
    if not tid:
        return None
    parent = SpanContext(
        trace_id=tid,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class Runner:
    def __init__(
        self,
        queue: JobQueue,
        saga: Saga,
        *,
        lease_seconds: float = 15.0,
        on_outcome: OnOutcome | None = None,
    ) -> None:
        self._queue = queue
        self._saga = saga
        self.lease_seconds = lease_seconds
        self._on_outcome = on_outcome
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._kicked: set[int] = set()
        self._leases: dict[str, Lease] = {}
        self._draining = False
        self._tracer = trace.get_tracer("voxmesh.gateway")

    def kick(self, user_id: int) -> None:
        """Make sure ``user_id``'s lane runs here (it claims until nothing is left)."""
        if self._draining:
            return
        self._kicked.add(user_id)
        if user_id not in self._lanes:
            task = asyncio.create_task(self._lane(user_id), name=f"lane-{user_id}")
            self._lanes[user_id] = task

    def stop_local(self, job_id: str) -> bool:
        """Stop a job that runs on this replica at once (/cancel); False if it runs elsewhere."""
        lease = self._leases.get(job_id)
        if lease is None:
            return False
        lease.cancel()
        return True

    def running(self) -> int:
        return len(self._leases)

    async def idle(self) -> None:
        """Wait until no lane runs here (for tests and the drain)."""
        while self._lanes:
            await asyncio.wait(list(self._lanes.values()))

    async def _lane(self, user_id: int) -> None:
        try:
            while not self._draining:
                self._kicked.discard(user_id)
                try:
                    queued = await self._queue.claim(user_id, self.lease_seconds)
                except grpc.aio.AioRpcError as exc:
                    # The reconciler kicks the lane again on its next pass.
                    log.warning("claiming a job of user %s failed (%s)", user_id, exc.code())
                    return
                if queued is None:
                    if user_id in self._kicked:
                        continue  # kicked while claiming: look once more
                    return
                await self._run(queued)
        finally:
            self._lanes.pop(user_id, None)

    async def _run(self, queued: billing_pb2.QueuedJob) -> None:
        try:
            job = job_of(queued)
        except SpecError:
            log.exception("job %s has an unreadable record; ending it", queued.job_id)
            with contextlib.suppress(grpc.aio.AioRpcError, LeaseLostError):
                await self._queue.finish(queued.job_id, queued.attempt, "failed", "unreadable")
            return
        with self._tracer.start_as_current_span(
            "gateway.job",
            context=parent_context(job.trace_id),
            attributes={
                "voxmesh.job_id": job.job_id,
                "voxmesh.attempt": job.attempt,
                "telegram.chat_id": job.spec.chat_id,
            },
        ) as span:
            outcome = await self._drive(job)
            if outcome is not None:
                span.set_attribute("voxmesh.outcome", outcome.status)

    async def _drive(self, job: Job) -> Outcome | None:
        renew = max(0.5, self.lease_seconds / 5)
        async with Lease(
            self._queue, job, lease_seconds=self.lease_seconds, renew_seconds=renew
        ) as lease:
            self._leases[job.job_id] = lease
            try:
                outcome = await self._saga.run(job, lease, self._queue.attach_message)
            except RetryLaterError as exc:
                log.warning("job %s: %s; another try comes later", job.job_id, exc)
                await lease.let_go()
                return None
            except asyncio.CancelledError:
                # Shutdown: the hold stays, the next replica's claim goes on with it.
                await asyncio.shield(lease.let_go())
                raise
            except Exception:
                log.exception("job %s failed unexpectedly; another try comes later", job.job_id)
                await lease.let_go()
                return None
            finally:
                self._leases.pop(job.job_id, None)
        if lease.lost:
            return outcome  # another runner owns it now; it records the end
        try:
            await self._queue.finish(job.job_id, job.attempt, outcome.job_state, outcome.status)
        except LeaseLostError:
            pass
        except grpc.aio.AioRpcError as exc:
            # Its lease lapses and a later try finds the hold settled: the
            # text is delivered again (same message), never charged again.
            log.error("job %s: recording its end failed (%s)", job.job_id, exc.code())
        if self._on_outcome is not None:
            with contextlib.suppress(Exception):
                await self._on_outcome(job, outcome)
        return outcome

    async def drain(self, grace: float) -> None:
        """Claim nothing more; give running jobs ``grace`` seconds, then cancel them
        (their leases are let go: another replica goes on with them)."""
        self._draining = True
        lanes = list(self._lanes.values())
        if not lanes:
            return
        _, pending = await asyncio.wait(lanes, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=15)
