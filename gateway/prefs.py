"""User preferences and group settings: not money, so not billing's.

They live in Redis behind the small :class:`Prefs` interface, so the gateway
process itself stays stateless (any replica serves any user) and a test or
another store can stand in for Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from redis.asyncio import Redis

OutputFormat = Literal["text", "timestamps", "srt", "vtt"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


@dataclass(frozen=True)
class UserPrefs:
    # "" = detect the spoken language; else an ISO 639-1 code.
    speech_language: str = ""
    output_format: OutputFormat = "text"
    # Ask the transcriber for an English translation (its translate task).
    translate: bool = False
    # The bot's own language ("en"/"ru"); "" = follow Telegram's language_code.
    interface_language: str = ""


class Prefs(Protocol):
    async def user(self, user_id: int) -> UserPrefs: ...

    async def set_speech_language(self, user_id: int, language: str) -> None: ...

    async def set_output_format(self, user_id: int, output_format: OutputFormat) -> None: ...

    async def set_translate(self, user_id: int, on: bool) -> None: ...

    async def set_interface_language(self, user_id: int, language: str) -> None: ...

    async def autotranscribe(self, chat_id: int) -> bool: ...

    async def set_autotranscribe(self, chat_id: int, on: bool) -> None: ...


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class RedisPrefs:
    """One hash per user (``<prefix>user:<id>``) and per group (``<prefix>chat:<id>``)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _user_key(self, user_id: int) -> str:
        return f"{self._prefix}user:{user_id}"

    def _chat_key(self, chat_id: int) -> str:
        return f"{self._prefix}chat:{chat_id}"

    async def user(self, user_id: int) -> UserPrefs:
        lang, fmt, translate, ui = await self._redis.hmget(
            self._user_key(user_id), ["lang", "format", "translate", "ui"]
        )
        output_format = _text(fmt)
        return UserPrefs(
            speech_language=_text(lang),
            output_format=(output_format if output_format in OUTPUT_FORMATS else "text"),
            translate=_text(translate) == "1",
            interface_language=_text(ui),
        )

    async def set_speech_language(self, user_id: int, language: str) -> None:
        key = self._user_key(user_id)
        if language in ("", "auto"):
            await self._redis.hdel(key, "lang")
        else:
            await self._redis.hset(key, "lang", language)

    async def set_output_format(self, user_id: int, output_format: OutputFormat) -> None:
        await self._redis.hset(self._user_key(user_id), "format", output_format)

    async def set_translate(self, user_id: int, on: bool) -> None:
        await self._redis.hset(self._user_key(user_id), "translate", "1" if on else "0")

    async def set_interface_language(self, user_id: int, language: str) -> None:
        key = self._user_key(user_id)
        if language in ("", "auto"):
            await self._redis.hdel(key, "ui")
        else:
            await self._redis.hset(key, "ui", language)

    async def autotranscribe(self, chat_id: int) -> bool:
        return _text(await self._redis.hget(self._chat_key(chat_id), "auto")) == "1"

    async def set_autotranscribe(self, chat_id: int, on: bool) -> None:
        await self._redis.hset(self._chat_key(chat_id), "auto", "1" if on else "0")
