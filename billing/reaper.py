"""The hold reaper: returns expired holds to their owners, prunes old
idempotency keys and deletes job rows past their retention, every few
seconds, in every replica at once.

Replicas need no coordination: the store takes due holds with FOR UPDATE
SKIP LOCKED, so each replica settles a disjoint set, and a Capture racing
the reaper on the same hold simply finds it locked, then not pending.
"""

from __future__ import annotations

import asyncio
import logging
import random

from billing.metrics import BillingMetrics
from billing.store import BillingStore
from voxmesh.errors import ServiceError

log = logging.getLogger(__name__)

PRUNE_BATCH = 1000


class Reaper:
    def __init__(
        self,
        store: BillingStore,
        *,
        interval_seconds: float,
        batch_size: int,
        idempotency_ttl_hours: int,
        job_retention_days: int = 30,
        metrics: BillingMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._interval = interval_seconds
        self._batch = batch_size
        self._ttl_hours = idempotency_ttl_hours
        self._retention_days = job_retention_days

    async def run_once(self) -> tuple[int, int]:
        """One pass: (holds expired, keys pruned); old jobs are deleted too."""
        expired = await self._store.expire_holds(self._batch)
        pruned = await self._store.prune_idempotency_keys(self._ttl_hours, PRUNE_BATCH)
        deleted = await self._store.delete_old_jobs(self._retention_days, PRUNE_BATCH)
        if expired or pruned or deleted:
            log.info(
                "reaper expired %d holds, pruned %d idempotency keys, deleted %d old jobs",
                expired,
                pruned,
                deleted,
            )
        if self._metrics is not None:
            self._metrics.update(await self._store.snapshot())
        return expired, pruned

    async def run(self) -> None:
        """Loop until cancelled; a failed pass (database down) is retried next tick."""
        while True:
            try:
                await self.run_once()
            except ServiceError as exc:
                log.warning("reaper pass failed: %s", exc.message)
            except Exception:
                log.exception("reaper pass failed")
            # Jitter spreads replicas that started together.
            await asyncio.sleep(self._interval * random.uniform(0.8, 1.2))  # noqa: S311
