"""The two idempotency frames every keyed write of the PostgreSQL store runs in.

Holds (Reserve, ExtendHold, Capture, Release: the hot path) take two
autocommit statements and hold no lock between them:

1. a read of the key and of the rows the decision needs (the user's account,
   or the hold, its job and its account); a stored key answers at once (or
   ALREADY_EXISTS when the request hash differs);
2. the domain decides on those rows, and the response is built from them
   (the read's ``now()`` and balances give every value it needs);
3. one guarded write: its gate locks the same rows and checks that they
   still hold what was read, and every part of the effect (the key with its
   response, hold, job, balance, a ledger transaction and its two entries)
   reads from the gate. It returns the balance it produced, which must match
   the prediction. An empty gate (another writer changed the rows) or the
   key's primary key (a copy of the request committed first) sends the call
   back to step 1, where it is judged afresh or answered from the key.

Credits (TopUp, Grant, Refund, RefundTopUp) and SubmitJob, rare next to
holds, run in one transaction: claim the key and lock the rows in one
statement, decide, write the effect, then store the response. A request that
fails (insufficient funds, a full queue...) writes nothing, key included:
nothing happened, so a retry is judged afresh. The statements live in
billing/sql.py and billing/sql_jobs.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from prometheus_client import Counter

from billing.domain import IdempotencyKey
from billing.store import Answer
from voxmesh.errors import AlreadyExists, Internal, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Act = Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[T]]
# A guarded write loses only to a writer that committed in between, so every
# lost attempt is someone else's progress; this many in a row means a storm
# on one account, and the caller retries later with the same key.
GUARD_ATTEMPTS = 10


def check_prediction(expected: int, actual: int | None, what: str) -> None:
    """The effect statement returns the balance it produced; the response was
    built from the locked rows before it ran. A mismatch is a bug: abort."""
    if actual != expected:
        log.error("%s: predicted balance %s, database produced %s", what, expected, actual)
        raise Internal(f"{what}: ledger prediction mismatch")


def stored_response(idem: IdempotencyKey, row: asyncpg.Record) -> bytes | None:
    """The response stored under the key, if it has one."""
    if row["response"] is None:
        return None
    if not idem.matches(bytes(row["request_hash"])):
        raise AlreadyExists(
            f"idempotency key was used for a different {idem.method} request",
            reason="IDEMPOTENCY_KEY_REUSED",
            metadata={"idempotency_key": idem.key},
        )
    return bytes(row["response"])


class PgBase:
    """The pool and the frames; the stores in this package build on it."""

    def __init__(self, pool: asyncpg.Pool, *, conflicts: Counter | None = None) -> None:
        self._pool = pool
        self._conflicts = conflicts

    async def _idempotent(
        self, idem: IdempotencyKey, claim_sql: str, claim_args: tuple[Any, ...], act: Act[bytes]
    ) -> bytes:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                claim_sql, idem.method, idem.key, idem.request_hash, *claim_args
            )
            assert row is not None  # ON CONFLICT DO UPDATE always returns the key row
            stored = stored_response(idem, row)
            if stored is not None:
                return stored
            return await act(conn, row)

    async def _guarded(
        self,
        idem: IdempotencyKey,
        read_sql: str,
        subject: tuple[Any, ...],
        write: Act[bytes | None],
    ) -> Answer:
        """Read, decide and write under a guard; again after losing to another writer."""
        async with self._pool.acquire() as conn:
            for _ in range(GUARD_ATTEMPTS):
                row = await conn.fetchrow(read_sql, idem.method, idem.key, *subject)
                stored = stored_response(idem, row)
                if stored is not None:
                    return Answer(stored, replayed=True)
                try:
                    body = await write(conn, row)
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name != "idempotency_keys_pkey":
                        raise
                    body = None  # a copy of this request committed first: read its answer
                if body is not None:
                    return Answer(body, replayed=False)
                if self._conflicts is not None:
                    self._conflicts.labels(idem.method).inc()
        raise Unavailable("too many concurrent changes to this account, retry", retry_after=0.05)
