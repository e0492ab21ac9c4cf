"""An HTTP client for the emulator's /_emulator/ control API, for out-of-process tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from voxmesh_dev.telegram.faults import FaultPolicy
from voxmesh_dev.telegram.records import RecordedCall, RecordedMessage


class EmulatorClient:
    """Drive a :class:`~voxmesh_dev.telegram.BotApiEmulator` running in another process.

    The methods mirror the in-process API. Instead of ``make_*_update`` + ``push_update``,
    :meth:`push` asks the server to build the update (``kind`` is one of "message", "text",
    "voice", "audio", "video", "video_note", "document", "pre_checkout",
    "successful_payment", "callback"; the fields are the matching ``make_*`` keyword arguments,
    with ``file_id`` and ``duration`` for media kinds).
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._http().request(method, f"{self.base_url}{path}", **kwargs) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
            return await resp.json()

    async def add_file(
        self, content: bytes, *, mime_type: str = "audio/ogg", file_name: str | None = None
    ) -> str:
        query = {"mime_type": mime_type}
        if file_name is not None:
            query["file_name"] = file_name
        body = await self._request("POST", "/_emulator/files", params=query, data=content)
        return str(body["file_id"])

    async def push_update(self, update: dict[str, Any]) -> int:
        body = await self._request("POST", "/_emulator/updates", json=update)
        return int(body["update_id"])

    async def push(self, kind: str, **fields: Any) -> int:
        return await self.push_update({"kind": kind, **fields})

    async def messages(self, chat_id: int) -> list[RecordedMessage]:
        body = await self._request("GET", f"/_emulator/chats/{chat_id}/messages")
        return [RecordedMessage.from_json(m) for m in body]

    async def calls(self, method: str | None = None) -> list[RecordedCall]:
        query = {"method": method} if method is not None else {}
        body = await self._request("GET", "/_emulator/calls", params=query)
        return [RecordedCall.from_json(c) for c in body]

    async def set_faults(self, policy: FaultPolicy) -> None:
        await self._request("POST", "/_emulator/faults", json=policy.to_json())

    async def set_chat_admins(self, chat_id: int, user_ids: list[int]) -> None:
        await self._request(
            "POST", "/_emulator/admins", json={"chat_id": chat_id, "user_ids": list(user_ids)}
        )

    async def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        await self._request(
            "POST", "/_emulator/blocked", json={"chat_id": chat_id, "blocked": blocked}
        )

    async def redeliver(self, update_id: int) -> int:
        body = await self._request("POST", "/_emulator/redeliver", json={"update_id": update_id})
        return int(body["status"])

    async def wait_for(
        self, predicate: Callable[[], bool | Awaitable[bool]], timeout: float
    ) -> None:
        """Poll predicate (sync or async) until it holds; TimeoutError after timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.05)
