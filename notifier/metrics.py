"""The notifier's own metrics: queue depth, waits before sending, Telegram's 429s."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

from voxmesh.telemetry import untraced

log = logging.getLogger(__name__)

# Queued messages across every chat with work (the chats are few next to
# their messages; capped so a scrape never walks an unbounded set).
_DEPTH = """
local total = 0
for _, chat in ipairs(redis.call('ZRANGE', KEYS[1], 0, 9999)) do
  total = total + redis.call('LLEN', ARGV[1] .. 'q:' .. chat)
end
return total
"""

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.telegram_429 = Counter(
            "voxmesh_notifier_telegram_429",
            "Telegram answers 429 Too Many Requests (the limits should keep this at 0).",
            registry=registry,
        )
        self.telegram_failures = Counter(
            "voxmesh_notifier_telegram_failures",
            "Telegram calls that failed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.wait = Histogram(
            "voxmesh_notifier_ratelimit_wait_seconds",
            "Time a message waited in the outbox before it was sent (limits, order, retries).",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.depth = Gauge(
            "voxmesh_notifier_queue_depth", "Messages queued in the outbox.", registry=registry
        )


async def refresh_depth(
    metrics: NotifierMetrics, client: aioredis.Redis, prefix: str, every: float = 5.0
) -> None:
    """Keep the depth gauge current until cancelled; Redis trouble only skips a beat."""
    script = client.register_script(_DEPTH)
    with untraced():
        while True:
            with contextlib.suppress(RedisError, OSError):
                metrics.depth.set(float(await script(keys=[prefix + "due"], args=[prefix])))
            await asyncio.sleep(every)
