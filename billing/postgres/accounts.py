"""Users, balances, statements and stats on PostgreSQL; the key pruner."""

from __future__ import annotations

from billing import domain, sql
from billing.domain import (
    Balance,
    Role,
    Stats,
    Transaction,
    User,
)
from billing.postgres import rows
from billing.postgres.base import PgBase
from billing.postgres.pool import db_call

_MAX_ID = 2**63 - 1


def role_of(value: str | None) -> Role | None:
    return Role(value) if value is not None else None


class PgAccountStore(PgBase):
    # -- users --------------------------------------------------------------

    @db_call
    async def ensure_user(
        self, cmd: domain.EnsureUser, *, make_admin: bool, trial_credits: int
    ) -> tuple[User, bool]:
        # Every statement here stands alone: each is atomic, and a user's
        # creation (user, account, trial) is a single statement.
        args = (cmd.user_id, cmd.username, cmd.language_code)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
            if row is not None:
                return rows.user(row), False
            role = Role.ADMIN if make_admin else Role.USER
            row = await conn.fetchrow(sql.SQL_CREATE_USER, *args, role.value, trial_credits)
            if row is not None:
                return rows.user(row), True
            # Created by a concurrent call between our two statements.
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
        if row is None:  # pragma: no cover - users are never deleted
            raise domain.user_not_found(cmd.user_id)
        return rows.user(row), False

    @db_call
    async def get_user(self, user_id: int) -> User:
        row = await self._pool.fetchrow(sql.SQL_GET_USER, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return rows.user(row)

    @db_call
    async def get_balance(self, user_id: int) -> Balance:
        row = await self._pool.fetchrow(sql.SQL_GET_BALANCE, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return Balance(balance_credits=row["balance"], held_credits=row["held"])

    @db_call
    async def set_role(self, cmd: domain.SetRole) -> User:
        async with self._pool.acquire() as conn, conn.transaction():
            domain.require_admin(role_of(await conn.fetchval(sql.SQL_GET_ROLE, cmd.actor_user_id)))
            row = await conn.fetchrow(sql.SQL_SET_ROLE, cmd.user_id, cmd.role.value)
            if row is None:
                raise domain.user_not_found(cmd.user_id)
            return rows.user(row)

    # -- reads -------------------------------------------------------------------

    @db_call
    async def list_transactions(
        self, user_id: int, before_id: int | None, limit: int
    ) -> list[Transaction]:
        async with self._pool.acquire() as conn:
            found = await conn.fetch(
                sql.SQL_LIST_TRANSACTIONS, user_id, before_id if before_id else _MAX_ID, limit
            )
            if not found and await conn.fetchval(sql.SQL_GET_ROLE, user_id) is None:
                raise domain.user_not_found(user_id)
        return [rows.transaction(r) for r in found]

    @db_call
    async def stats(self, actor_user_id: int) -> Stats:
        async with self._pool.acquire() as conn:
            domain.require_admin(role_of(await conn.fetchval(sql.SQL_GET_ROLE, actor_user_id)))
            row = await conn.fetchrow(sql.SQL_STATS)
        return rows.stats(row)

    @db_call
    async def snapshot(self) -> Stats:
        """The totals behind the billing metrics (no caller check: not exposed as an RPC)."""
        async with self._pool.acquire() as conn:
            return rows.stats(await conn.fetchrow(sql.SQL_STATS))

    # -- housekeeping ---------------------------------------------------------------

    @db_call
    async def prune_idempotency_keys(self, ttl_hours: int, batch_size: int) -> int:
        total = 0
        while True:
            status: str = await self._pool.execute(sql.SQL_PRUNE_KEYS, ttl_hours, batch_size)
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < batch_size:
                return total
