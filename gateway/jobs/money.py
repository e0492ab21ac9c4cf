"""A job's hold in billing: reserve, grow as the audio turns out longer, capture, release.

Billing prices audio (Quote); this module only asks. Every call carries an
idempotency key derived from the job, so a retried or re-driven job never
moves money twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.jobs.model import Job
from voxmesh.errors import error_details

log = logging.getLogger(__name__)

# What releasing, capturing or refunding may take, on top of a job's deadline.
CLEANUP_SECONDS = 10.0


class NoFundsError(Exception):
    """The user cannot pay for the audio; ``price`` and ``balance`` in credits."""

    def __init__(self, price: int, balance: int) -> None:
        super().__init__(f"{price} credits needed, {balance} available")
        self.price = price
        self.balance = balance


class BannedError(Exception):
    """The user may not transcribe."""


@dataclass(frozen=True)
class Pricing:
    """Billing's price of a minute, asked once per job.

    ``seconds_for`` is the inverse of billing's linear price (ceil(seconds *
    per_minute / 60)): how many seconds a hold of some credits pays for.
    """

    per_minute: int

    def seconds_for(self, amount: int) -> int:
        return amount * 60 // max(1, self.per_minute)


class Money:
    def __init__(self, services: Services) -> None:
        self._billing = services.billing

    async def pricing(self) -> Pricing:
        quote = await self._billing.Quote(billing_pb2.QuoteRequest(duration_seconds=60), timeout=5)
        return Pricing(per_minute=int(quote.amount_credits))

    async def price(self, seconds: float) -> int:
        quote = await self._billing.Quote(
            billing_pb2.QuoteRequest(duration_seconds=max(1, math.ceil(seconds))), timeout=5
        )
        return int(quote.amount_credits)

    async def get(self, hold_id: str) -> billing_pb2.Hold:
        response = await self._billing.GetHold(
            billing_pb2.GetHoldRequest(hold_id=hold_id), timeout=5
        )
        return response.hold

    async def reserve(
        self, job: Job, seconds: int, ttl_seconds: int, trace_id: str
    ) -> billing_pb2.Hold:
        """A hold for ``seconds`` of audio; what the user can afford if that is less.

        Telegram's duration is only a hint (a client may declare anything):
        the first hold is provisional and :meth:`extend` grows it to the real
        duration once the transcriber reports it.
        """
        spec = job.spec
        amount = await self.price(seconds)
        while True:
            try:
                response = await self._billing.Reserve(
                    billing_pb2.ReserveRequest(
                        # A new key a claim: an earlier attempt's hold may be
                        # released or expired (a live one is resumed, never re-reserved).
                        idempotency_key=f"{spec.key('reserve')}:{job.attempt}:{amount}",
                        user_id=spec.user_id,
                        amount_credits=amount,
                        job=billing_pb2.Job(
                            chat_id=spec.chat_id,
                            message_id=spec.note_id,
                            file_id=spec.media.file_id,
                            duration_seconds=seconds,
                            trace_id=trace_id,
                            job_id=job.job_id,
                        ),
                        ttl=Duration(seconds=ttl_seconds),
                    ),
                    timeout=10,
                )
            except grpc.aio.AioRpcError as exc:
                details = error_details(exc)
                if details.reason == "USER_BANNED":
                    raise BannedError() from exc
                if details.reason != "INSUFFICIENT_FUNDS":
                    raise
                balance = int((details.metadata or {}).get("balance_credits", "0") or 0)
                # Hold what the balance covers if it pays for a second of audio:
                # the real duration may be shorter than declared.
                if 0 < balance < amount and await self.price(1) <= balance:
                    amount = balance
                    continue
                raise NoFundsError(amount, balance) from exc
            return response.hold

    async def extend(
        self, job: Job, hold: billing_pb2.Hold, amount: int, ttl_seconds: int, *, wait: int = 0
    ) -> billing_pb2.Hold:
        """Grow ``hold`` to ``amount`` credits and push its expiry out; NoFundsError if
        the balance cannot cover the increase (the hold is then unchanged).

        ``wait`` numbers the pushes of one try that keep the amount (a job
        waiting for the transcriber): each is a request of its own.
        """
        key = f"extend:{hold.hold_id}:{job.attempt}:{amount}" + (f":w{wait}" if wait else "")
        try:
            response = await self._billing.ExtendHold(
                billing_pb2.ExtendHoldRequest(
                    idempotency_key=key,
                    hold_id=hold.hold_id,
                    amount_credits=max(amount, hold.amount_credits),
                    ttl=Duration(seconds=ttl_seconds),
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            details = error_details(exc)
            if details.reason == "INSUFFICIENT_FUNDS":
                balance = int((details.metadata or {}).get("balance_credits", "0") or 0)
                raise NoFundsError(amount, balance + hold.amount_credits) from exc
            raise
        return response.hold

    async def capture(self, hold: billing_pb2.Hold, amount: int) -> int:
        """Charge ``amount`` (at most the hold); the rest goes back. Returns the charge."""
        amount = min(amount, hold.amount_credits)
        response = await self._billing.Capture(
            billing_pb2.CaptureRequest(
                idempotency_key=f"capture:{hold.hold_id}",
                hold_id=hold.hold_id,
                amount_credits=amount,
            ),
            timeout=CLEANUP_SECONDS,
        )
        return int(response.hold.captured_credits)

    async def release(self, hold_id: str, reason: str) -> bool:
        """Give the hold back; False if billing could not be reached (the reaper
        returns it at its expiry)."""

        async def release() -> None:
            await self._billing.Release(
                billing_pb2.ReleaseRequest(
                    idempotency_key=f"release:{hold_id}", hold_id=hold_id, reason=reason[:256]
                ),
                timeout=CLEANUP_SECONDS,
            )

        try:
            # Shielded: a cancelled job must still give the money back.
            await asyncio.shield(release())
        except grpc.aio.AioRpcError as exc:
            if error_details(exc).reason == "HOLD_NOT_PENDING":
                return True
            log.error("release of hold %s failed (%s)", hold_id, exc.code())
            return False
        return True

    async def refund(self, hold: billing_pb2.Hold, amount: int, reason: str) -> None:
        """Give back a charge whose text could not be delivered."""
        await self._billing.Refund(
            billing_pb2.RefundRequest(
                idempotency_key=f"refund:{hold.hold_id}",
                hold_id=hold.hold_id,
                amount_credits=amount,
                reason=reason[:256],
            ),
            timeout=CLEANUP_SECONDS,
        )
