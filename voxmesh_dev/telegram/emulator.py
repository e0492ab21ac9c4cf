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
    refundStarPayment, answerCallbackQuery, sendChatAction, getChatMember,
    getChatAdministrators, setMyCommands, getMyCommands, deleteMyCommands.
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

How it is built: :class:`BotApiEmulator` only wires the parts and is what tests hold. The
parts: the records (:mod:`~voxmesh_dev.telegram.state`), the update queue and its delivery
(:mod:`~voxmesh_dev.telegram.delivery`), the method groups (``methods_messages``,
``methods_files``, ``methods_payments``, ``methods_bot``) over what all sends share
(:mod:`~voxmesh_dev.telegram.outgoing`), the ``make_*_update`` builders
(:mod:`~voxmesh_dev.telegram.factories`), the HTTP front (:mod:`~voxmesh_dev.telegram.dispatch`)
and injected faults (:mod:`~voxmesh_dev.telegram.faults`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from voxmesh.http import serve_http
from voxmesh_dev.telegram.client import EmulatorClient
from voxmesh_dev.telegram.control import ControlApi
from voxmesh_dev.telegram.delivery import UpdateDelivery, WebhookDelivery
from voxmesh_dev.telegram.dispatch import Dispatcher
from voxmesh_dev.telegram.factories import UpdateFactory
from voxmesh_dev.telegram.faults import FaultPolicy
from voxmesh_dev.telegram.limits import RateLimiter, RateLimits
from voxmesh_dev.telegram.methods_bot import BotMethods
from voxmesh_dev.telegram.methods_files import FileMethods
from voxmesh_dev.telegram.methods_messages import MessageMethods
from voxmesh_dev.telegram.methods_payments import PaymentMethods
from voxmesh_dev.telegram.outgoing import Outbox
from voxmesh_dev.telegram.records import RecordedCall, RecordedDocument, RecordedMessage
from voxmesh_dev.telegram.state import MB, BotState

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


class BotApiEmulator(UpdateFactory):
    """An in-process Telegram Bot API server for tests; see the module docstring for scope.

    Everything but :meth:`start`, :meth:`stop`, :meth:`wait_for` and :meth:`redeliver` is
    synchronous and must run on the event loop's thread (the server shares that loop).
    The ``make_*_update`` builders come from :class:`UpdateFactory`.
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
        self.base_url = ""
        self.state = BotState(bot_id=int(bot_id), bot_username=bot_username, local_mode=local_mode)
        super().__init__(self.state)
        self.limits = RateLimits(enabled=enforce_limits)
        # A test may swap the clock the flood limits read (see _now_monotonic).
        self.clock: Callable[[], float] = time.monotonic
        self._limiter = RateLimiter(self.limits, self._now_monotonic)
        # Set by stop(): ends long polls, hung requests and webhook retries at once.
        self._closing = asyncio.Event()
        self._dispatch = Dispatcher(token=token, state=self.state, closing=self._closing)
        self._updates = UpdateDelivery(self._closing, on_reply=self._dispatch.run_webhook_reply)
        outbox = Outbox(self.state, self._limiter)
        self._dispatch.methods = {
            **self._updates.handlers(),
            **MessageMethods(self.state, outbox).handlers(),
            **FileMethods(self.state, outbox).handlers(),
            **PaymentMethods(self.state, outbox).handlers(),
            **BotMethods(self.state).handlers(),
        }
        self._runner: web.AppRunner | None = None

    def _now_monotonic(self) -> float:
        # late-bound so a test can swap self.clock after construction
        return self.clock()

    # ------------------------------------------------------------------ lifecycle

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * MB)
        self._dispatch.register(app.router)
        ControlApi(self).register(app.router)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); return the base URL."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._closing.clear()
        runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=1.0)
        bound = await serve_http(runner, host, port)
        self._runner = runner
        self.base_url = f"http://{host}:{bound}"
        log.info("bot api emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Release long polls and hung requests, stop webhook delivery, close the server."""
        self._closing.set()
        await self._updates.stop()
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
        return self.state.store_file(content, mime_type=mime_type, file_name=file_name).file_id

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates or the webhook; assigns update_id if missing."""
        queued = self._updates.push(update)
        # No await between queueing and noting: no reader sees one without the other.
        self.state.note_update(queued)
        return int(queued["update_id"])

    def messages(self, chat_id: int) -> list[RecordedMessage]:
        """Messages the bot sent to chat_id, in order (deleted ones included, flagged)."""
        return list(self.state.messages.get(chat_id, []))

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Every request answered so far, optionally only one method's (case-insensitive)."""
        if method is None:
            return list(self.state.calls)
        return [c for c in self.state.calls if c.method.lower() == method.lower()]

    def set_chat_admins(self, chat_id: int, user_ids: list[int]) -> None:
        """Make these users the chat's administrators (getChatMember, getChatAdministrators)."""
        self.state.admins[chat_id] = list(user_ids)

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """Sends to this chat answer 403, as when the user blocked the bot."""
        if blocked:
            self.state.blocked.add(chat_id)
        else:
            self.state.blocked.discard(chat_id)

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
        return await self._updates.redeliver(update_id)

    # ------------------------------------------------------------------ what tests read and set
    # The parts own these; the properties keep the names tests have always used.

    @property
    def faults(self) -> FaultPolicy:
        """The failures to inject; assign a new :class:`FaultPolicy` to change them."""
        return self._dispatch.faults

    @faults.setter
    def faults(self, policy: FaultPolicy) -> None:
        self._dispatch.faults = policy

    @property
    def bot_id(self) -> int:
        return self.state.bot_id

    @property
    def bot_username(self) -> str:
        return self.state.bot_username

    @property
    def local_mode(self) -> bool:
        return self.state.local_mode

    @local_mode.setter
    def local_mode(self, value: bool) -> None:
        self.state.local_mode = value

    @property
    def webhook_timeout(self) -> float:
        return self._updates.webhook_timeout

    @webhook_timeout.setter
    def webhook_timeout(self, seconds: float) -> None:
        self._updates.webhook_timeout = seconds

    @property
    def webhook_retry_delay(self) -> float:
        return self._updates.webhook_retry_delay

    @webhook_retry_delay.setter
    def webhook_retry_delay(self, seconds: float) -> None:
        self._updates.webhook_retry_delay = seconds

    @property
    def webhook_max_retry_delay(self) -> float:
        return self._updates.webhook_max_retry_delay

    @webhook_max_retry_delay.setter
    def webhook_max_retry_delay(self, seconds: float) -> None:
        self._updates.webhook_max_retry_delay = seconds

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        return self._updates.deliveries

    @property
    def callback_answers(self) -> dict[str, dict[str, Any]]:
        return self.state.callback_answers

    @property
    def pre_checkout_answers(self) -> dict[str, dict[str, Any]]:
        return self.state.pre_checkout_answers

    @property
    def charges(self) -> dict[str, int]:
        """Stars payments made: charge id -> payer."""
        return self.state.charges

    @property
    def refunded(self) -> set[str]:
        return self.state.refunded

    @property
    def commands(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """setMyCommands' lists by (scope as JSON, language code)."""
        return self.state.commands

    @property
    def blocked(self) -> set[int]:
        return self.state.blocked


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
