"""A Telegram Bot API emulator: a real HTTP server speaking the Bot API's wire format.

Used by the end-to-end tests and by ``voxmesh up`` when no bot token is configured. Point
aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))``.

What it emulates
  * ``/bot<token>/<method>``: GET with a query string, or POST with JSON, an urlencoded form or
    multipart/form-data (aiogram sends multipart for every method). Method names are
    case-insensitive. Answers ``{"ok": true, "result": ...}`` or ``{"ok": false,
    "error_code": N, "description": "..."}`` with the HTTP status equal to ``error_code``, and
    ``"parameters": {"retry_after": N}`` on 429. A wrong token is 401 "Unauthorized"; an
    unknown method is 404 "Not Found".
  * Methods: getMe, getUpdates (offset confirmation, limit, long polling, allowed_updates, 409
    when a webhook is set or another getUpdates takes over), setWebhook / deleteWebhook /
    getWebhookInfo (delivery by POST with X-Telegram-Bot-Api-Secret-Token, retried with
    backoff on any non-2xx or network error; a method in the webhook's answer is executed, as
    Telegram does), getFile and ``/file/bot<token>/<file_path>`` downloads (20 MB limit, 2000 MB
    with ``local_mode=True``), sendMessage (1..4096 characters after entity parsing, HTML
    parse_mode validated like tdlib), editMessageText, deleteMessage, sendDocument (multipart
    upload, 50 MB; 2000 MB in local mode), sendInvoice (XTR), answerPreCheckoutQuery,
    answerCallbackQuery, sendChatAction, getChatMember, getChatAdministrators, setMyCommands,
    getMyCommands, deleteMyCommands.
  * Flood limits as sliding windows (see :mod:`voxmesh_dev.telegram.limits`), and
    injected faults (429, 500, hang, dropped connection) through :class:`FaultPolicy`.

What it does NOT emulate
  * Any method not listed above (404 "Not Found"), inline mode (``inline_message_id``), business
    connections, message threads, channels by ``@username``, the test environment (``/test/``).
  * Markdown and MarkdownV2 parse modes: the text is stored verbatim, neither parsed nor
    validated. HTML is parsed, and lengths are counted in Unicode code points.
  * Webhook TLS, certificates, IP allow-lists, port restrictions (plain http:// is accepted),
    and ``max_connections``: updates are delivered one at a time, in order.
  * Local mode's absolute file paths: with ``local_mode=True`` only the size limits change;
    files are still served over ``/file/bot<token>/...``, never written to disk.
  * Chat membership: a bot may write to any chat id (Telegram answers "chat not found" for chats
    the bot has never seen), unless the test blocks it with :meth:`BotApiEmulator.block_chat`.
  * Telegram's exact flood-control heuristics, which are unpublished; payments beyond Stars
    (XTR) invoices; media other than documents on the sending side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import mimetypes
import re
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from voxmesh_dev.telegram.client import EmulatorClient
from voxmesh_dev.telegram.control import ControlApi
from voxmesh_dev.telegram.html_entities import EntityParseError, parse_html, strip_text
from voxmesh_dev.telegram.limits import FaultPolicy, RateLimiter, RateLimits
from voxmesh_dev.telegram.params import (
    ApiError,
    Params,
    UploadedFile,
    bad_request,
    read_multipart,
    read_request,
)
from voxmesh_dev.telegram.records import RecordedCall, RecordedDocument, RecordedMessage

__all__ = [
    "BotApiEmulator",
    "EmulatorClient",
    "FaultPolicy",
    "RateLimits",
    "RecordedCall",
    "RecordedDocument",
    "RecordedMessage",
    "WebhookDelivery",
    "main",
]

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "123456:TEST-TOKEN"
MB = 1024 * 1024
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
DOWNLOAD_LIMIT = 20 * MB
UPLOAD_LIMIT = 50 * MB
LOCAL_MODE_LIMIT = 2000 * MB
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
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
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_FILE_DIRS = {"audio/ogg": ("voice", ".oga"), "audio/mpeg": ("music", ".mp3")}

_Handler = Callable[[Params], Awaitable[Any]]


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    mime_type: str
    file_name: str | None

    def as_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "mime_type": self.mime_type,
            "file_size": len(self.content),
        }
        if self.file_name is not None:
            doc["file_name"] = self.file_name
        return doc


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


def _now() -> int:
    return int(time.time())


def _error_body(exc: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.retry_after is not None:
        body["parameters"] = {"retry_after": exc.retry_after}
    return body


def _update_type(update: dict[str, Any]) -> str | None:
    return next((key for key in update if key != "update_id"), None)


class BotApiEmulator:
    """An in-process Telegram Bot API server for tests; see the module docstring for scope.

    Everything but :meth:`start`, :meth:`stop`, :meth:`wait_for` and :meth:`redeliver` is
    synchronous and must run on the event loop's thread (the server shares that loop).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        enforce_limits: bool = True,
        local_mode: bool = False,
        bot_username: str = "voxmesh_test_bot",
    ) -> None:
        bot_id, sep, _secret = token.partition(":")
        if not sep or not bot_id.isdigit():
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_id = int(bot_id)
        self.bot_username = bot_username
        self.local_mode = local_mode
        self.base_url = ""
        self.faults = FaultPolicy()
        self.limits = RateLimits(enabled=enforce_limits)
        self.clock: Callable[[], float] = time.monotonic
        self.webhook_timeout = 10.0
        self.webhook_retry_delay = 0.1
        self.webhook_max_retry_delay = 2.0
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.pre_checkout_answers: dict[str, dict[str, Any]] = {}
        # Stars payments made (charge id -> payer) and those refunded.
        self.charges: dict[str, int] = {}
        self.refunded: set[str] = set()
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.blocked: set[int] = set()

        self._limiter = RateLimiter(self.limits, self._now_monotonic)
        self._calls: list[RecordedCall] = []
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._messages: dict[int, list[RecordedMessage]] = {}
        self._message_index: dict[tuple[int, int], RecordedMessage] = {}
        self._user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_message_id: dict[int, int] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._admins: dict[int, list[int]] = {}
        self._open_callbacks: set[str] = set()
        self._open_pre_checkouts: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._history: dict[int, dict[str, Any]] = {}
        # Telegram's ids only grow, and a bot's de-duplication remembers them across
        # restarts (Redis persists in .state/): an emulator that counted from 1 again
        # would see its first updates of every later run dropped as duplicates. Start
        # from the wall clock in microseconds (well inside JSON's exact integers).
        self._next_update_id = time.time_ns() // 1000
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._poll_generation = 0
        self._updates_event = asyncio.Event()
        self._webhook_event = asyncio.Event()
        self._closing = asyncio.Event()
        self._webhook: _Webhook | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, _Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getfile": self._get_file,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "deletemessage": self._delete_message,
            "senddocument": self._send_document,
            "sendinvoice": self._send_invoice,
            "answerprecheckoutquery": self._answer_pre_checkout_query,
            "refundstarpayment": self._refund_star_payment,
            "answercallbackquery": self._answer_callback_query,
            "sendchataction": self._send_chat_action,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
        }

    # ------------------------------------------------------------------ lifecycle

    def _now_monotonic(self) -> float:
        # late-bound so a test can swap self.clock after construction
        return self.clock()

    @property
    def _download_limit(self) -> int:
        return LOCAL_MODE_LIMIT if self.local_mode else DOWNLOAD_LIMIT

    @property
    def _upload_limit(self) -> int:
        return LOCAL_MODE_LIMIT if self.local_mode else UPLOAD_LIMIT

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * MB)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_download)
        ControlApi(self).register(app.router)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._closing.clear()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only here
        assert isinstance(server, asyncio.base_events.Server)
        bound = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound}"
        log.info("bot api emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Release long polls and hung requests, stop webhook delivery, close the server."""
        self._closing.set()
        self._updates_event.set()
        self._webhook_event.set()
        await self._stop_webhook_task()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test API

    def add_file(
        self, content: bytes, *, mime_type: str = "audio/ogg", file_name: str | None = None
    ) -> str:
        """Store a file as if a user had sent it; return its file_id."""
        return self._store_file(content, mime_type=mime_type, file_name=file_name).file_id

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates or the webhook; assigns update_id if missing."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        update_id = int(update["update_id"])
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._register_update(update)
        self._pending.append(update)
        self._history[update_id] = update
        self._updates_event.set()
        self._webhook_event.set()
        return update_id

    def make_message_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        chat_type: str = "private",
        language_code: str = "en",
        text: str | None = None,
        caption: str | None = None,
        voice: tuple[str, int] | None = None,
        audio: tuple[str, int] | None = None,
        video: tuple[str, int] | None = None,
        video_note: tuple[str, int] | None = None,
        document: str | None = None,
        reply_to_message_id: int | None = None,
        forward: bool = False,
        message_id: int | None = None,
        username: str = "alice",
    ) -> dict[str, Any]:
        """Build a realistic ``{"message": ...}`` update from a user (not yet pushed)."""
        user = self._user_dict(user_id, username=username, language_code=language_code)
        chat = self._chat_for_update(chat_id, chat_type, user)
        if message_id is None:
            message_id = self._alloc_message_id(chat_id)
        else:
            self._next_message_id[chat_id] = max(
                self._next_message_id.get(chat_id, 1), message_id + 1
            )
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": user,
            "chat": chat,
            "date": _now(),
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if caption is not None:
            message["caption"] = caption
        self._attach_media(message, voice=voice, audio=audio, video=video, video_note=video_note)
        if document is not None:
            stored = self._files.get(document)
            message["document"] = (
                stored.as_document()
                if stored is not None
                else {"file_id": document, "file_unique_id": _unique_id()}
            )
        if reply_to_message_id is not None:
            target = self._find_message(chat_id, reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = _without_reply(target)
        if forward:
            origin_user = self._user_dict(user_id + 1, username="bob", language_code=language_code)
            message["forward_origin"] = {
                "type": "user",
                "sender_user": origin_user,
                "date": _now() - 60,
            }
        return {"message": message}

    def _attach_media(
        self,
        message: dict[str, Any],
        *,
        voice: tuple[str, int] | None,
        audio: tuple[str, int] | None,
        video: tuple[str, int] | None,
        video_note: tuple[str, int] | None,
    ) -> None:
        if voice is not None:
            message["voice"] = self._media(voice[0], duration=voice[1])
        if audio is not None:
            media = self._media(audio[0], duration=audio[1])
            stored = self._files.get(audio[0])
            if stored is not None and stored.file_name:
                media["file_name"] = stored.file_name
            message["audio"] = media
        if video is not None:
            media = self._media(video[0], duration=video[1])
            message["video"] = {**media, "width": 640, "height": 360}
        if video_note is not None:
            media = self._media(video_note[0], duration=video_note[1])
            media.pop("mime_type", None)
            message["video_note"] = {**media, "length": 240}

    def make_pre_checkout_update(
        self,
        *,
        user_id: int,
        total_amount: int,
        invoice_payload: str,
        currency: str = "XTR",
        query_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a ``pre_checkout_query`` update, as when the user taps Pay."""
        return {
            "pre_checkout_query": {
                "id": query_id or str(secrets.randbits(62)),
                "from": self._user_dict(user_id, username=username, language_code=language_code),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": invoice_payload,
            }
        }

    def make_successful_payment_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        total_amount: int,
        invoice_payload: str,
        currency: str = "XTR",
        telegram_payment_charge_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build the service message Telegram sends after the payment went through."""
        update = self.make_message_update(
            chat_id=chat_id, user_id=user_id, username=username, language_code=language_code
        )
        charge = telegram_payment_charge_id or f"stxEMU{secrets.token_hex(12)}"
        self.charges[charge] = user_id
        update["message"]["successful_payment"] = {
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": invoice_payload,
            "telegram_payment_charge_id": charge,
            "provider_payment_charge_id": "",
        }
        return update

    def make_callback_update(
        self,
        *,
        chat_id: int,
        user_id: int,
        data: str,
        message_id: int,
        query_id: str | None = None,
        username: str = "alice",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a ``callback_query`` update: the user pressed a button on a bot message."""
        query: dict[str, Any] = {
            "id": query_id or str(secrets.randbits(62)),
            "from": self._user_dict(user_id, username=username, language_code=language_code),
            "chat_instance": str(abs(hash((self.bot_id, chat_id)))),
            "data": data,
        }
        target = self._find_message(chat_id, message_id)
        if target is not None:
            query["message"] = target
        return {"callback_query": query}

    def messages(self, chat_id: int) -> list[RecordedMessage]:
        """Messages the bot sent to chat_id, in order (deleted ones included, flagged)."""
        return list(self._messages.get(chat_id, []))

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Every request answered so far, optionally only one method's (case-insensitive)."""
        if method is None:
            return list(self._calls)
        return [c for c in self._calls if c.method.lower() == method.lower()]

    def set_chat_admins(self, chat_id: int, user_ids: list[int]) -> None:
        """Make these users the chat's administrators (getChatMember, getChatAdministrators)."""
        self._admins[chat_id] = list(user_ids)

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """Sends to this chat answer 403, as when the user blocked the bot."""
        if blocked:
            self.blocked.add(chat_id)
        else:
            self.blocked.discard(chat_id)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Poll predicate until it holds; raise TimeoutError after timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.02)

    async def redeliver(self, update_id: int) -> int:
        """POST an already seen update to the webhook again now; return the HTTP status."""
        if self._webhook is None:
            raise RuntimeError("no webhook is set")
        update = self._history.get(update_id)
        if update is None:
            raise KeyError(update_id)
        async with aiohttp.ClientSession() as session:
            return await self._post_update(session, self._webhook, update)

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            body = _error_body(ApiError(401, "Unauthorized"))
            self._record(method, {}, 401, body)
            return web.json_response(body, status=401)
        try:
            params = await read_request(request, self._upload_limit)
        except ApiError as exc:
            body = _error_body(exc)
            self._record(method, {}, exc.status, body)
            return web.json_response(body, status=exc.status)
        fault = self.faults.pick(method)
        if fault in ("429", "500"):
            retry = self.faults.retry_after
            injected = (
                ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
                if fault == "429"
                else ApiError(500, "Internal Server Error")
            )
            body = _error_body(injected)
            self._record(method, params.recorded(), injected.status, body, fault=fault)
            return web.json_response(body, status=injected.status)
        if fault is not None and not self.faults.lose_response:
            self._record(method, params.recorded(), 0, None, fault=fault)
            return await self._lose(request, fault)
        status, body = await self._run_method(method, params)
        self._record(method, params.recorded(), 0 if fault else status, body, fault=fault)
        if fault is not None:
            return await self._lose(request, fault)
        return web.json_response(body, status=status)

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        stored = self._files_by_path.get(path)
        if request.match_info["token"] != self.token or stored is None:
            self._record("download", {"file_path": path}, 404, None)
            # the real file server answers unknown paths with a bare 404
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        fault = self.faults.pick("download")
        if fault in ("429", "500"):
            status = int(fault)
            self._record("download", {"file_path": path}, status, None, fault=fault)
            return web.Response(
                status=status,
                text="Too Many Requests" if status == 429 else "Internal Server Error",
            )
        if fault is not None:
            self._record("download", {"file_path": path}, 0, None, fault=fault)
            return await self._lose(request, fault)
        self._record("download", {"file_path": path}, 200, None)
        return web.Response(body=stored.content, content_type="application/octet-stream")

    async def _lose(self, request: web.Request, fault: str) -> web.StreamResponse:
        """Hang past the client's timeout and/or drop the connection without an answer."""
        if fault == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.faults.hang_seconds)
        if request.transport is not None:
            request.transport.close()
        # nothing reaches the client: the transport is closed before aiohttp writes this
        return web.Response(status=500)

    async def _run_method(self, method: str, params: Params) -> tuple[int, dict[str, Any]]:
        handler = self._methods.get(method.lower())
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
        except ApiError as exc:
            return exc.status, _error_body(exc)
        body: dict[str, Any] = {"ok": True, "result": result}
        return 200, body

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        status: int,
        body: dict[str, Any] | None,
        *,
        fault: str | None = None,
    ) -> None:
        error_code = None
        description = None
        if body is not None and not body.get("ok", True):
            error_code = body.get("error_code")
            description = body.get("description")
        elif fault is not None and status == 0:
            description = f"injected fault: {fault}"
        self._calls.append(
            RecordedCall(
                method=method,
                params=params,
                time=time.time(),
                status=status,
                error_code=error_code,
                description=description,
                fault=fault,
            )
        )
        if error_code is not None:
            log.debug("bot api %s -> %s %s", method, error_code, description)

    # ------------------------------------------------------------------ state helpers

    def _store_file(self, content: bytes, *, mime_type: str, file_name: str | None) -> StoredFile:
        number = len(self._files) + 1
        folder, ext = _FILE_DIRS.get(mime_type, ("documents", ""))
        if mime_type.startswith("video/"):
            folder = "videos"
        if not ext:
            if file_name and "." in file_name:
                ext = "." + file_name.rsplit(".", 1)[1]
            else:
                ext = mimetypes.guess_extension(mime_type) or ""
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{secrets.token_urlsafe(27)}",
            file_unique_id=_unique_id(),
            file_path=f"{folder}/file_{number}{ext}",
            content=content,
            mime_type=mime_type,
            file_name=file_name,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _media(self, file_id: str, *, duration: int) -> dict[str, Any]:
        stored = self._files.get(file_id)
        if stored is None:
            return {"file_id": file_id, "file_unique_id": _unique_id(), "duration": duration}
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": stored.mime_type,
            "file_size": len(stored.content),
        }

    def _user_dict(self, user_id: int, *, username: str, language_code: str) -> dict[str, Any]:
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": username.capitalize(),
            "username": username,
            "language_code": language_code,
        }
        self._users[user_id] = user
        return user

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "VoxMesh Test Bot",
            "username": self.bot_username,
        }

    def _chat_for_update(
        self, chat_id: int, chat_type: str, user: dict[str, Any]
    ) -> dict[str, Any]:
        if chat_type == "private":
            chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                chat["username"] = user["username"]
        else:
            chat = {"id": chat_id, "type": chat_type, "title": f"Chat {chat_id}"}
        self._chats[chat_id] = chat
        return chat

    def _chat(self, chat_id: int) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is not None:
            return chat
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _alloc_message_id(self, chat_id: int) -> int:
        number = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = number + 1
        return number

    def _register_update(self, update: dict[str, Any]) -> None:
        for key in ("message", "edited_message", "channel_post", "business_message"):
            message = update.get(key)
            if isinstance(message, dict) and "chat" in message:
                chat = message["chat"]
                self._chats.setdefault(chat["id"], chat)
                mid = int(message["message_id"])
                self._next_message_id[chat["id"]] = max(
                    self._next_message_id.get(chat["id"], 1), mid + 1
                )
                self._user_messages[(chat["id"], mid)] = message
                if "from" in message:
                    self._users.setdefault(message["from"]["id"], message["from"])
        if "callback_query" in update:
            self._open_callbacks.add(str(update["callback_query"]["id"]))
        if "pre_checkout_query" in update:
            self._open_pre_checkouts.add(str(update["pre_checkout_query"]["id"]))

    def _find_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        recorded = self._message_index.get((chat_id, message_id))
        if recorded is not None:
            return None if recorded.deleted else recorded.payload
        return self._user_messages.get((chat_id, message_id))

    def _check_can_send(self, chat_id: int) -> None:
        if chat_id in self.blocked:
            if chat_id > 0:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        retry = self._limiter.retry_after(chat_id)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)

    def _format(
        self, raw: str, parse_mode: str | None, entities: Any
    ) -> tuple[str, list[dict[str, Any]]]:
        mode = (parse_mode or "").lower()
        if mode == "html":
            try:
                text, parsed = parse_html(raw)
            except EntityParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("", "markdown", "markdownv2"):
            text = raw
            parsed = list(entities) if isinstance(entities, list) and not mode else []
        else:
            raise bad_request("unsupported parse_mode")
        text, parsed = strip_text(text, parsed)
        return text, parsed

    def _text_param(self, p: Params) -> tuple[str, list[dict[str, Any]]]:
        raw = p.get_str("text")
        if not raw:
            raise bad_request("message text is empty")
        text, entities = self._format(raw, p.get_str("parse_mode"), p.get_json("entities"))
        if not text:
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise bad_request("message is too long")
        return text, entities

    def _caption_param(self, p: Params) -> tuple[str | None, list[dict[str, Any]]]:
        raw = p.get_str("caption")
        if not raw:
            return None, []
        text, entities = self._format(raw, p.get_str("parse_mode"), p.get_json("caption_entities"))
        if len(text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        return text or None, entities

    def _reply_param(self, chat_id: int, p: Params) -> tuple[int | None, dict[str, Any] | None]:
        reply = p.get_json("reply_parameters", what="reply parameters")
        allow_missing = p.get_bool("allow_sending_without_reply")
        message_id: int | None = None
        if isinstance(reply, dict):
            raw_id = reply.get("message_id")
            if not isinstance(raw_id, int):
                raise bad_request("message to be replied not found")
            message_id = raw_id
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        elif reply is not None:
            raise bad_request("can't parse reply parameters JSON object")
        else:
            message_id = p.get_int("reply_to_message_id")
        if message_id is None:
            return None, None
        target = self._find_message(chat_id, message_id)
        if target is None:
            if allow_missing:
                return None, None
            raise bad_request("message to be replied not found")
        return message_id, _without_reply(target)

    def _markup_param(self, p: Params) -> dict[str, Any] | None:
        markup = p.get_json("reply_markup", what="reply keyboard markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            for row in rows:
                for button in row:
                    _check_button(button)
        return markup

    def _new_message(
        self,
        chat_id: int,
        *,
        text: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        parse_mode: str | None = None,
        reply: tuple[int | None, dict[str, Any] | None] = (None, None),
        markup: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RecordedMessage:
        message_id = self._alloc_message_id(chat_id)
        date = _now()
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": date,
        }
        if reply[1] is not None:
            payload["reply_to_message"] = reply[1]
        if text is not None:
            payload["text"] = text
            if entities:
                payload["entities"] = entities
        if extra:
            payload.update(extra)
        if markup is not None and "inline_keyboard" in markup:
            payload["reply_markup"] = markup
        recorded = RecordedMessage(
            message_id=message_id,
            chat_id=chat_id,
            date=date,
            text=text,
            first_text=text,
            entities=list(entities or []),
            parse_mode=parse_mode,
            reply_to_message_id=reply[0],
            reply_markup=markup,
            payload=payload,
        )
        self._messages.setdefault(chat_id, []).append(recorded)
        self._message_index[(chat_id, message_id)] = recorded
        self._limiter.record(chat_id)
        return recorded

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

    async def _get_me(self, p: Params) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, p: Params) -> Any:
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

    async def _set_webhook(self, p: Params) -> Any:
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

    async def _delete_webhook(self, p: Params) -> Any:
        await self._remove_webhook(drop_pending=p.get_bool("drop_pending_updates"))
        return True

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

    async def _get_webhook_info(self, p: Params) -> Any:
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

    async def _get_file(self, p: Params) -> Any:
        file_id = p.get_str("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        stored = self._files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.content) > self._download_limit:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _send_message(self, p: Params) -> Any:
        chat_id = p.chat_id()
        text, entities = self._text_param(p)
        reply = self._reply_param(chat_id, p)
        markup = self._markup_param(p)
        self._check_can_send(chat_id)
        message = self._new_message(
            chat_id,
            text=text,
            entities=entities,
            parse_mode=p.get_str("parse_mode"),
            reply=reply,
            markup=markup,
        )
        return message.payload

    async def _edit_message_text(self, p: Params) -> Any:
        if p.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat_id = p.chat_id()
        message_id = p.get_int(
            "message_id", required=True, missing="message identifier is not specified"
        )
        assert message_id is not None
        recorded = self._message_index.get((chat_id, message_id))
        if recorded is None or recorded.deleted:
            if (chat_id, message_id) in self._user_messages:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
        if recorded.text is None:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._text_param(p)
        markup = self._markup_param(p)
        inline = markup if markup is not None and "inline_keyboard" in markup else None
        if (
            text == recorded.text
            and entities == recorded.entities
            and inline == recorded.payload.get("reply_markup")
        ):
            raise bad_request(NOT_MODIFIED)
        self._check_can_send(chat_id)
        self._limiter.record(chat_id)
        recorded.text = text
        recorded.entities = list(entities)
        recorded.edits.append(text)
        recorded.reply_markup = markup
        payload = recorded.payload
        payload["text"] = text
        payload["edit_date"] = _now()
        if entities:
            payload["entities"] = entities
        else:
            payload.pop("entities", None)
        # editMessageText without reply_markup removes the inline keyboard, as on Telegram
        if inline is None:
            payload.pop("reply_markup", None)
        else:
            payload["reply_markup"] = inline
        return payload

    async def _delete_message(self, p: Params) -> Any:
        chat_id = p.chat_id()
        message_id = p.get_int(
            "message_id", required=True, missing="message identifier is not specified"
        )
        assert message_id is not None
        recorded = self._message_index.get((chat_id, message_id))
        if recorded is not None and not recorded.deleted:
            recorded.deleted = True
            return True
        if self._user_messages.pop((chat_id, message_id), None) is not None:
            return True
        raise bad_request("message to delete not found")

    async def _send_document(self, p: Params) -> Any:
        chat_id = p.chat_id()
        source = p.get_file("document")
        if source is None:
            raise bad_request("there is no document in the request")
        caption, caption_entities = self._caption_param(p)
        reply = self._reply_param(chat_id, p)
        markup = self._markup_param(p)
        self._check_can_send(chat_id)
        if isinstance(source, UploadedFile):
            mime = (source.content_type or "").split(";")[0].strip()
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(source.file_name)[0] or "application/octet-stream"
            stored = self._store_file(source.content, mime_type=mime, file_name=source.file_name)
        else:
            found = self._files.get(source)
            if found is None:
                if source.startswith(("http://", "https://")):
                    raise bad_request("failed to get HTTP URL content")
                raise bad_request("wrong file identifier/HTTP URL specified")
            stored = found
        extra: dict[str, Any] = {"document": stored.as_document()}
        if caption is not None:
            extra["caption"] = caption
            if caption_entities:
                extra["caption_entities"] = caption_entities
        message = self._new_message(chat_id, reply=reply, markup=markup, extra=extra)
        message.caption = caption
        message.parse_mode = p.get_str("parse_mode")
        message.document = RecordedDocument(
            file_id=stored.file_id,
            file_name=stored.file_name or "document",
            mime_type=stored.mime_type,
            content=stored.content,
        )
        return message.payload

    async def _send_invoice(self, p: Params) -> Any:
        chat_id = p.chat_id()
        title = p.get_str("title") or ""
        description = p.get_str("description") or ""
        payload_text = p.get_str("payload") or ""
        currency = p.get_str("currency") or ""
        if not 1 <= len(title) <= 32:
            raise bad_request("INVOICE_TITLE_EMPTY" if not title else "invoice title is too long")
        if not 1 <= len(description) <= 255:
            raise bad_request(
                "INVOICE_DESCRIPTION_EMPTY"
                if not description
                else "invoice description is too long"
            )
        if not 1 <= len(payload_text.encode("utf-8")) <= 128:
            raise bad_request("INVOICE_PAYLOAD_INVALID")
        if currency != "XTR":
            if not p.get_str("provider_token"):
                raise bad_request("PAYMENT_PROVIDER_INVALID")
            raise bad_request("only Telegram Stars (XTR) invoices are emulated")
        prices = p.get_json("prices")
        if (
            not isinstance(prices, list)
            or len(prices) != 1
            or not isinstance(prices[0], dict)
            or not isinstance(prices[0].get("amount"), int)
            or prices[0]["amount"] <= 0
        ):
            # Stars invoices take exactly one positive price
            raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
        total = int(prices[0]["amount"])
        markup = self._markup_param(p)
        reply = self._reply_param(chat_id, p)
        self._check_can_send(chat_id)
        invoice = {
            "title": title,
            "description": description,
            "start_parameter": p.get_str("start_parameter") or "",
            "currency": currency,
            "total_amount": total,
        }
        message = self._new_message(chat_id, reply=reply, markup=markup, extra={"invoice": invoice})
        message.invoice = {**invoice, "payload": payload_text, "prices": prices}
        return message.payload

    async def _refund_star_payment(self, p: Params) -> Any:
        charge = p.get_str("telegram_payment_charge_id") or ""
        payer = self.charges.get(charge)
        if payer is None:
            raise bad_request("CHARGE_NOT_FOUND")
        if p.get_int("user_id") != payer:
            raise bad_request("USER_ID_INVALID")
        if charge in self.refunded:
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        self.refunded.add(charge)
        return True

    async def _answer_pre_checkout_query(self, p: Params) -> Any:
        query_id = p.get_str("pre_checkout_query_id") or ""
        if query_id not in self._open_pre_checkouts:
            raise bad_request("QUERY_ID_INVALID")
        ok = p.get_bool("ok")
        error_message = p.get_str("error_message")
        if not ok and not error_message:
            raise bad_request("error_message is empty")
        self._open_pre_checkouts.discard(query_id)
        self.pre_checkout_answers[query_id] = {"ok": ok, "error_message": error_message}
        return True

    async def _answer_callback_query(self, p: Params) -> Any:
        query_id = p.get_str("callback_query_id") or ""
        if query_id not in self._open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = p.get_str("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_callbacks.discard(query_id)
        self.callback_answers[query_id] = {
            "text": text,
            "show_alert": p.get_bool("show_alert"),
            "url": p.get_str("url"),
            "cache_time": p.get_int("cache_time") or 0,
        }
        return True

    async def _send_chat_action(self, p: Params) -> Any:
        chat_id = p.chat_id()
        action = p.get_str("action")
        if not action:
            raise bad_request("action is empty")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return True

    def _member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        if user_id == self.bot_id:
            user = self._bot_user()
        else:
            user = self._users.get(user_id) or {
                "id": user_id,
                "is_bot": False,
                "first_name": f"User{user_id}",
            }
        if user_id in self._admins.get(chat_id, []):
            rights = dict.fromkeys(
                (
                    "can_manage_chat",
                    "can_delete_messages",
                    "can_manage_video_chats",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_change_info",
                    "can_invite_users",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                    "can_send_welcome_messages",
                ),
                True,
            )
            return {
                "status": "administrator",
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                **rights,
            }
        return {"status": "member", "user": user}

    async def _get_chat_member(self, p: Params) -> Any:
        chat_id = p.chat_id()
        user_id = p.get_int("user_id", required=True)
        assert user_id is not None
        if chat_id > 0 and user_id not in (chat_id, self.bot_id):
            raise bad_request("member not found")
        return self._member(chat_id, user_id)

    async def _get_chat_administrators(self, p: Params) -> Any:
        chat_id = p.chat_id()
        if chat_id > 0:
            raise bad_request("there are no administrators in the private chat")
        return [self._member(chat_id, uid) for uid in self._admins.get(chat_id, [])]

    def _commands_key(self, p: Params) -> tuple[str, str]:
        scope = p.get_json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), p.get_str("language_code") or ""

    async def _set_my_commands(self, p: Params) -> Any:
        commands = p.get_json("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand")
            if not _COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(p)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, p: Params) -> Any:
        return self.commands.get(self._commands_key(p), [])

    async def _delete_my_commands(self, p: Params) -> Any:
        self.commands.pop(self._commands_key(p), None)
        return True

    # ------------------------------------------------------------------ webhook delivery

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
                    await self._run_webhook_reply(resp)
                else:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"Connection error: {type(exc).__name__}"
            self._note_webhook_error(hook, message)
            self.webhook_deliveries.append(WebhookDelivery(update_id, 0, message, time.time()))
            return 0
        error = None
        if not 200 <= status < 300:
            error = f"Wrong response from the webhook: {status} {resp.reason or ''}".strip()
            self._note_webhook_error(hook, error)
        self.webhook_deliveries.append(WebhookDelivery(update_id, status, error, time.time()))
        return status

    @staticmethod
    def _note_webhook_error(hook: _Webhook, message: str) -> None:
        hook.last_error_date = _now()
        hook.last_error_message = message

    async def _run_webhook_reply(self, resp: aiohttp.ClientResponse) -> None:
        """Execute a Bot API method sent back in the webhook's answer, as Telegram does."""
        values: dict[str, Any]
        files: dict[str, UploadedFile] = {}
        if resp.content_type == "application/json":
            try:
                body = await resp.json()
            except ValueError:
                return
            if not isinstance(body, dict):
                return
            values = body
        elif resp.content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(resp.headers, resp.content)
            try:
                values, files = await read_multipart(reader, self._upload_limit)
            except ApiError:
                return
        else:
            await resp.read()
            return
        method = values.pop("method", None)
        if not isinstance(method, str):
            return
        params = Params(values, files)
        status, body = await self._run_method(method, params)
        self._record(method, params.recorded(), status, body)


def _unique_id() -> str:
    return "AgAD" + secrets.token_urlsafe(9)


def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
    # Telegram does not nest replies: reply_to_message has no reply_to_message of its own
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def _check_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    if not button["text"]:
        raise bad_request("BUTTON_TEXT_EMPTY")
    actions = [k for k in button if k != "text"]
    if len(actions) != 1:
        raise bad_request(
            "can't parse inline keyboard button: exactly one action field is required"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise bad_request(
            f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol"
        )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m voxmesh_dev.telegram", description="Telegram Bot API emulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--bot-username", default="voxmesh_test_bot")
    parser.add_argument("--local-mode", action="store_true", help="2000 MB file limits")
    parser.add_argument("--no-limits", action="store_true", help="do not enforce flood limits")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = BotApiEmulator(
        token=args.token,
        enforce_limits=not args.no_limits,
        local_mode=args.local_mode,
        bot_username=args.bot_username,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(await emulator.start(args.host, args.port) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the emulator standalone: print the base URL, serve until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
