"""The durable-job RPCs of BillingService and EraseUser: validate, call the
store, translate. Mixed into billing.service.BillingServicer."""

from __future__ import annotations

import logging
from datetime import datetime

import grpc
from google.protobuf import timestamp_pb2

from billing import validation
from billing.config import BillingSettings
from billing.jobs import JobState, QueuedJob, Submitted
from billing.store import BillingStore
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc

log = logging.getLogger(__name__)

_JOB_STATES = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.DONE: pb.JOB_STATE_DONE,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def job_to_proto(job: QueuedJob) -> pb.QueuedJob:
    reply = pb.QueuedJob(
        job_id=str(job.job_id),
        user_id=job.user_id,
        chat_id=job.chat_id,
        message_id=job.message_id,
        state=_JOB_STATES[job.state],
        spec=job.spec,
        status_message_id=job.status_message_id,
        attempt=job.attempt,
        cancel_requested=job.cancel_requested,
        hold_id=str(job.hold_id) if job.hold_id is not None else "",
        create_time=timestamp(job.create_time),
        trace_id=job.trace_id,
        outcome=job.outcome,
    )
    if job.lease_expire_time is not None:
        reply.lease_expire_time.CopyFrom(timestamp(job.lease_expire_time))
    return reply


def _submitted(result: Submitted) -> pb.SubmitJobResponse:
    return pb.SubmitJobResponse(
        job=job_to_proto(result.job), created=result.created, ahead=result.ahead
    )


class JobHandlers(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, store: BillingStore, settings: BillingSettings) -> None:
        self._jobs = store
        self._settings = settings
        self._lease_bounds = (settings.job_lease_min_seconds, settings.job_lease_max_seconds)

    async def SubmitJob(
        self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitJobResponse:
        idem, cmd = validation.submit_job(request)
        result = await self._jobs.submit_job(idem, cmd, max_queued=self._settings.max_queued_jobs)
        return _submitted(result)

    async def ClaimJob(
        self, request: pb.ClaimJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClaimJobResponse:
        job = await self._jobs.claim_job(validation.claim_job(request, self._lease_bounds))
        if job is None:
            return pb.ClaimJobResponse()
        if job.attempt > 1:
            log.info("job %s claimed again (attempt %d)", job.job_id, job.attempt)
        return pb.ClaimJobResponse(job=job_to_proto(job))

    async def RenewJob(
        self, request: pb.RenewJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenewJobResponse:
        job = await self._jobs.renew_job(validation.renew_job(request, self._lease_bounds))
        return pb.RenewJobResponse(job=job_to_proto(job))

    async def FinishJob(
        self, request: pb.FinishJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.FinishJobResponse:
        job = await self._jobs.finish_job(validation.finish_job(request))
        return pb.FinishJobResponse(job=job_to_proto(job))

    async def AttachJobMessage(
        self, request: pb.AttachJobMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.AttachJobMessageResponse:
        job = await self._jobs.attach_job_message(*validation.attach_job_message(request))
        return pb.AttachJobMessageResponse(job=job_to_proto(job))

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        job = await self._jobs.cancel_job(validation.user_id(request))
        return pb.CancelJobResponse(job=job_to_proto(job))

    async def ListRunnableJobs(
        self, request: pb.ListRunnableJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRunnableJobsResponse:
        size, after = validation.list_runnable_jobs(request)
        # One extra row says whether another page exists.
        found = await self._jobs.list_runnable_users(after, size + 1)
        page = found[:size]
        token = validation.encode_runnable_token(*page[-1]) if len(found) > size else ""
        return pb.ListRunnableJobsResponse(
            user_ids=[user for _, user in page], next_page_token=token
        )

    async def EraseUser(
        self, request: pb.EraseUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.EraseUserResponse:
        user_id = validation.user_id(request)
        erased = await self._jobs.erase_user(user_id)
        log.info("erased the personal data of user %d (%d jobs)", user_id, erased)
        return pb.EraseUserResponse(jobs_erased=erased)
