"""Accepting a note: record the job durably, say it is queued if it must wait, start its lane.

Shared by private chats, /t and group auto-transcription. Nothing here
waits for the job: the update is acknowledged as soon as the job is in
billing's queue, and the lane runs it.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import grpc

from billing.v1 import billing_pb2
from gateway.i18n import t
from gateway.jobs.cache import TranscriptCache
from gateway.jobs.model import JobSpec
from gateway.jobs.queue import JobQueue
from gateway.jobs.runner import Runner
from gateway.jobs.saga import Saga
from gateway.polling import NotAcceptedError
from voxmesh import deadline

log = logging.getLogger(__name__)

# The queued notice is a courtesy: it never holds the update (or the job) up.
NOTICE_SECONDS = 3.0


@dataclass(frozen=True)
class Jobs:
    """The job flow as handlers see it."""

    queue: JobQueue
    runner: Runner
    saga: Saga
    cache: TranscriptCache | None = None

    async def accept(self, spec: JobSpec, trace_id: str) -> bool:
        """Record ``spec`` and start it (QueueFullError if the user has too many waiting).

        Returns False when the update was seen before (its job exists), or was
        answered from the transcript cache.
        """
        if self.cache is not None:
            cached = await self.cache.get(spec)
            if cached is not None:
                await self.saga.answer_from_cache(spec, cached)
                return False
        try:
            submitted = await self.queue.submit(spec, trace_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise NotAcceptedError(f"billing: {exc.code().name}") from exc
            raise
        if submitted.created and submitted.ahead > 0:
            # Best effort: the runner finds this message under the same key
            # later, however long Telegram takes to accept it.
            with contextlib.suppress(grpc.aio.AioRpcError), deadline.bound(NOTICE_SECONDS):
                message_id = await self.saga.send(spec, "status", t(spec.lang, "queued"))
                await self.queue.attach_message(submitted.job.job_id, message_id)
        self.runner.kick(spec.user_id)
        return submitted.created

    async def cancel(self, user_id: int) -> billing_pb2.QueuedJob | None:
        """Stop the user's running job (it tells the user itself), else drop the
        newest queued one (returned CANCELLED); None if there was neither."""
        job = await self.queue.cancel(user_id)
        if job is not None and job.cancel_requested and not self.runner.stop_local(job.job_id):
            log.info("job %s runs on another replica; it stops at its next renewal", job.job_id)
        return job
