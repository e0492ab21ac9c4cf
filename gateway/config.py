"""Gateway settings, read once in main()."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voxmesh.config import (
    TelemetrySettings,
    env_addr,
    env_choice,
    env_float,
    env_int,
    env_str,
)

# The cloud Bot API lets bots download files up to 20 MB; a self-hosted Bot
# API server (TELEGRAM_API_LOCAL=true) up to 2 GB.
CLOUD_DOWNLOAD_LIMIT = 20 * 1024 * 1024
LOCAL_DOWNLOAD_LIMIT = 2000 * 1024 * 1024


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

    @property
    def download_limit(self) -> int:
        return LOCAL_DOWNLOAD_LIMIT if self.api_local else CLOUD_DOWNLOAD_LIMIT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        mode = env_choice(env, "GATEWAY_MODE", "polling", ("polling", "webhook"))
        return cls(
            bot_token=env_str(env, "TELEGRAM_BOT_TOKEN"),
            api_base=env_str(env, "TELEGRAM_API_BASE", "https://api.telegram.org"),
            api_local=env.get("TELEGRAM_API_LOCAL", "").lower() in {"1", "true", "yes"},
            billing_target=env_str(env, "BILLING_TARGET", "127.0.0.1:50051"),
            transcriber_target=env_str(env, "TRANSCRIBER_TARGET", "127.0.0.1:50052"),
            notifier_target=env_str(env, "NOTIFIER_TARGET", "127.0.0.1:50053"),
            http_addr=env_addr(env, "GATEWAY_HTTP_ADDR", "127.0.0.1:8080"),
            mode=mode,
            webhook_url=env_str(env, "GATEWAY_WEBHOOK_URL", "" if mode == "polling" else None),
            webhook_secret=env_str(
                env, "TELEGRAM_WEBHOOK_SECRET", "" if mode == "polling" else None
            ),
            job_base_seconds=env_float(env, "GATEWAY_JOB_BASE_SECONDS", 60.0, min=1),
            job_seconds_per_audio_second=env_float(
                env, "GATEWAY_JOB_SECONDS_PER_AUDIO_SECOND", 1.0, min=0.01
            ),
            edit_interval_seconds=env_float(env, "GATEWAY_EDIT_INTERVAL_SECONDS", 1.0, min=0.1),
            text_document_threshold=env_int(env, "GATEWAY_TEXT_DOCUMENT_THRESHOLD", 12000, min=100),
            telemetry=TelemetrySettings.from_env(env, "gateway"),
        )
