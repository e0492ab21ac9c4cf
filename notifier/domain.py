"""What the notifier does, free of gRPC: validate, deduplicate, queue, await.

Every message-like request becomes a job in the outbox under its
idempotency key before anything else happens, then the caller waits for the
outcome within its deadline. A caller whose deadline runs out gets
UNAVAILABLE with a retry delay while the job stays queued: the same key
later returns the message it produced, never a second message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.exceptions import RedisError

from notifier.config import NotifierSettings
from notifier.delivery import backoff_seconds
from notifier.outbox import ChatLimit, Outbox, Record
from notifier.telegram import Permanent, TelegramClient, Transient
from notifier.text import split_text, utf16_len
from voxmesh.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    invalid_field,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT = 65536
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_CAPTION = 1024
MAX_CALLBACK_TEXT = 200
# Kept off the caller's deadline so the answer gets back before it expires:
# after the wait come two Redis round trips and the reply, and a busy event
# loop can stall for longer than 0.1 s (CI saw the caller's deadline win).
_ANSWER_MARGIN = 0.5
_ANSWER_SHARE = 0.25

Buttons = Sequence[Sequence[tuple[str, str]]]


@dataclass(frozen=True)
class SendResult:
    message_id: int
    message_ids: tuple[int, ...]


@dataclass(frozen=True)
class EditResult:
    message_id: int
    coalesced: bool


@dataclass(frozen=True)
class Outgoing:
    """One Send: the chat kind is private, group or empty (derive from the id)."""

    idempotency_key: str
    chat_id: int
    text: str
    html: bool = False
    reply_to: int = 0
    buttons: Buttons = field(default_factory=list)
    chat_kind: str = ""


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= 128:
        raise invalid_field("idempotency_key", "idempotency_key must be 1 to 128 characters")


def _check_chat(chat_id: int) -> None:
    if chat_id == 0:
        raise invalid_field("chat_id", "chat_id is required")


def _check_buttons(buttons: Buttons) -> None:
    for row in buttons:
        for text, data in row:
            if not 1 <= len(text) <= 64:
                raise invalid_field("buttons", "button text must be 1 to 64 characters")
            if not 1 <= len(data.encode()) <= 64:
                raise invalid_field("buttons", "callback_data must be 1 to 64 bytes")


def _fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _redis_down(err: Exception) -> Unavailable:
    return Unavailable(
        "the notifier's store is unavailable",
        reason="DEPENDENCY_UNAVAILABLE",
        metadata={"dependency": "redis", "error": type(err).__name__},
        retry_after=1.0,
    )


class Notifier:
    """The five operations of NotifierService."""

    def __init__(
        self,
        outbox: Outbox,
        telegram: TelegramClient,
        settings: NotifierSettings,
        *,
        default_timeout: float = 30.0,
    ) -> None:
        self._outbox = outbox
        self._tg = telegram
        self._settings = settings
        self._default_timeout = default_timeout
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not cryptography

    def chat_limit(self, chat_id: int, chat_kind: str) -> ChatLimit:
        s = self._settings
        group = chat_kind == "group" or (chat_kind != "private" and chat_id < 0)
        margin = 1.0 + s.rate_margin
        if group:
            return ChatLimit(max(1, int(s.group_per_minute)), round(60_000 * margin))
        return ChatLimit(1, round(1000 / s.private_per_second * margin))

    # -- operations --------------------------------------------------------

    async def send(self, req: Outgoing, time_left: float | None) -> SendResult:
        _check_key(req.idempotency_key)
        _check_chat(req.chat_id)
        if not 1 <= len(req.text) <= MAX_TEXT:
            raise invalid_field("text", f"text must be 1 to {MAX_TEXT} characters")
        _check_buttons(req.buttons)
        parts = split_text(req.text, self._settings.max_message_length, html_mode=req.html)
        payload = {
            "parts": parts,
            "html": req.html,
            "reply_to": req.reply_to,
            "buttons": [list(map(list, row)) for row in req.buttons],
        }
        fp = _fingerprint("send", req.chat_id, req.text, req.html, req.reply_to, payload["buttons"])
        rec = await self._submit(
            "send",
            req.idempotency_key,
            req.chat_id,
            fp,
            payload,
            self.chat_limit(req.chat_id, req.chat_kind),
            time_left,
        )
        ids = tuple(int(x) for x in rec.result.get("message_ids") or ())
        mid = int(rec.result.get("message_id", 0))
        return SendResult(message_id=mid, message_ids=ids or (mid,))

    async def edit(
        self,
        key: str,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        html: bool,
        buttons: Buttons,
        chat_kind: str,
        time_left: float | None,
    ) -> EditResult:
        _check_key(key)
        _check_chat(chat_id)
        if message_id <= 0:
            raise invalid_field("message_id", "message_id is required")
        if not text or utf16_len(text) > self._settings.max_message_length:
            raise invalid_field("text", "text must be 1 to 4096 characters")
        _check_buttons(buttons)
        payload = {
            "message_id": message_id,
            "text": text,
            "html": html,
            "buttons": [list(map(list, row)) for row in buttons],
        }
        fp = _fingerprint("edit", chat_id, message_id, text, html, payload["buttons"])
        rec = await self._submit(
            "edit",
            key,
            chat_id,
            fp,
            payload,
            self.chat_limit(chat_id, chat_kind),
            time_left,
            edit_target=message_id,
        )
        return EditResult(
            message_id=int(rec.result.get("message_id", message_id)),
            coalesced=bool(rec.result.get("coalesced", False)),
        )

    async def send_document(
        self,
        key: str,
        chat_id: int,
        filename: str,
        content: bytes,
        *,
        caption: str,
        reply_to: int,
        chat_kind: str,
        time_left: float | None,
    ) -> int:
        _check_key(key)
        _check_chat(chat_id)
        if (
            not filename
            or len(filename) > 255
            or "/" in filename
            or any(ord(c) < 32 or ord(c) == 127 for c in filename)
        ):
            # Control characters cannot travel in a multipart header.
            raise invalid_field(
                "filename", "filename must be 1 to 255 characters, no '/' or control characters"
            )
        if not content:
            raise invalid_field("content", "content is empty")
        if len(content) > MAX_DOCUMENT_BYTES:
            raise invalid_field("content", f"content is over {MAX_DOCUMENT_BYTES} bytes")
        if len(caption) > MAX_CAPTION:
            raise invalid_field("caption", f"caption is over {MAX_CAPTION} characters")
        payload = {
            "filename": filename,
            "content": base64.b64encode(content).decode(),
            "caption": caption,
            "reply_to": reply_to,
        }
        fp = _fingerprint(
            "document", chat_id, filename, hashlib.sha256(content).hexdigest(), caption, reply_to
        )
        rec = await self._submit(
            "document", key, chat_id, fp, payload, self.chat_limit(chat_id, chat_kind), time_left
        )
        return int(rec.result.get("message_id", 0))

    async def delete(
        self, key: str, chat_id: int, message_id: int, time_left: float | None
    ) -> bool:
        _check_key(key)
        _check_chat(chat_id)
        if message_id <= 0:
            raise invalid_field("message_id", "message_id is required")
        # Queued behind the chat's earlier sends and edits, so it never
        # overtakes an edit of the same message; deletions cost no budget.
        rec = await self._submit(
            "delete",
            key,
            chat_id,
            _fingerprint("delete", chat_id, message_id),
            {"message_id": message_id},
            ChatLimit(1, 0, free=True),
            time_left,
        )
        return bool(rec.result.get("deleted", False))

    async def answer_callback(
        self,
        key: str,
        callback_query_id: str,
        text: str,
        show_alert: bool,
        time_left: float | None,
    ) -> None:
        _check_key(key)
        if not callback_query_id or len(callback_query_id) > 128:
            raise invalid_field(
                "callback_query_id", "callback_query_id must be 1 to 128 characters"
            )
        if len(text) > MAX_CALLBACK_TEXT:
            raise invalid_field("text", f"text is over {MAX_CALLBACK_TEXT} characters")
        # Not queued: a button press wants its answer now, and answers do not
        # count against the message limits. A short-lived marker keeps a
        # retried call from answering twice.
        marker = self._outbox.idem_key("callback", key)
        try:
            first = await self._outbox.redis.set(marker, "1", nx=True, ex=3600)
        except RedisError as err:
            raise _redis_down(err) from None
        if not first:
            return
        try:
            await self._with_retries(
                lambda: self._tg.answer_callback(callback_query_id, text, show_alert), time_left
            )
        except BaseException:
            try:
                await self._outbox.redis.delete(marker)
            except RedisError:
                log.warning("could not clear callback marker; a retry will be a no-op")
            raise

    # -- plumbing ----------------------------------------------------------

    async def _submit(
        self,
        method: str,
        key: str,
        chat_id: int,
        fp: str,
        payload: dict[str, Any],
        limit: ChatLimit,
        time_left: float | None,
        *,
        edit_target: int = 0,
    ) -> Record:
        budget = self._budget(time_left)
        try:
            sub = await self._outbox.submit(
                method=method,
                key=key,
                chat=chat_id,
                fingerprint=fp,
                payload=payload,
                limit=limit,
                edit_target=edit_target,
            )
            if sub.status == "full":
                raise ResourceExhausted(
                    "the notifier's queue is full; retry later",
                    reason="OVERLOADED",
                    retry_after=5.0,
                )
            if sub.status == "blocked":
                raise FailedPrecondition(
                    "the chat has blocked the bot",
                    reason="TELEGRAM_FORBIDDEN",
                    metadata={"description": "chat marked blocked after a 403"},
                )
            if sub.record is not None:
                if sub.record.fingerprint != fp:
                    raise AlreadyExists(
                        "idempotency_key was used for a different request",
                        metadata={"field": "idempotency_key"},
                    )
                if sub.record.final:
                    return self._outcome(sub.record)
            rec = await self._outbox.wait(self._outbox.idem_key(method, key), budget)
            if rec is None or not rec.final:
                retry = await self._outbox.due_in(chat_id)
                raise Unavailable(
                    "the message is queued and not yet delivered; retry with the same key",
                    reason="TELEGRAM_UNAVAILABLE",
                    metadata={"queued": "true"},
                    retry_after=max(1.0, retry or 0.0),
                    retry_within_call=False,
                )
            return self._outcome(rec)
        except RedisError as err:
            raise _redis_down(err) from None

    def _outcome(self, rec: Record) -> Record:
        if rec.state == "done":
            return rec
        e = rec.error
        description = str(e.get("description", ""))
        reason = str(e.get("reason", "INTERNAL"))
        if e.get("code") == "FAILED_PRECONDITION":
            raise FailedPrecondition(
                f"Telegram refused the request: {description}",
                reason=reason,
                metadata={"description": description},
            )
        if e.get("code") == "UNAVAILABLE":
            raise Unavailable(
                "Telegram kept failing; retry with the same key",
                reason=reason,
                metadata={"description": description},
                retry_after=float(e.get("retry_after") or 1.0),
            )
        raise Internal("the notifier could not deliver the request")

    def _budget(self, time_left: float | None) -> float:
        if time_left is None:
            return self._default_timeout
        return max(0.0, time_left - min(_ANSWER_MARGIN, time_left * _ANSWER_SHARE))

    async def _with_retries(self, call: Callable[[], Awaitable[T]], time_left: float | None) -> T:
        loop = asyncio.get_running_loop()
        end = loop.time() + self._budget(time_left)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except Permanent as err:
                reason = "TELEGRAM_FORBIDDEN" if err.forbidden else "TELEGRAM_BAD_REQUEST"
                raise FailedPrecondition(
                    f"Telegram refused the request: {err.description}",
                    reason=reason,
                    metadata={"description": err.description},
                ) from None
            except Transient as err:
                s = self._settings
                delay = backoff_seconds(
                    attempt,
                    err.retry_after,
                    base=s.backoff_base_seconds,
                    cap=s.backoff_cap_seconds,
                    rng=self._rng,
                )
                if loop.time() + delay >= end or attempt >= s.max_attempts:
                    raise Unavailable(
                        "Telegram is unavailable",
                        reason="TELEGRAM_UNAVAILABLE",
                        metadata={"description": err.description},
                        retry_after=delay,
                    ) from None
                await asyncio.sleep(delay)


__all__ = ["EditResult", "Notifier", "Outgoing", "SendResult", "ServiceError"]
