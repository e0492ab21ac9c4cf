"""The PostgreSQL adapter of billing's store port (billing/store.py).

- :mod:`.pool`: the asyncpg pool, startup wait, driver errors to statuses;
- :mod:`.base`: the idempotency frames (claim in a transaction, guarded write);
- :mod:`.accounts`: users, statements, stats; :mod:`.holds`: holds and their
  expiry; :mod:`.credits`: top-ups, refunds, grants; :mod:`.jobs`: durable jobs;
- :mod:`.rows`: rows to domain values.
"""

from __future__ import annotations

from billing.postgres.accounts import PgAccountStore
from billing.postgres.credits import PgCreditStore
from billing.postgres.holds import PgHoldStore
from billing.postgres.jobs import PgJobStore
from billing.postgres.pool import create_pool, wait_for_database


class PgBillingStore(PgAccountStore, PgHoldStore, PgCreditStore, PgJobStore):
    """billing.store.BillingStore on an asyncpg pool."""


__all__ = ["PgBillingStore", "create_pool", "wait_for_database"]
