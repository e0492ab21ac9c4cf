"""Fixtures: a Bot API emulator and a Zipkin collector on real sockets, aiogram pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from voxmesh_dev.telegram import BotApiEmulator
from voxmesh_dev.zipkin import ZipkinCollector

TOKEN = "123456:TEST-TOKEN"


class ManualClock:
    """A monotonic clock the test moves by hand, so flood limits never depend on timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emu = BotApiEmulator(token=TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
def clock(emulator: BotApiEmulator) -> ManualClock:
    manual = ManualClock()
    emulator.clock = manual
    return manual


BotFactory = Callable[..., Bot]


class PlainHttpSession(AiohttpSession):
    """aiogram's session minus the 250 ms close() pause, which only lets TLS connections drain."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def bot_factory() -> AsyncIterator[BotFactory]:
    """Build aiogram Bots against a base URL (token and timeout overridable); closes them."""
    made: list[Bot] = []

    def make(base_url: str, *, token: str = TOKEN, timeout: float = 10.0) -> Bot:
        session = PlainHttpSession(api=TelegramAPIServer.from_base(base_url), timeout=timeout)
        made.append(Bot(token=token, session=session))
        return made[-1]

    yield make
    for b in made:
        await b.session.close()


@pytest.fixture
def bot(emulator: BotApiEmulator, bot_factory: BotFactory) -> Bot:
    return bot_factory(emulator.base_url)


@pytest.fixture
async def collector() -> AsyncIterator[ZipkinCollector]:
    c = ZipkinCollector()
    await c.start()
    yield c
    await c.stop()
