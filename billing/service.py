"""The BillingService servicer: validate, call the store, translate to proto.

Handlers only translate. Errors are raised as :mod:`voxmesh.errors` types
and become gRPC statuses in the runtime's interceptor.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import grpc

from billing import validation
from billing.config import BillingSettings
from billing.domain import (
    Hold,
    HoldResult,
    HoldState,
    Pricing,
    TopUpRefundResult,
    Transaction,
    TransactionResult,
    TxKind,
    User,
)
from billing.service_jobs import JobHandlers, timestamp
from billing.store import BillingStore
from billing.v1 import billing_pb2 as pb

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BillingService"].full_name

_HOLD_STATES = {
    HoldState.PENDING: pb.HOLD_STATE_PENDING,
    HoldState.CAPTURED: pb.HOLD_STATE_CAPTURED,
    HoldState.RELEASED: pb.HOLD_STATE_RELEASED,
    HoldState.EXPIRED: pb.HOLD_STATE_EXPIRED,
}
_TX_KINDS = {
    TxKind.TOP_UP: pb.TRANSACTION_KIND_TOP_UP,
    TxKind.CAPTURE: pb.TRANSACTION_KIND_CAPTURE,
    TxKind.REFUND: pb.TRANSACTION_KIND_REFUND,
    TxKind.GRANT: pb.TRANSACTION_KIND_GRANT,
    TxKind.TRIAL: pb.TRANSACTION_KIND_TRIAL,
    TxKind.TOP_UP_REFUND: pb.TRANSACTION_KIND_TOP_UP_REFUND,
}


def user_to_proto(user: User) -> pb.User:
    return pb.User(
        user_id=user.user_id,
        username=user.username,
        language_code=user.language_code,
        role=validation.role_to_proto(user.role),
        create_time=timestamp(user.create_time),
    )


def hold_to_proto(hold: Hold) -> pb.Hold:
    job = hold.job
    return pb.Hold(
        hold_id=str(hold.hold_id),
        user_id=hold.user_id,
        amount_credits=hold.amount_credits,
        captured_credits=hold.captured_credits,
        state=_HOLD_STATES[hold.state],
        expire_time=timestamp(hold.expire_time),
        job=pb.Job(
            chat_id=job.chat_id,
            message_id=job.message_id,
            file_id=job.file_id,
            duration_seconds=job.duration_seconds,
            trace_id=job.trace_id,
            job_id=str(job.job_id) if job.job_id is not None else "",
        ),
    )


def transaction_to_proto(tx: Transaction) -> pb.Transaction:
    return pb.Transaction(
        transaction_id=tx.transaction_id,
        kind=_TX_KINDS.get(tx.kind, pb.TRANSACTION_KIND_UNSPECIFIED),
        amount_credits=tx.signed_amount,
        balance_after_credits=tx.balance_after_credits,
        description=tx.description,
        create_time=timestamp(tx.create_time),
    )


def _encode_reserve(result: HoldResult) -> bytes:
    return pb.ReserveResponse(hold=hold_to_proto(result.hold)).SerializeToString()


def _encode_capture(result: HoldResult) -> bytes:
    return pb.CaptureResponse(
        hold=hold_to_proto(result.hold), balance_credits=result.balance_credits
    ).SerializeToString()


def _encode_release(result: HoldResult) -> bytes:
    return pb.ReleaseResponse(
        hold=hold_to_proto(result.hold), balance_credits=result.balance_credits
    ).SerializeToString()


def _encode_extend(result: HoldResult) -> bytes:
    return pb.ExtendHoldResponse(
        hold=hold_to_proto(result.hold), balance_credits=result.balance_credits
    ).SerializeToString()


def _encode_refund_top_up(result: TopUpRefundResult) -> bytes:
    return pb.RefundTopUpResponse(
        transaction=transaction_to_proto(result.transaction),
        balance_credits=result.balance_credits,
        user_id=result.user_id,
    ).SerializeToString()


def _encode_top_up(result: TransactionResult) -> bytes:
    return pb.TopUpResponse(
        transaction=transaction_to_proto(result.transaction),
        balance_credits=result.balance_credits,
    ).SerializeToString()


def _encode_refund(result: TransactionResult) -> bytes:
    return pb.RefundResponse(
        transaction=transaction_to_proto(result.transaction),
        balance_credits=result.balance_credits,
    ).SerializeToString()


def _encode_grant(result: TransactionResult) -> bytes:
    return pb.GrantResponse(
        transaction=transaction_to_proto(result.transaction),
        balance_credits=result.balance_credits,
    ).SerializeToString()


class BillingServicer(JobHandlers):
    def __init__(self, store: BillingStore, settings: BillingSettings) -> None:
        super().__init__(store, settings)
        self._store = store
        self._pricing = Pricing(settings.price_per_minute_credits)

    async def EnsureUser(
        self, request: pb.EnsureUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnsureUserResponse:
        cmd = validation.ensure_user(request)
        user, created = await self._store.ensure_user(
            cmd,
            make_admin=cmd.user_id in self._settings.admin_user_ids,
            trial_credits=self._settings.trial_credits,
        )
        if created:
            log.info("new user %d", user.user_id)
        return pb.EnsureUserResponse(user=user_to_proto(user), created=created)

    async def GetUser(
        self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUserResponse:
        user = await self._store.get_user(validation.user_id(request))
        return pb.GetUserResponse(user=user_to_proto(user))

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceResponse:
        balance = await self._store.get_balance(validation.user_id(request))
        return pb.GetBalanceResponse(
            balance_credits=balance.balance_credits,
            held_credits=balance.held_credits,
            seconds_available=self._pricing.seconds_for(balance.balance_credits),
        )

    async def Quote(
        self, request: pb.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuoteResponse:
        seconds = validation.quote(request)
        return pb.QuoteResponse(amount_credits=self._pricing.price(seconds))

    async def Reserve(
        self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReserveResponse:
        idem, cmd = validation.reserve(request)
        ttl = cmd.ttl_seconds or self._settings.hold_ttl_seconds
        answer = await self._store.reserve(idem, cmd, ttl, _encode_reserve)
        first = pb.ReserveResponse.FromString(answer.body)
        if not answer.replayed:
            return first
        # A replay reports the hold as it is now (captured, released,
        # expired...), not as it was: the caller acts on that state.
        hold = await self._store.get_hold(uuid.UUID(first.hold.hold_id))
        return pb.ReserveResponse(hold=hold_to_proto(hold))

    async def ExtendHold(
        self, request: pb.ExtendHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExtendHoldResponse:
        idem, cmd = validation.extend_hold(request)
        body = await self._store.extend_hold(idem, cmd, _encode_extend)
        return pb.ExtendHoldResponse.FromString(body)

    async def GetHold(
        self, request: pb.GetHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHoldResponse:
        hold = await self._store.get_hold(validation.get_hold(request))
        return pb.GetHoldResponse(hold=hold_to_proto(hold))

    async def Capture(
        self, request: pb.CaptureRequest, context: grpc.aio.ServicerContext
    ) -> pb.CaptureResponse:
        idem, cmd = validation.capture(request)
        return pb.CaptureResponse.FromString(await self._store.capture(idem, cmd, _encode_capture))

    async def Release(
        self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseResponse:
        idem, cmd = validation.release(request)
        return pb.ReleaseResponse.FromString(await self._store.release(idem, cmd, _encode_release))

    async def TopUp(
        self, request: pb.TopUpRequest, context: grpc.aio.ServicerContext
    ) -> pb.TopUpResponse:
        idem, cmd = validation.top_up(request)
        return pb.TopUpResponse.FromString(await self._store.top_up(idem, cmd, _encode_top_up))

    async def RefundTopUp(
        self, request: pb.RefundTopUpRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundTopUpResponse:
        idem, cmd = validation.refund_top_up(request)
        body = await self._store.refund_top_up(idem, cmd, _encode_refund_top_up)
        reply = pb.RefundTopUpResponse.FromString(body)
        log.info("top-up %s %s taken back", cmd.provider, cmd.provider_charge_id)
        return reply

    async def Refund(
        self, request: pb.RefundRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundResponse:
        idem, cmd = validation.refund(request)
        return pb.RefundResponse.FromString(await self._store.refund(idem, cmd, _encode_refund))

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTransactionsResponse:
        user_id, before, size = validation.list_transactions(request)
        # One extra row says whether an older page exists.
        rows = await self._store.list_transactions(user_id, before, size + 1)
        page = rows[:size]
        token = ""
        if len(rows) > size:
            token = validation.encode_page_token(user_id, page[-1].transaction_id)
        return pb.ListTransactionsResponse(
            transactions=[transaction_to_proto(tx) for tx in page], next_page_token=token
        )

    async def SetRole(
        self, request: pb.SetRoleRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetRoleResponse:
        cmd = validation.set_role(request)
        user = await self._store.set_role(cmd)
        log.info("user %d set role of %d to %s", cmd.actor_user_id, cmd.user_id, cmd.role.value)
        return pb.SetRoleResponse(user=user_to_proto(user))

    async def Grant(
        self, request: pb.GrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.GrantResponse:
        idem, cmd = validation.grant(request)
        return pb.GrantResponse.FromString(await self._store.grant(idem, cmd, _encode_grant))

    async def Stats(
        self, request: pb.StatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.StatsResponse:
        s = await self._store.stats(validation.stats(request))
        return pb.StatsResponse(
            users=s.users,
            holds_pending=s.holds_pending,
            credits_held=s.credits_held,
            credits_captured=s.credits_captured,
            credits_topped_up=s.credits_topped_up,
        )

    async def ListStaleJobs(
        self, request: pb.ListStaleJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStaleJobsResponse:
        older_than, size, cursor = validation.list_stale_jobs(request)
        after = None
        if cursor is not None:
            micros, hold_id = cursor
            after = (_EPOCH + dt.timedelta(microseconds=micros), hold_id)
        # One extra row says whether a newer page exists.
        rows = await self._store.list_stale_jobs(older_than, after, size + 1)
        page = rows[:size]
        token = ""
        if len(rows) > size:
            last = page[-1]
            micros = (last.create_time - _EPOCH) // dt.timedelta(microseconds=1)
            token = validation.encode_stale_token(micros, last.hold.hold_id)
        return pb.ListStaleJobsResponse(
            jobs=[
                pb.StaleJob(
                    hold=hold_to_proto(job.hold),
                    create_time=timestamp(job.create_time),
                    language_code=job.language_code,
                )
                for job in page
            ],
            next_page_token=token,
        )
