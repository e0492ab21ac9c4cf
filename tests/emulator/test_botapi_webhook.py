"""Webhook delivery: the emulator POSTs updates to a real aiohttp server, aiogram's included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from voxmesh_dev.telegram import BotApiEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_delivery_carries_secret_and_retries_until_2xx(
    bot: Bot, emulator: BotApiEmulator, serve: Any
) -> None:
    emulator.webhook_retry_delay = 0.05
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.StreamResponse:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=500 if len(received) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    url = await serve(app)
    assert await bot.set_webhook(url, secret_token="s3cret_token-1")
    update_id = emulator.push_update(emulator.make_message_update(chat_id=3, user_id=3, text="a"))
    await emulator.wait_for(lambda: len(received) == 2, timeout=5)
    assert [secret for secret, _ in received] == ["s3cret_token-1", "s3cret_token-1"]
    assert [body["update_id"] for _, body in received] == [update_id, update_id]
    assert [d.status for d in emulator.webhook_deliveries] == [500, 200]
    info = await bot.get_webhook_info()
    assert info.url == url
    assert info.pending_update_count == 0
    assert info.last_error_message is not None and "500" in info.last_error_message
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates(timeout=0)
    # tests can force a duplicate delivery, as Telegram does after a lost answer
    assert await emulator.redeliver(update_id) == 200
    assert [body["update_id"] for _, body in received] == [update_id] * 3
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_aiogram_webhook_reply_method_is_executed(
    bot: Bot, emulator: BotApiEmulator, serve: Any
) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> SendMessage:
        # returned, not awaited: aiogram answers the webhook with the method as multipart
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="right", handle_in_background=False).register(
        app, path="/hook"
    )
    url = await serve(app)
    await bot.set_webhook(url, secret_token="right")
    emulator.push_update(emulator.make_message_update(chat_id=4, user_id=4, text="ping"))
    await emulator.wait_for(lambda: bool(emulator.messages(4)), timeout=5)
    assert emulator.messages(4)[0].text == "echo: ping"
    assert emulator.webhook_deliveries[-1].status == 200


async def test_wrong_secret_is_refused_and_retried(
    bot: Bot, emulator: BotApiEmulator, serve: Any
) -> None:
    emulator.webhook_retry_delay = 0.05
    dp = Dispatcher()
    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="expected").register(app, path="/hook")
    url = await serve(app)
    await bot.set_webhook(url, secret_token="different")
    emulator.push_update(emulator.make_message_update(chat_id=5, user_id=5, text="x"))
    await emulator.wait_for(lambda: len(emulator.webhook_deliveries) >= 2, timeout=5)
    assert {d.status for d in emulator.webhook_deliveries} == {401}
    assert (await bot.get_webhook_info()).pending_update_count == 1


async def test_aiogram_long_polling_dispatcher(bot: Bot, emulator: BotApiEmulator) -> None:
    """The path the gateway takes by default: Dispatcher.start_polling against the emulator."""
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"got {message.text}")

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    try:
        emulator.push_update(emulator.make_message_update(chat_id=6, user_id=6, text="one"))
        await emulator.wait_for(lambda: bool(emulator.messages(6)), timeout=5)
        assert emulator.messages(6)[0].text == "got one"
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, timeout=5)
    assert [c.status for c in emulator.calls("sendMessage")] == [200]
    assert all(c.error_code is None for c in emulator.calls("getUpdates"))
