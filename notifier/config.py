"""Notifier settings: one frozen object built from the environment in main()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from voxmesh.config import ConfigError, env_float, env_int, env_str

DEFAULT_API_BASE = "https://api.telegram.org"


@dataclass(frozen=True)
class NotifierSettings:
    """How the notifier reaches Telegram and Redis and which limits it keeps.

    The rate limits sit a small ``rate_margin`` below Telegram's published
    ones: requests leave Redis' clock at one moment and reach Telegram a few
    milliseconds later, and that jitter must never add up to a 429.
    """

    bot_token: str = field(repr=False)
    api_base: str = DEFAULT_API_BASE
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key starts with this, so replicas of one bot share state and
    # tests (or two bots on one Redis) do not.
    key_prefix: str = "notifier:"
    global_per_second: float = 30.0
    private_per_second: float = 1.0
    group_per_minute: float = 20.0
    rate_margin: float = 0.03
    # Telegram requests in flight per process.
    max_inflight: int = 16
    telegram_timeout_seconds: float = 10.0
    # Failed attempts (5xx, timeouts) before a dead letter; 429 flood waits never count.
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    blocked_ttl_seconds: int = 24 * 3600
    # Dead letters and ambiguous sends (ids and reasons, no payloads) are kept this long.
    dead_letter_ttl_seconds: int = 7 * 24 * 3600
    # Bytes of payloads waiting in Redis, all chats together; past it a send is refused
    # (RESOURCE_EXHAUSTED) rather than filling a noeviction Redis. Keep well under maxmemory.
    max_queued_bytes: int = 64 * 1024 * 1024
    redis_timeout_seconds: float = 2.0
    # Part length for splitting, in UTF-16 code units as Telegram counts.
    max_message_length: int = 4096

    def __post_init__(self) -> None:
        if ":" not in self.bot_token:
            # Never echo the value: it is a secret.
            raise ConfigError("TELEGRAM_BOT_TOKEN is not of the form <id>:<secret>")

    @property
    def global_limit(self) -> tuple[int, int, int]:
        """(count, window ms, minimum gap ms) of the bot-wide limit."""
        if self.global_per_second >= 1:
            count, window = round(self.global_per_second), 1000.0
        else:
            count, window = 1, 1000.0 / self.global_per_second
        window_ms = round(window * (1.0 + self.rate_margin))
        # The gap spreads a backlog over the window; half the even spacing
        # leaves room to catch up after a stall without a burst.
        return count, window_ms, max(0, round(window_ms / count / 2))

    @property
    def lease_ms(self) -> int:
        # A claimed chat stays ours a little past the longest Telegram request,
        # so a live worker never loses it while a dead one's comes back soon.
        return int((self.telegram_timeout_seconds + 5.0) * 1000)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifierSettings:
        return cls(
            bot_token=env_str(env, "TELEGRAM_BOT_TOKEN"),
            api_base=env_str(env, "TELEGRAM_API_BASE", DEFAULT_API_BASE).rstrip("/"),
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            key_prefix=env_str(env, "NOTIFIER_REDIS_PREFIX", "notifier:"),
            global_per_second=env_float(env, "NOTIFIER_GLOBAL_PER_SECOND", 30.0, min=0.1),
            private_per_second=env_float(env, "NOTIFIER_PRIVATE_PER_SECOND", 1.0, min=0.01),
            group_per_minute=env_float(env, "NOTIFIER_GROUP_PER_MINUTE", 20.0, min=0.1),
            rate_margin=env_float(env, "NOTIFIER_RATE_MARGIN", 0.03, min=0.0, max=1.0),
            max_inflight=env_int(env, "NOTIFIER_MAX_INFLIGHT", 16, min=1, max=1024),
            telegram_timeout_seconds=env_float(
                env, "NOTIFIER_TELEGRAM_TIMEOUT_SECONDS", 10.0, min=0.1, max=600
            ),
            max_attempts=env_int(env, "NOTIFIER_MAX_ATTEMPTS", 8, min=1, max=1000),
            backoff_base_seconds=env_float(env, "NOTIFIER_BACKOFF_BASE_SECONDS", 0.5, min=0.001),
            backoff_cap_seconds=env_float(env, "NOTIFIER_BACKOFF_CAP_SECONDS", 30.0, min=0.001),
            idempotency_ttl_seconds=env_int(
                env, "NOTIFIER_IDEMPOTENCY_TTL_SECONDS", 7 * 24 * 3600, min=60
            ),
            blocked_ttl_seconds=env_int(env, "NOTIFIER_BLOCKED_TTL_SECONDS", 24 * 3600, min=1),
            dead_letter_ttl_seconds=env_int(
                env, "NOTIFIER_DEAD_LETTER_TTL_SECONDS", 7 * 24 * 3600, min=60
            ),
            max_queued_bytes=env_int(
                env, "NOTIFIER_MAX_QUEUED_BYTES", 64 * 1024 * 1024, min=1024 * 1024
            ),
            redis_timeout_seconds=env_float(
                env, "NOTIFIER_REDIS_TIMEOUT_SECONDS", 2.0, min=0.05, max=60
            ),
        )
