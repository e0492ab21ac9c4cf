"""Billing settings, read once from the environment in main()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from billing.domain import MAX_HOLD_TTL_SECONDS
from voxmesh.config import ConfigError, env_float, env_int, env_str


def _id_list(env: Mapping[str, str], name: str) -> frozenset[int]:
    raw = env.get(name, "").strip()
    ids: set[int] = set()
    for item in raw.split(","):
        part = item.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ConfigError(f"{name}: {part!r} is not a Telegram user id")
        ids.add(int(part))
    return frozenset(ids)


@dataclass(frozen=True)
class BillingSettings:
    """Prices, the trial, hold lifetimes, admins and the database pool."""

    database_url: str
    # Price of one minute of audio; a job costs ceil(seconds * this / 60), at least 1.
    price_per_minute_credits: int = 10
    # Credits a new user gets once, on the EnsureUser that creates them.
    trial_credits: int = 100
    # How long a hold waits for Capture/Release before the reaper returns it,
    # when the Reserve does not say (its ttl field).
    hold_ttl_seconds: int = 900
    reaper_interval_seconds: float = 30.0
    # Holds expired per reaper transaction; bounds lock time and statement size.
    reaper_batch_size: int = 100
    # Idempotency keys are kept at least this long (never under 24 h: a client
    # retrying a day-old request must still get the first answer).
    idempotency_ttl_hours: int = 48
    # Jobs one user may have waiting (QUEUED); one more is QUEUE_FULL.
    max_queued_jobs: int = 10
    # The lease a ClaimJob/RenewJob may ask for: long enough to survive a
    # slow call, short enough that a dead runner's job is re-claimed soon.
    job_lease_min_seconds: float = 1.0
    job_lease_max_seconds: float = 600.0
    # Job rows (not the ledger) older than this are deleted by the reaper.
    job_retention_days: int = 30
    # Telegram ids that EnsureUser makes admin.
    admin_user_ids: frozenset[int] = field(default_factory=frozenset)
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Upper bound for one SQL statement; an RPC deadline usually cuts in first.
    statement_timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BillingSettings:
        pool_min = env_int(env, "BILLING_POOL_MIN_SIZE", 2, min=0, max=1000)
        pool_max = env_int(env, "BILLING_POOL_MAX_SIZE", 10, min=1, max=1000)
        if pool_max < pool_min:
            raise ConfigError(
                f"BILLING_POOL_MAX_SIZE={pool_max} is below BILLING_POOL_MIN_SIZE={pool_min}"
            )
        lease_min = env_float(env, "BILLING_JOB_LEASE_MIN_SECONDS", 1.0, min=0.1, max=3600)
        lease_max = env_float(env, "BILLING_JOB_LEASE_MAX_SECONDS", 600.0, min=1, max=86400)
        if lease_max < lease_min:
            raise ConfigError(
                f"BILLING_JOB_LEASE_MAX_SECONDS={lease_max} is below"
                f" BILLING_JOB_LEASE_MIN_SECONDS={lease_min}"
            )
        return cls(
            database_url=env_str(env, "DATABASE_URL"),
            price_per_minute_credits=env_int(
                env, "BILLING_PRICE_PER_MINUTE_CREDITS", 10, min=1, max=1_000_000
            ),
            trial_credits=env_int(env, "BILLING_TRIAL_CREDITS", 100, min=0, max=1_000_000_000),
            hold_ttl_seconds=env_int(
                env, "BILLING_HOLD_TTL_SECONDS", 900, min=1, max=MAX_HOLD_TTL_SECONDS
            ),
            reaper_interval_seconds=env_float(
                env, "BILLING_REAPER_INTERVAL_SECONDS", 30.0, min=0.05, max=86400
            ),
            reaper_batch_size=env_int(env, "BILLING_REAPER_BATCH_SIZE", 100, min=1, max=10_000),
            idempotency_ttl_hours=env_int(
                env, "BILLING_IDEMPOTENCY_TTL_HOURS", 48, min=24, max=24 * 365
            ),
            max_queued_jobs=env_int(env, "BILLING_MAX_QUEUED_JOBS", 10, min=1, max=10_000),
            job_lease_min_seconds=lease_min,
            job_lease_max_seconds=lease_max,
            job_retention_days=env_int(env, "BILLING_JOB_RETENTION_DAYS", 30, min=1, max=3650),
            admin_user_ids=_id_list(env, "BILLING_ADMIN_USER_IDS"),
            pool_min_size=pool_min,
            pool_max_size=pool_max,
            statement_timeout_seconds=env_float(
                env, "BILLING_STATEMENT_TIMEOUT_SECONDS", 10.0, min=0.1, max=3600
            ),
        )
