"""GatewaySettings: defaults, webhook requirements, Stars packages."""

from __future__ import annotations

import pytest

from gateway.config import (
    CLOUD_DOWNLOAD_LIMIT,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    LOCAL_DOWNLOAD_LIMIT,
    GatewaySettings,
    StarsPackage,
    parse_packages,
)
from voxmesh.config import ConfigError

BASE = {"TELEGRAM_BOT_TOKEN": "1:x"}


def test_defaults() -> None:
    s = GatewaySettings.from_env(BASE)
    assert s.mode == "polling" and s.grace_seconds == 30.0
    assert s.redis_url == "redis://127.0.0.1:6379/0" and s.key_prefix == "gateway:"
    assert s.rate_limit_per_minute == 20
    assert s.download_limit == CLOUD_DOWNLOAD_LIMIT
    assert s.packages[0] == StarsPackage(50, 500)


def test_local_bot_api_raises_the_download_limit() -> None:
    # Up to what the transcriber spools for one stream by default, not Telegram's 2 GB.
    s = GatewaySettings.from_env({**BASE, "TELEGRAM_API_LOCAL": "true"})
    assert s.download_limit == DEFAULT_MAX_DOWNLOAD_BYTES < LOCAL_DOWNLOAD_LIMIT
    big = {**BASE, "TELEGRAM_API_LOCAL": "true", "GATEWAY_MAX_DOWNLOAD_BYTES": str(3 << 30)}
    assert GatewaySettings.from_env(big).download_limit == LOCAL_DOWNLOAD_LIMIT
    # The cloud Bot API's 20 MB stays the bound however high the setting.
    assert GatewaySettings.from_env(
        {**BASE, **big, "TELEGRAM_API_LOCAL": "false"}
    ).download_limit == (CLOUD_DOWNLOAD_LIMIT)


def test_webhook_needs_url_and_secret() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_WEBHOOK_URL"):
        GatewaySettings.from_env({**BASE, "GATEWAY_MODE": "webhook"})
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        GatewaySettings.from_env(
            {**BASE, "GATEWAY_MODE": "webhook", "GATEWAY_WEBHOOK_URL": "https://x/webhook"}
        )
    s = GatewaySettings.from_env(
        {
            **BASE,
            "GATEWAY_MODE": "webhook",
            "GATEWAY_WEBHOOK_URL": "https://x/webhook",
            "TELEGRAM_WEBHOOK_SECRET": "abc",
            "GATEWAY_GRACE_SECONDS": "5",
            "GATEWAY_KEY_PREFIX": "gw1:",
        }
    )
    assert (s.webhook_secret, s.grace_seconds, s.key_prefix) == ("abc", 5.0, "gw1:")


@pytest.mark.parametrize("raw", ["", "50", "50:x", "0:10", "50:0", ",".join(["1:1"] * 7)])
def test_bad_packages_fail_fast(raw: str) -> None:
    with pytest.raises(ConfigError, match="PKG"):
        parse_packages("PKG", raw) if raw else parse_packages("PKG", " , ")


def test_packages_keep_their_order() -> None:
    assert parse_packages("P", "100:1000, 50:500") == (
        StarsPackage(100, 1000),
        StarsPackage(50, 500),
    )
