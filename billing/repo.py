"""Billing storage on PostgreSQL (asyncpg), behind the small BillingStore interface.

Every money call is idempotent under its key, and its response is stored
with its effect, so a replay answers byte for byte the same.

Holds (Reserve, Capture, Release: two for every note) take two autocommit
statements and hold no lock between them:

1. a read of the key and of the rows the decision needs (the user's account,
   or the hold, its job and its account); a stored key answers at once (or
   ALREADY_EXISTS when the request hash differs);
2. :mod:`billing.domain` decides on those rows, and the response is built
   from them (the read's ``now()`` and balances give every value it needs);
3. one guarded write: its gate locks the same rows and checks that they
   still hold what was read, and every part of the effect (the key with its
   response, hold, job, balance, a ledger transaction and its two entries)
   reads from the gate. It returns the balance it produced, which must match
   the prediction. An empty gate (another writer changed the rows) or the
   key's primary key (a copy of the request committed first) sends the call
   back to step 1, where it is judged afresh or answered from the key.

Credits (TopUp, Grant, Refund), rare next to holds, run in one transaction:
claim the key and lock the rows in one statement, decide, write the effect,
then store the response, which carries the new ledger row's id. A request
that fails (insufficient funds, a banned user...) writes nothing, key
included: nothing happened, so a retry is judged afresh. The statements
themselves live in :mod:`billing.sql`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

import asyncpg
from prometheus_client import Counter

from billing import domain, sql
from billing.config import BillingSettings
from billing.domain import (
    Balance,
    Hold,
    HoldResult,
    HoldState,
    IdempotencyKey,
    Job,
    Role,
    StaleJob,
    Stats,
    Transaction,
    TransactionResult,
    TxKind,
    User,
)
from billing.sql import EXTERNAL_ACCOUNT, PROMO_ACCOUNT, REVENUE_ACCOUNT
from voxmesh.errors import AlreadyExists, Internal, ServiceError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
Encoder = Callable[[T], bytes]

_MAX_ID = 2**63 - 1


class BillingStore(Protocol):
    """What the servicer and the reaper need from storage.

    Money calls take the idempotency key and an encoder for the response:
    they return the serialised response, fresh or stored, so a replay and
    the first call answer byte for byte the same.
    """

    async def ensure_user(
        self, cmd: domain.EnsureUser, *, make_admin: bool, trial_credits: int
    ) -> tuple[User, bool]: ...

    async def get_user(self, user_id: int) -> User: ...

    async def get_balance(self, user_id: int) -> Balance: ...

    async def reserve(
        self,
        idem: IdempotencyKey,
        cmd: domain.Reserve,
        ttl_seconds: int,
        encode: Encoder[HoldResult],
    ) -> bytes: ...

    async def capture(
        self, idem: IdempotencyKey, cmd: domain.Capture, encode: Encoder[HoldResult]
    ) -> bytes: ...

    async def release(
        self, idem: IdempotencyKey, cmd: domain.Release, encode: Encoder[HoldResult]
    ) -> bytes: ...

    async def top_up(
        self, idem: IdempotencyKey, cmd: domain.TopUp, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def refund(
        self, idem: IdempotencyKey, cmd: domain.Refund, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def grant(
        self, idem: IdempotencyKey, cmd: domain.Grant, encode: Encoder[TransactionResult]
    ) -> bytes: ...

    async def list_transactions(
        self, user_id: int, before_id: int | None, limit: int
    ) -> list[Transaction]: ...

    async def set_role(self, cmd: domain.SetRole) -> User: ...

    async def stats(self, actor_user_id: int) -> Stats: ...
    async def snapshot(self) -> Stats: ...

    async def list_stale_jobs(
        self, older_than_seconds: int, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> list[StaleJob]: ...

    async def expire_holds(self, batch_size: int) -> int: ...

    async def prune_idempotency_keys(self, ttl_hours: int, batch_size: int) -> int: ...


# --- error mapping ------------------------------------------------------------

# Failures that mean "the database is not there right now": the caller should
# retry (with the same idempotency key, which makes the retry safe even when
# the connection died during COMMIT and the outcome is unknown to us).
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout / command_timeout
    asyncpg.InterfaceError,  # "connection is closed", pool closing
    # A server that goes away in the middle of COMMIT can leave asyncpg's
    # protocol mid-operation ("cannot switch to state 15; another operation
    # is in progress"): the outcome is unknown, so it is a retry with the
    # same key, like any lost connection (found by tests/faults).
    asyncpg.InternalClientError,
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect or pool acquire timeout
)
# Conflicts PostgreSQL resolves by aborting one side; rerunning is correct.
_RETRY_ERRORS = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_ATTEMPTS = 3


def _db_call(
    fn: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Map database outages to UNAVAILABLE (DEPENDENCY_UNAVAILABLE), retry conflicts."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await fn(*args, **kwargs)
            except ServiceError:
                raise
            except _RETRY_ERRORS as exc:
                if attempt == _ATTEMPTS:
                    raise Unavailable("database conflict, retry", retry_after=0.05) from exc
                log.info("retrying %s after %s", fn.__name__, type(exc).__name__)
            except _UNAVAILABLE_ERRORS as exc:
                log.warning("database unavailable in %s: %s", fn.__name__, type(exc).__name__)
                raise Unavailable("database unavailable", retry_after=1.0) from exc
        raise AssertionError("unreachable")

    return wrapper


# --- rows -> domain --------------------------------------------------------------


def _user(row: asyncpg.Record) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        language_code=row["language_code"],
        role=Role(row["role"]),
        create_time=row["create_time"],
    )


def _hold(row: asyncpg.Record) -> Hold:
    return Hold(
        hold_id=row["hold_id"],
        user_id=row["user_id"],
        amount_credits=row["amount_credits"],
        captured_credits=row["captured_credits"],
        refunded_credits=row["refunded_credits"],
        state=HoldState(row["state"]),
        expire_time=row["expire_time"],
        job=Job(
            chat_id=row["chat_id"],
            message_id=row["message_id"],
            file_id=row["file_id"],
            duration_seconds=row["duration_seconds"],
            trace_id=row["trace_id"],
        ),
    )


def _transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        transaction_id=row["transaction_id"],
        kind=TxKind(row["kind"]),
        amount_credits=row["amount_credits"],
        balance_after_credits=row["balance_after"],
        description=row["description"],
        create_time=row["create_time"],
    )


def _settled(hold: Hold, state: HoldState, captured: int) -> Hold:
    return Hold(
        hold_id=hold.hold_id,
        user_id=hold.user_id,
        amount_credits=hold.amount_credits,
        captured_credits=captured,
        refunded_credits=hold.refunded_credits,
        state=state,
        expire_time=hold.expire_time,
        job=hold.job,
    )


_JOB_STATE = {
    HoldState.CAPTURED: "done",
    HoldState.RELEASED: "cancelled",
    HoldState.EXPIRED: "expired",
}

Act = Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[T]]
# A guarded write loses only to a writer that committed in between, so every
# lost attempt is someone else's progress; this many in a row means a storm
# on one account, and the caller retries later with the same key.
_GUARD_ATTEMPTS = 10


def _check_prediction(expected: int, actual: int | None, what: str) -> None:
    """The effect statement returns the balance it produced; the response was
    built from the locked rows before it ran. A mismatch is a bug: abort."""
    if actual != expected:
        log.error("%s: predicted balance %s, database produced %s", what, expected, actual)
        raise Internal(f"{what}: ledger prediction mismatch")


def _stored(idem: IdempotencyKey, row: asyncpg.Record) -> bytes | None:
    """The response stored under the key, if it has one."""
    if row["response"] is None:
        return None
    if bytes(row["request_hash"]) != idem.request_hash:
        raise AlreadyExists(
            f"idempotency key was used for a different {idem.method} request",
            reason="IDEMPOTENCY_KEY_REUSED",
            metadata={"idempotency_key": idem.key},
        )
    return bytes(row["response"])


class PgBillingStore:
    """BillingStore on an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, conflicts: Counter | None = None) -> None:
        self._pool = pool
        self._conflicts = conflicts

    # -- idempotency frames: claim in a transaction (credits), guarded write (holds)

    async def _idempotent(
        self, idem: IdempotencyKey, claim_sql: str, claim_args: tuple[Any, ...], act: Act[bytes]
    ) -> bytes:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                claim_sql, idem.method, idem.key, idem.request_hash, *claim_args
            )
            assert row is not None  # ON CONFLICT DO UPDATE always returns the key row
            stored = _stored(idem, row)
            if stored is not None:
                return stored
            return await act(conn, row)

    async def _guarded(
        self, idem: IdempotencyKey, read_sql: str, subject: Any, write: Act[bytes | None]
    ) -> bytes:
        """Read, decide and write under a guard; again after losing to another writer."""
        async with self._pool.acquire() as conn:
            for _ in range(_GUARD_ATTEMPTS):
                row = await conn.fetchrow(read_sql, idem.method, idem.key, subject)
                stored = _stored(idem, row)
                if stored is not None:
                    return stored
                try:
                    body = await write(conn, row)
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name != "idempotency_keys_pkey":
                        raise
                    body = None  # a copy of this request committed first: read its answer
                if body is not None:
                    return body
                if self._conflicts is not None:
                    self._conflicts.labels(idem.method).inc()
        raise Unavailable("too many concurrent changes to this account, retry", retry_after=0.05)

    # -- users --------------------------------------------------------------

    @_db_call
    async def ensure_user(
        self, cmd: domain.EnsureUser, *, make_admin: bool, trial_credits: int
    ) -> tuple[User, bool]:
        # Every statement here stands alone: each is atomic, and a user's
        # creation (user, account, trial) is a single statement.
        args = (cmd.user_id, cmd.username, cmd.language_code)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
            if row is not None:
                return _user(row), False
            role = Role.ADMIN if make_admin else Role.USER
            row = await conn.fetchrow(sql.SQL_CREATE_USER, *args, role.value, trial_credits)
            if row is not None:
                return _user(row), True
            # Created by a concurrent call between our two statements.
            row = await conn.fetchrow(sql.SQL_REFRESH_USER, *args, make_admin)
        if row is None:  # pragma: no cover - users are never deleted
            raise domain.user_not_found(cmd.user_id)
        return _user(row), False

    @_db_call
    async def get_user(self, user_id: int) -> User:
        row = await self._pool.fetchrow(sql.SQL_GET_USER, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return _user(row)

    @_db_call
    async def get_balance(self, user_id: int) -> Balance:
        row = await self._pool.fetchrow(sql.SQL_GET_BALANCE, user_id)
        if row is None:
            raise domain.user_not_found(user_id)
        return Balance(balance_credits=row["balance"], held_credits=row["held"])

    @_db_call
    async def set_role(self, cmd: domain.SetRole) -> User:
        async with self._pool.acquire() as conn, conn.transaction():
            role = await conn.fetchval(sql.SQL_GET_ROLE, cmd.actor_user_id)
            domain.require_admin(Role(role) if role is not None else None)
            row = await conn.fetchrow(sql.SQL_SET_ROLE, cmd.user_id, cmd.role.value)
            if row is None:
                raise domain.user_not_found(cmd.user_id)
            return _user(row)

    # -- holds ------------------------------------------------------------------

    @_db_call
    async def reserve(
        self,
        idem: IdempotencyKey,
        cmd: domain.Reserve,
        ttl_seconds: int,
        encode: Encoder[HoldResult],
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["account_id"] is None:
                raise domain.user_not_found(cmd.user_id)
            domain.check_reserve(Role(row["role"]), row["balance"], cmd.amount_credits)
            hold = Hold(
                hold_id=row["new_id"],
                user_id=cmd.user_id,
                amount_credits=cmd.amount_credits,
                captured_credits=0,
                refunded_credits=0,
                state=HoldState.PENDING,
                # The database's now(): the same clock the reaper compares with.
                expire_time=row["now"] + dt.timedelta(seconds=ttl_seconds),
                job=cmd.job,
            )
            expected = row["balance"] - cmd.amount_credits
            body = encode(HoldResult(hold=hold, balance_credits=expected))
            job = cmd.job
            balance = await conn.fetchval(
                sql.SQL_RESERVE,
                idem.method,
                idem.key,
                idem.request_hash,
                body,
                hold.hold_id,
                cmd.user_id,
                cmd.amount_credits,
                hold.expire_time,
                row["account_id"],
                job.chat_id,
                job.message_id,
                job.file_id,
                job.duration_seconds,
                job.trace_id,
                row["balance"],
                row["held"],
            )
            if balance is None:
                return None
            _check_prediction(expected, balance, "reserve")
            return body

        return await self._guarded(idem, sql.SQL_READ_ACCOUNT, cmd.user_id, write)

    async def _settle(
        self,
        conn: asyncpg.Connection,
        idem: IdempotencyKey,
        row: asyncpg.Record,
        state: HoldState,
        captured: int,
        note: str,
        encode: Encoder[HoldResult],
    ) -> bytes | None:
        hold = _hold(row)
        expected = row["balance"] + hold.amount_credits - captured
        result = HoldResult(hold=_settled(hold, state, captured), balance_credits=expected)
        body = encode(result)
        balance = await conn.fetchval(
            sql.SQL_SETTLE,
            idem.method,
            idem.key,
            idem.request_hash,
            body,
            hold.hold_id,
            captured,
            state.value,
            _JOB_STATE[state],
            note,
            row["balance"],
            row["held"],
        )
        if balance is None:
            return None
        _check_prediction(expected, balance, state.value)
        return body

    @_db_call
    async def capture(
        self, idem: IdempotencyKey, cmd: domain.Capture, encode: Encoder[HoldResult]
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            domain.check_capture(_hold(row), cmd.amount_credits)
            return await self._settle(
                conn,
                idem,
                row,
                HoldState.CAPTURED,
                cmd.amount_credits,
                "capture remainder",
                encode,
            )

        return await self._guarded(idem, sql.SQL_READ_HOLD, cmd.hold_id, write)

    @_db_call
    async def release(
        self, idem: IdempotencyKey, cmd: domain.Release, encode: Encoder[HoldResult]
    ) -> bytes:
        async def write(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes | None:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            domain.check_pending(_hold(row))
            note = f"released: {cmd.reason}" if cmd.reason else "released"
            return await self._settle(conn, idem, row, HoldState.RELEASED, 0, note, encode)

        return await self._guarded(idem, sql.SQL_READ_HOLD, cmd.hold_id, write)

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
            TransactionResult(transaction=_transaction(row), balance_credits=row["balance"])
        )
        await conn.execute(sql.SQL_SAVE_RESPONSE, idem.method, idem.key, body)
        return body

    @_db_call
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
                raise AlreadyExists(
                    "this provider charge was already credited under another idempotency key",
                    reason="IDEMPOTENCY_KEY_REUSED",
                    metadata={
                        "provider": cmd.provider,
                        "provider_charge_id": cmd.provider_charge_id,
                    },
                ) from None

        return await self._idempotent(idem, sql.SQL_CLAIM_ACCOUNT, (cmd.user_id, 0), act)

    @_db_call
    async def refund(
        self, idem: IdempotencyKey, cmd: domain.Refund, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            if row["hold_id"] is None:
                raise domain.hold_not_found(cmd.hold_id)
            hold = _hold(row)
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

    @_db_call
    async def grant(
        self, idem: IdempotencyKey, cmd: domain.Grant, encode: Encoder[TransactionResult]
    ) -> bytes:
        async def act(conn: asyncpg.Connection, row: asyncpg.Record) -> bytes:
            actor = row["actor_role"]
            domain.require_admin(Role(actor) if actor is not None else None)
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

    # -- reads -------------------------------------------------------------------

    @_db_call
    async def list_transactions(
        self, user_id: int, before_id: int | None, limit: int
    ) -> list[Transaction]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                sql.SQL_LIST_TRANSACTIONS, user_id, before_id if before_id else _MAX_ID, limit
            )
            if not rows and await conn.fetchval(sql.SQL_GET_ROLE, user_id) is None:
                raise domain.user_not_found(user_id)
        return [_transaction(r) for r in rows]

    @_db_call
    async def stats(self, actor_user_id: int) -> Stats:
        async with self._pool.acquire() as conn:
            role = await conn.fetchval(sql.SQL_GET_ROLE, actor_user_id)
            domain.require_admin(Role(role) if role is not None else None)
            row = await conn.fetchrow(sql.SQL_STATS)
        return _stats(row)

    @_db_call
    async def snapshot(self) -> Stats:
        """The totals behind the billing metrics (no caller check: not exposed as an RPC)."""
        async with self._pool.acquire() as conn:
            return _stats(await conn.fetchrow(sql.SQL_STATS))

    @_db_call
    async def list_stale_jobs(
        self, older_than_seconds: int, after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> list[StaleJob]:
        """Pending holds placed more than ``older_than_seconds`` ago, oldest first."""
        after_time, after_hold = after if after is not None else (None, None)
        rows = await self._pool.fetch(
            sql.SQL_STALE_JOBS, float(older_than_seconds), after_time, after_hold, limit
        )
        return [
            StaleJob(hold=_hold(r), create_time=r["create_time"], language_code=r["language_code"])
            for r in rows
        ]

    # -- housekeeping ---------------------------------------------------------------

    @_db_call
    async def expire_holds(self, batch_size: int) -> int:
        """Return expired pending holds to their owners; safe in many replicas.

        SKIP LOCKED makes concurrent reapers (and a Capture racing the
        reaper) take disjoint holds instead of queueing on the same rows.
        """
        total = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                due = await conn.fetch(sql.SQL_DUE_HOLDS, batch_size)
                # Accounts in ascending user order: two reapers settling
                # holds of the same users can then never deadlock.
                for row in sorted(due, key=lambda r: (r["user_id"], r["hold_id"])):
                    balance = await conn.fetchval(
                        sql.SQL_EXPIRE, row["hold_id"], 0, "expired", "expired", "hold expired"
                    )
                    if balance is None:  # pragma: no cover - locked and pending above
                        raise Internal(f"hold {row['hold_id']} changed under its lock")
            total += len(due)
            if len(due) < batch_size:
                return total

    @_db_call
    async def prune_idempotency_keys(self, ttl_hours: int, batch_size: int) -> int:
        total = 0
        while True:
            status: str = await self._pool.execute(sql.SQL_PRUNE_KEYS, ttl_hours, batch_size)
            deleted = int(status.rsplit(" ", 1)[-1])
            total += deleted
            if deleted < batch_size:
                return total


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to undo.

    asyncpg's default reset runs a multi-statement query (unlisten, reset
    all, unlock advisory locks...) on every release, a round trip per RPC.
    This store never changes session state (no SET, LISTEN, advisory
    locks or cursors) and asyncpg still rolls back any open transaction
    before calling this, so there is nothing to reset.
    """


async def create_pool(settings: BillingSettings) -> asyncpg.Pool:
    """A pool that heals itself: a connection that died (PostgreSQL restart)
    is dropped when released and a fresh one is opened on the next acquire."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        command_timeout=settings.statement_timeout_seconds,
        # Recycle idle connections so a pool never sits on sockets a
        # restarted server or a NAT already forgot.
        max_inactive_connection_lifetime=60.0,
        reset=_keep_session,
        server_settings={"application_name": "voxmesh-billing", "jit": "off"},
    )
    assert pool is not None
    return pool


async def wait_for_database(dsn: str, *, attempts: int = 30, delay: float = 1.0) -> None:
    """Block until PostgreSQL accepts a connection (startup ordering in k8s)."""
    for attempt in range(1, attempts + 1):
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (*_UNAVAILABLE_ERRORS,) as exc:
            if attempt == attempts:
                raise Unavailable("database unavailable") from exc
            log.info("waiting for PostgreSQL (%s)", type(exc).__name__)
            await asyncio.sleep(delay)
        else:
            await conn.close()
            return


def _stats(row: asyncpg.Record | None) -> Stats:
    assert row is not None
    return Stats(
        users=row["users"],
        holds_pending=row["holds_pending"],
        credits_held=row["held"],
        credits_captured=row["captured"],
        credits_topped_up=row["topped_up"],
        holds_expired=row["holds_expired"],
    )
