"""Telegram Stars payments: recorded before they are acknowledged, credited exactly once.

A successful_payment is written to Redis (its Telegram charge id the key)
before its update is acknowledged, then credited with TopUp, whose key is
the same charge id, so a payment delivered or retried twice is credited
once. When billing cannot take it (restarting, PostgreSQL down), the record
stays and the reconciler tries again on every pass until billing has it;
the user is told once, when it lands.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import grpc
from redis.asyncio import Redis

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.i18n import t
from notifier.v1 import notifier_pb2

log = logging.getLogger(__name__)

PROVIDER = "telegram_stars"


@dataclass(frozen=True)
class Payment:
    charge_id: str
    user_id: int
    credits: int
    stars: int
    chat_id: int
    message_id: int
    lang: str


class Payments:
    def __init__(self, redis: Redis, prefix: str, services: Services) -> None:
        self._redis = redis
        self._key = f"{prefix}payments:pending"
        self._services = services

    async def record(self, payment: Payment) -> None:
        """Durable before the update is acknowledged (raises if Redis cannot take it)."""
        await self._redis.hset(self._key, payment.charge_id, json.dumps(asdict(payment)))

    async def pending(self) -> list[Payment]:
        raw = await self._redis.hgetall(self._key)
        payments = []
        for value in raw.values():
            try:
                payments.append(Payment(**json.loads(value)))
            except (ValueError, TypeError):
                log.error("unreadable pending payment record: %r", value[:200])
        return payments

    async def credit(self, payment: Payment) -> bool:
        """TopUp, then tell the user; True once both are done (the record goes)."""
        try:
            result = await self._services.billing.TopUp(
                billing_pb2.TopUpRequest(
                    idempotency_key=payment.charge_id,
                    user_id=payment.user_id,
                    amount_credits=payment.credits,
                    provider=PROVIDER,
                    provider_charge_id=payment.charge_id,
                ),
                timeout=10,
            )
            await self._services.notifier.Send(
                notifier_pb2.SendRequest(
                    idempotency_key=f"paid:{payment.charge_id}"[:128],
                    chat_id=payment.chat_id,
                    text=t(
                        payment.lang,
                        "paid",
                        credits=payment.credits,
                        balance=result.balance_credits,
                    ),
                    chat_kind=notifier_pb2.CHAT_KIND_PRIVATE,
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("payment %s not credited yet (%s)", payment.charge_id, exc.code())
            return False
        await self._redis.hdel(self._key, payment.charge_id)
        return True

    async def retry_pending(self) -> int:
        """Credit every payment still pending; return how many landed."""
        landed = 0
        for payment in await self.pending():
            if await self.credit(payment):
                landed += 1
        return landed
