"""The PostgreSQL adapter of billing's store port (billing/store.py).

- :mod:`.pool`: the asyncpg pool, startup wait, driver errors to statuses;
- :mod:`.base`: the idempotency frames (claim in a transaction, guarded write);
- :mod:`.money`: users, holds, credits; :mod:`.jobs`: durable jobs;
- :mod:`.rows`: rows to domain values.
"""

from __future__ import annotations

from billing.postgres.jobs import PgJobStore
from billing.postgres.money import PgMoneyStore
from billing.postgres.pool import create_pool, wait_for_database


class PgBillingStore(PgMoneyStore, PgJobStore):
    """billing.store.BillingStore on an asyncpg pool."""


__all__ = ["PgBillingStore", "create_pool", "wait_for_database"]
