"""Finished transcripts, by the file and the settings that shaped them.

Telegram gives every file a ``file_unique_id`` that stays the same when the
note is forwarded or fetched by another user. A note transcribed before, with
the same speech language, task and format, is answered at once from here:
no job, no transcriber, no charge. A transcript is the user's data, so it
is kept only ``ttl_seconds`` (GATEWAY_TRANSCRIPT_CACHE_SECONDS, a day by
default; 0 turns the cache off) and only up to ``max_bytes`` each, which
bounds what it can take of Redis.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.jobs.model import JobSpec

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024


class TranscriptCache:
    def __init__(
        self, redis: Redis, prefix: str, *, ttl_seconds: int, max_bytes: int = MAX_BYTES
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl_seconds = ttl_seconds
        self._max_bytes = max_bytes

    def _key(self, spec: JobSpec) -> str | None:
        unique = spec.media.file_unique_id
        if not unique or self.ttl_seconds <= 0:
            return None
        language = spec.speech_language or "auto"
        return f"{self._prefix}transcript:{unique}:{language}:{spec.task}:{spec.output_format}"

    async def get(self, spec: JobSpec) -> str | None:
        key = self._key(spec)
        if key is None:
            return None
        try:
            raw = await self._redis.get(key)
        except RedisError:
            return None  # a cache: without it the job simply runs
        return raw.decode() if isinstance(raw, bytes) else raw

    async def put(self, spec: JobSpec, text: str) -> None:
        key = self._key(spec)
        data = text.encode()
        if key is None or not data or len(data) > self._max_bytes:
            return
        try:
            await self._redis.set(key, data, ex=self.ttl_seconds)
        except RedisError as exc:
            log.info("transcript not cached: %s", type(exc).__name__)
