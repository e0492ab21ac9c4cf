"""Credits on PostgreSQL: TopUp, RefundTopUp, Refund and Grant, each in one
transaction that claims its key and locks the rows (billing.postgres.base)."""

from __future__ import annotations

import uuid

import asyncpg

from billing import domain, sql
from billing.domain import (
    IdempotencyKey,
    TopUpRefundResult,
    TransactionResult,
    TxKind,
)
from billing.postgres import rows
from billing.postgres.accounts import role_of
from billing.postgres.base import PgBase
from billing.postgres.pool import db_call
from billing.sql import EXTERNAL_ACCOUNT, PROMO_ACCOUNT, REVENUE_ACCOUNT
from billing.store import Encoder
from voxmesh.errors import AlreadyExists, Internal


class PgCreditStore(PgBase):
    # -- credits ---------------------------------------------------------------

    async def _credit(
        self,
        conn: asyncpg.Connection,
        idem: IdempotencyKey,
        encode: Encoder[TransactionResult],
        kind: TxKind,
        user_id: int,
        amount: int,
        source_account: int,
        *,
        hold_id: uuid.UUID | None = None,
        provider: str | None = None,
        charge_id: str | None = None,
        description: str = "",
    ) -> bytes:
        row = await conn.fetchrow(
            sql.SQL_CREDIT,
            kind.value,
            user_id,
            amount,
            source_account,
            hold_id,
            provider,
            charge_id,
            description,
        )
        if row is None:
            raise domain.user_not_found(user_id)
        body = encode(
            TransactionResult(transaction=rows.transaction(row), balance_credits=row["balance"])
        )
        await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, body)
        return body

    @db_call
    async def top_up(
        self, idem: IdempotencyKey, cmd: domain.TopUp, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            try:
                return await self._credit(
                    conn,
                    idem,
                    encode,
                    TxKind.TOP_UP,
                    cmd.user_id,
                    cmd.amount_credits,
                    EXTERNAL_ACCOUNT,
                    provider=cmd.provider,
                    charge_id=cmd.provider_charge_id,
                    description=f"{cmd.provider} {cmd.provider_charge_id}",
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "ledger_transactions_charge_key":
                    raise
                # The whole transaction rolls back on this error, key included.
                raise _charge_reused("credited", cmd.provider, cmd.provider_charge_id) from None

        return await self._idempotent(idem, sql.SQL_CLAIM_ACCOUNT, (cmd.user_id, 0), act)

    @db_call
    async def refund_top_up(
        self,
        idem: IdempotencyKey,
        cmd: domain.RefundTopUp,
        encode: Encoder[TopUpRefundResult],
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["user_id"] is None:
                raise domain.charge_not_found(cmd.provider, cmd.provider_charge_id)
            if row["refunds"]:
                raise _charge_reused("refunded", cmd.provider, cmd.provider_charge_id)
            user_id, amount = row["user_id"], row["amount_credits"]
            domain.check_refund_top_up(row["balance"], amount)
            note = f"{cmd.provider} {cmd.provider_charge_id} refunded" + (
                f": {cmd.reason}" if cmd.reason else ""
            )
            try:
                moved = await conn.fetchrow(
                    sql.SQL_DEBIT,
                    TxKind.TOP_UP_REFUND.value,
                    user_id,
                    amount,
                    EXTERNAL_ACCOUNT,
                    None,
                    cmd.provider,
                    cmd.provider_charge_id,
                    note,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "ledger_transactions_charge_refund_once":
                    raise
                raise _charge_reused("refunded", cmd.provider, cmd.provider_charge_id) from None
            if moved is None:  # pragma: no cover - the account was locked above
                raise Internal("the account of a top-up vanished")
            body = encode(
                TopUpRefundResult(
                    transaction=rows.transaction(moved),
                    balance_credits=moved["balance"],
                    user_id=user_id,
                )
            )
            await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, body)
            return body

        claim_args = (cmd.provider, cmd.provider_charge_id)
        return await self._idempotent(idem, sql.SQL_CLAIM_CHARGE, claim_args, act)

    @db_call
    async def refund(
        self, idem: IdempotencyKey, cmd: domain.Refund, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            hold = rows.hold(row)
            domain.check_refund(hold, cmd.amount_credits)
            await conn.execute(sql.SQL_ADD_REFUNDED, cmd.hold_id, cmd.amount_credits)
            note = f"refund job {cmd.hold_id}" + (f": {cmd.reason}" if cmd.reason else "")
            return await self._credit(
                conn,
                idem,
                encode,
                TxKind.REFUND,
                hold.user_id,
                cmd.amount_credits,
                REVENUE_ACCOUNT,
                hold_id=cmd.hold_id,
                description=note,
            )

        return await self._idempotent(idem, sql.SQL_CLAIM_HOLD, (cmd.hold_id,), act)

    @db_call
    async def grant(
        self, idem: IdempotencyKey, cmd: domain.Grant, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            domain.require_admin(role_of(row["actor_role"]))
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            return await self._credit(
                conn,
                idem,
                encode,
                TxKind.GRANT,
                cmd.user_id,
                cmd.amount_credits,
                PROMO_ACCOUNT,
                description=f"grant by {cmd.actor_user_id}",
            )

        claim_args = (cmd.user_id, cmd.actor_user_id)
        return await self._idempotent(idem, sql.SQL_CLAIM_ACCOUNT, claim_args, act)


def _charge_reused(what: str, provider: str, charge_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"this provider charge was already {what} under another idempotency key",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata={"provider": provider, "provider_charge_id": charge_id},
    )
