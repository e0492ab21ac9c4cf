"""Gateway settings, read once in main()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voxmesh.config import (
    ConfigError,
    TelemetrySettings,
    env_addr,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_str,
)
from voxmesh.tls import TlsSettings

# The cloud Bot API lets bots download files up to 20 MB; a self-hosted Bot
# API server (TELEGRAM_API_LOCAL=true) up to 2 GB.
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
LOCAL_DOWNLOAD_LIMIT = 2000 * 1024 * 1024
# The transcriber's default per-stream upload limit (TRANSCRIBER_MAX_UPLOAD_BYTES).
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024

WEBHOOK_PATH = "/webhook"


@dataclass(frozen=True)
class StarsPackage:
    """What /buy offers: ``stars`` Telegram Stars buy ``credits`` credits."""

    stars: int
    credits: int


def parse_packages(name: str, raw: str) -> tuple[StarsPackage, ...]:
    """``"50:500,100:1000"`` -> packages, in the order given."""
    packages: list[StarsPackage] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        stars, sep, amount = item.partition(":")
        if not sep or not stars.strip().isdigit() or not amount.strip().isdigit():
            raise ConfigError(f"{name}: {item!r} is not STARS:CREDITS")
        package = StarsPackage(int(stars), int(amount))
        if not 1 <= package.stars <= 10000 or package.credits <= 0:
            raise ConfigError(f"{name}: {item!r} needs 1..10000 stars and positive credits")
        packages.append(package)
    if not packages or len(packages) > 6:
        raise ConfigError(f"{name}: give 1 to 6 packages")
    return tuple(packages)


@dataclass(frozen=True)
class GatewaySettings:
    bot_token: str
    api_base: str
    api_local: bool
    billing_target: str
    transcriber_target: str
    notifier_target: str
    http_addr: str
    mode: str
    webhook_url: str
    webhook_secret: str
    # A job may take this long plus job_seconds_per_audio_second per second of audio.
    job_base_seconds: float
    job_seconds_per_audio_second: float
    edit_interval_seconds: float
    text_document_threshold: int
    telemetry: TelemetrySettings
    # Preferences, rate limits, the job queue and webhook de-duplication live
    # in Redis under this prefix: the gateway keeps no state of its own.
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "gateway:"
    # SIGTERM: stop taking updates, finish jobs in flight for at most this long.
    grace_seconds: float = 30.0
    # Messages (and button presses) a user may send per minute.
    rate_limit_per_minute: int = 20
    # How long a seen update_id is remembered (Telegram re-delivers for hours).
    dedupe_ttl_seconds: int = 24 * 3600
    # How long a finished transcript answers the same file again, free (0: never).
    transcript_cache_seconds: int = 24 * 3600
    packages: tuple[StarsPackage, ...] = (
        StarsPackage(50, 500),
        StarsPackage(100, 1000),
        StarsPackage(250, 2500),
    )
    # The reconciler looks for jobs that can move (waiting behind no live
    # runner, or whose runner died) this often, and once at start.
    reconcile_interval_seconds: float = 30.0
    # A job's runner renews its lease in billing within this; a dead one's
    # lapses and another replica's claim takes the job over.
    job_lease_seconds: float = 15.0
    # Mutual TLS to the services (VOXMESH_TLS_*): the gateway's certificate is
    # what billing and the notifier authorise money moves and messages by.
    tls: TlsSettings | None = None

    # Largest file the gateway downloads (bytes counted as they arrive). Keep it at
    # or under the transcriber's TRANSCRIBER_MAX_UPLOAD_BYTES (its per-stream spool).
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES

    @property
    def download_limit(self) -> int:
        platform = LOCAL_DOWNLOAD_LIMIT if self.api_local else CLOUD_DOWNLOAD_LIMIT
        return min(platform, self.max_download_bytes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        mode = env_choice(env, "GATEWAY_MODE", "polling", ("polling", "webhook"))
        webhook = mode == "webhook"
        return cls(
            bot_token=env_str(env, "TELEGRAM_BOT_TOKEN"),
            api_base=env_str(env, "TELEGRAM_API_BASE", "https://api.telegram.org"),
            api_local=env_bool(env, "TELEGRAM_API_LOCAL", False),
            billing_target=env_str(env, "BILLING_TARGET", "127.0.0.1:50051"),
            transcriber_target=env_str(env, "TRANSCRIBER_TARGET", "127.0.0.1:50052"),
            notifier_target=env_str(env, "NOTIFIER_TARGET", "127.0.0.1:50053"),
            http_addr=env_addr(env, "GATEWAY_HTTP_ADDR", "127.0.0.1:8080"),
            mode=mode,
            webhook_url=env_str(env, "GATEWAY_WEBHOOK_URL", None if webhook else ""),
            webhook_secret=env_str(env, "TELEGRAM_WEBHOOK_SECRET", None if webhook else ""),
            job_base_seconds=env_float(env, "GATEWAY_JOB_BASE_SECONDS", 60.0, min=1),
            job_seconds_per_audio_second=env_float(
                env, "GATEWAY_JOB_SECONDS_PER_AUDIO_SECOND", 1.0, min=0.01
            ),
            edit_interval_seconds=env_float(env, "GATEWAY_EDIT_INTERVAL_SECONDS", 1.0, min=0.1),
            text_document_threshold=env_int(env, "GATEWAY_TEXT_DOCUMENT_THRESHOLD", 12000, min=100),
            telemetry=TelemetrySettings.from_env(env, "gateway"),
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            key_prefix=env_str(env, "GATEWAY_KEY_PREFIX", "gateway:"),
            grace_seconds=env_float(env, "GATEWAY_GRACE_SECONDS", 30.0, min=0, max=3600),
            rate_limit_per_minute=env_int(
                env, "GATEWAY_RATE_LIMIT_PER_MINUTE", 20, min=1, max=10000
            ),
            transcript_cache_seconds=env_int(
                env, "GATEWAY_TRANSCRIPT_CACHE_SECONDS", 24 * 3600, min=0, max=30 * 86400
            ),
            dedupe_ttl_seconds=env_int(
                env, "GATEWAY_DEDUPE_TTL_SECONDS", 24 * 3600, min=60, max=30 * 86400
            ),
            packages=parse_packages(
                "GATEWAY_STARS_PACKAGES",
                env.get("GATEWAY_STARS_PACKAGES", "").strip() or "50:500,100:1000,250:2500",
            ),
            reconcile_interval_seconds=env_float(
                env, "GATEWAY_RECONCILE_INTERVAL_SECONDS", 30.0, min=0.1, max=3600
            ),
            job_lease_seconds=env_float(env, "GATEWAY_JOB_LEASE_SECONDS", 15.0, min=2, max=600),
            tls=TlsSettings.from_env(env),
            max_download_bytes=env_int(
                env, "GATEWAY_MAX_DOWNLOAD_BYTES", DEFAULT_MAX_DOWNLOAD_BYTES, min=1 << 20
            ),
        )
