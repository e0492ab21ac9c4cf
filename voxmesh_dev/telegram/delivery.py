"""Update delivery: the queue of pending updates, and the two ways a bot takes them.

Telegram keeps each update until the bot confirms it: by asking getUpdates for a later
``offset``, or by answering the webhook's POST with a 2xx. Both ways share one queue here,
and exclude each other as on Telegram (getUpdates answers 409 while a webhook is set, and a
newer getUpdates ends an older long poll with 409). Webhook delivery is one update at a time,
in order, retried with exponential backoff; every attempt is kept in ``deliveries``.

Update ids only grow, also across emulator restarts, because a bot's de-duplication may
remember them (see ``next_update_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from voxmesh_dev.telegram.params import ApiError, Handler, Params, bad_request
from voxmesh_dev.telegram.state import now

UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
# Telegram's default when allowed_updates was never given
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")

# Runs the Bot API method a webhook's 2xx answer may carry (the HTTP front knows how).
ReplyHandler = Callable[[aiohttp.ClientResponse], Awaitable[None]]


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the webhook; status 0 means a network error."""

    update_id: int
    status: int
    error: str | None
    time: float


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


def _update_type(update: dict[str, Any]) -> str | None:
    return next((key for key in update if key != "update_id"), None)


class UpdateDelivery:
    """Pending updates and their delivery by getUpdates or webhook."""

    def __init__(self, closing: asyncio.Event, on_reply: ReplyHandler) -> None:
        self._closing = closing
        self._on_reply = on_reply
        self.webhook_timeout = 10.0
        self.webhook_retry_delay = 0.1
        self.webhook_max_retry_delay = 2.0
        self.deliveries: list[WebhookDelivery] = []
        self._pending: list[dict[str, Any]] = []
        # Every update ever pushed, by id: redeliver() can send one again.
        self._history: dict[int, dict[str, Any]] = {}
        # Telegram's ids only grow, and a bot's de-duplication remembers them across
        # restarts (Redis persists in .state/): an emulator that counted from 1 again
        # would see its first updates of every later run dropped as duplicates. Start
        # from the wall clock in microseconds (well inside JSON's exact integers).
        self.next_update_id = time.time_ns() // 1000
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        # Each getUpdates takes a new generation; an older long poll that sees a newer
        # one ends with 409, as Telegram ends it.
        self._poll_generation = 0
        self._updates_event = asyncio.Event()
        self._webhook_event = asyncio.Event()
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    def handlers(self) -> dict[str, Handler]:
        return {
            "getupdates": self.get_updates,
            "setwebhook": self.set_webhook,
            "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info,
        }

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a copy of update, numbered if it has no update_id; return the copy."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self.next_update_id
        update_id = int(update["update_id"])
        self.next_update_id = max(self.next_update_id, update_id + 1)
        self._pending.append(update)
        self._history[update_id] = update
        self._updates_event.set()
        self._webhook_event.set()
        return update

    async def redeliver(self, update_id: int) -> int:
        """POST an already seen update to the webhook again now; return the HTTP status."""
        if self._webhook is None:
            raise RuntimeError("no webhook is set")
        update = self._history.get(update_id)
        if update is None:
            raise KeyError(update_id)
        async with aiohttp.ClientSession() as session:
            return await self._post_update(session, self._webhook, update)

    async def stop(self) -> None:
        """Release long polls and stop webhook delivery (the caller has set ``closing``)."""
        self._updates_event.set()
        self._webhook_event.set()
        await self._stop_webhook_task()

    # ------------------------------------------------------------------ the queue

    def _eligible(self, limit: int) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        for update in self._pending:
            if _update_type(update) in self._allowed_updates:
                kept.append(update)
        # Telegram never delivers updates of a type the bot did not ask for
        self._pending = kept
        return kept[:limit]

    def _set_allowed_updates(self, p: Params) -> None:
        allowed = p.get_json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad_request("can't parse allowed_updates JSON object")
        self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_ALLOWED_UPDATES

    # ------------------------------------------------------------------ Bot API methods

    async def get_updates(self, p: Params) -> Any:
        if self._webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = p.get_int("offset") or 0
        limit = min(max(p.get_int("limit") or 100, 1), 100)
        timeout = max(p.get_int("timeout") or 0, 0)
        self._set_allowed_updates(p)
        self._poll_generation += 1
        generation = self._poll_generation
        # wake an older long poll so it can answer 409, as Telegram does
        self._updates_event.set()
        # An offset confirms every update before it; a negative one keeps only the last few.
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._eligible(limit)
            if batch or self._closing.is_set():
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            self._updates_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._updates_event.wait(), remaining)
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )

    async def set_webhook(self, p: Params) -> Any:
        url = p.get_str("url") or ""
        if not url:
            await self._remove_webhook(drop_pending=p.get_bool("drop_pending_updates"))
            return True
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get_str("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        max_connections = p.get_int("max_connections") or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        self._set_allowed_updates(p)
        if p.get_bool("drop_pending_updates"):
            self._pending.clear()
        await self._stop_webhook_task()
        self._webhook = _Webhook(url=url, secret_token=secret, max_connections=max_connections)
        self._webhook_task = asyncio.create_task(self._deliver_loop(self._webhook))
        # a long poll in flight must end: getUpdates and a webhook exclude each other
        self._poll_generation += 1
        self._updates_event.set()
        return True

    async def delete_webhook(self, p: Params) -> Any:
        await self._remove_webhook(drop_pending=p.get_bool("drop_pending_updates"))
        return True

    async def get_webhook_info(self, p: Params) -> Any:
        hook = self._webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._eligible(10**9)),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if self._allowed_updates != DEFAULT_ALLOWED_UPDATES:
                info["allowed_updates"] = sorted(self._allowed_updates)
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    # ------------------------------------------------------------------ the webhook

    async def _remove_webhook(self, *, drop_pending: bool) -> None:
        await self._stop_webhook_task()
        self._webhook = None
        if drop_pending:
            self._pending.clear()

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver_loop(self, hook: _Webhook) -> None:
        delay = self.webhook_retry_delay
        async with aiohttp.ClientSession() as session:
            while not self._closing.is_set():
                batch = self._eligible(1)
                if not batch:
                    self._webhook_event.clear()
                    await self._webhook_event.wait()
                    continue
                update = batch[0]
                status = await self._post_update(session, hook, update)
                if 200 <= status < 300:
                    self._pending = [u for u in self._pending if u is not update]
                    delay = self.webhook_retry_delay
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                delay = min(delay * 2, self.webhook_max_retry_delay)

    async def _post_update(
        self, session: aiohttp.ClientSession, hook: _Webhook, update: dict[str, Any]
    ) -> int:
        headers = {}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        update_id = int(update["update_id"])
        try:
            async with session.post(
                hook.url,
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as resp:
                status = resp.status
                if 200 <= status < 300:
                    await self._on_reply(resp)
                else:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"Connection error: {type(exc).__name__}"
            _note_webhook_error(hook, message)
            self.deliveries.append(WebhookDelivery(update_id, 0, message, time.time()))
            return 0
        error = None
        if not 200 <= status < 300:
            error = f"Wrong response from the webhook: {status} {resp.reason or ''}".strip()
            _note_webhook_error(hook, error)
        self.deliveries.append(WebhookDelivery(update_id, status, error, time.time()))
        return status


def _note_webhook_error(hook: _Webhook, message: str) -> None:
    # what getWebhookInfo reports as last_error_date / last_error_message
    hook.last_error_date = now()
    hook.last_error_message = message
