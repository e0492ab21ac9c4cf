"""PostgreSQL plumbing: the pool, waiting for the server, and how driver
errors become gRPC statuses (outages UNAVAILABLE, conflicts retried)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import asyncpg

from billing.config import BillingSettings
from voxmesh.errors import ServiceError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# Failures that mean "the database is not there right now": the caller should
# retry (with the same idempotency key, which makes the retry safe even when
# the connection died during COMMIT and the outcome is unknown to us).
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
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


def db_call(
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
            except UNAVAILABLE_ERRORS as exc:
                log.warning("database unavailable in %s: %s", fn.__name__, type(exc).__name__)
                raise Unavailable("database unavailable", retry_after=1.0) from exc
        raise AssertionError("unreachable")

    return wrapper


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
        except (*UNAVAILABLE_ERRORS,) as exc:
            if attempt == attempts:
                raise Unavailable("database unavailable") from exc
            log.info("waiting for PostgreSQL (%s)", type(exc).__name__)
            await asyncio.sleep(delay)
        else:
            await conn.close()
            return
