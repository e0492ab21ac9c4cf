"""Moves what a crash, a restart or an outage left behind, in every gateway replica.

Every ``interval_seconds`` (and once at start) it asks billing which users
have a job that can move (ListRunnableJobs: queued behind no live runner,
or running under a lapsed lease because its runner died) and kicks their
lanes here; billing's claim makes sure only one replica runs each. It also
credits Stars payments billing could not take when they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import grpc
from redis.exceptions import RedisError

from gateway.jobs.queue import JobQueue
from gateway.jobs.runner import Runner
from gateway.payments import Payments

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        queue: JobQueue,
        runner: Runner,
        payments: Payments | None,
        *,
        interval_seconds: float = 30.0,
    ) -> None:
        self._queue = queue
        self._runner = runner
        self._payments = payments
        self.interval_seconds = interval_seconds
        self._loop: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="gateway-reconciler")

    def wake(self) -> None:
        """Look now (after a Redis reset, say) rather than at the next interval."""
        self._wake.set()

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except grpc.aio.AioRpcError as exc:
                log.warning("reconciler pass failed: billing said %s", exc.code())
            except RedisError as exc:
                log.warning("reconciler pass failed: Redis %s", type(exc).__name__)
            except Exception:
                log.exception("reconciler pass failed")
            self._wake.clear()
            # Jitter keeps replicas that started together from asking at once.
            pause = self.interval_seconds * random.uniform(0.8, 1.2)  # noqa: S311
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def run_once(self) -> int:
        """One pass: kick every lane that can move; credit pending payments.
        Returns the number of lanes kicked."""
        users = await self._queue.runnable_users()
        for user_id in users:
            self._runner.kick(user_id)
        if self._payments is not None:
            landed = await self._payments.retry_pending()
            if landed:
                log.info("credited %d payment(s) billing could not take before", landed)
        return len(users)
