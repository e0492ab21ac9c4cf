"""Long polling that acknowledges an update only once it was handled, against the
Bot API emulator over real HTTP (its getUpdates confirms by offset as Telegram does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

from gateway.polling import AckPolling, NotAcceptedError
from voxmesh_dev.telegram import BotApiEmulator, FaultPolicy

TOKEN = "4242:POLLING-TEST"


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    emulator = BotApiEmulator(token=TOKEN)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    b = Bot(TOKEN, session=session)
    yield b
    await session.close()


def dispatcher(handled: list[str], refuse: dict[str, int]) -> Dispatcher:
    """Records each message's text; refuses (not accepted) the first N tries of some."""
    dp = Dispatcher()

    async def on_message(message: Message) -> None:
        text = message.text or ""
        if refuse.get(text, 0) > 0:
            refuse[text] -= 1
            raise NotAcceptedError("billing unreachable")
        handled.append(text)

    dp.message.register(on_message)
    return dp


async def run_until(poller: AckPolling, done: Any, timeout: float = 20) -> None:
    task = asyncio.create_task(poller.run())
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not done():
            assert loop.time() < end, "timed out"
            await asyncio.sleep(0.05)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 15)


async def test_an_update_that_was_not_accepted_stays_with_telegram_and_comes_again(
    emu: BotApiEmulator, bot: Bot
) -> None:
    handled: list[str] = []
    refuse = {"second": 2}
    for text in ("first", "second", "third"):
        emu.push_update(emu.make_message_update(chat_id=1, user_id=1, text=text))
    poller = AckPolling(dispatcher(handled, refuse), bot, allowed_updates=["message"], timeout=1)
    await run_until(poller, lambda: "second" in handled)
    # Refused twice (billing down), handled on the third try; the others once each.
    assert sorted(handled) == ["first", "second", "third"] and refuse == {"second": 0}
    # Everything handled was confirmed at the stop: a new process sees none of it again.
    again: list[str] = []
    poller = AckPolling(dispatcher(again, {}), bot, allowed_updates=["message"], timeout=1)
    emu.push_update(emu.make_message_update(chat_id=1, user_id=1, text="fourth"))
    await run_until(poller, lambda: "fourth" in again)
    assert again == ["fourth"]


async def test_a_crash_before_handling_loses_nothing(emu: BotApiEmulator, bot: Bot) -> None:
    """An update fetched but not handled when the process died is handed out again."""
    started = asyncio.Event()
    block = asyncio.Event()
    dp = Dispatcher()

    async def slow(message: Message) -> None:
        started.set()
        await block.wait()  # never: the process "dies" mid-handling

    dp.message.register(slow)
    emu.push_update(emu.make_message_update(chat_id=1, user_id=1, text="note"))
    poller = AckPolling(dp, bot, allowed_updates=["message"], timeout=1)
    task = asyncio.create_task(poller.run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()  # SIGKILL, as far as Telegram can tell: no confirmation follows
    with pytest.raises(asyncio.CancelledError):
        await task
    handled: list[str] = []
    poller = AckPolling(dispatcher(handled, {}), bot, allowed_updates=["message"], timeout=1)
    await run_until(poller, lambda: handled == ["note"])


async def test_polling_outlives_429s_and_5xx_on_get_updates(emu: BotApiEmulator, bot: Bot) -> None:
    handled: list[str] = []
    emu.faults = FaultPolicy(
        rate_429=0.3, retry_after=1, rate_500=0.2, seed=7, methods=frozenset({"getUpdates"})
    )
    emu.push_update(emu.make_message_update(chat_id=1, user_id=1, text="through"))
    poller = AckPolling(dispatcher(handled, {}), bot, allowed_updates=["message"], timeout=1)
    await run_until(poller, lambda: handled == ["through"], timeout=40)
    assert sum(1 for c in emu.calls("getUpdates") if c.fault) >= 1
