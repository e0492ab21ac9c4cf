"""The emulator's update ids never repeat across runs, as Telegram's never do."""

from __future__ import annotations

import aiohttp

from voxmesh_dev.telegram import BotApiEmulator

TOKEN = "123456:TEST-TOKEN-ids"


async def _run_once() -> list[int]:
    """One emulator run: two updates, read back by a bot through getUpdates."""
    emu = BotApiEmulator(token=TOKEN)
    base = await emu.start()
    try:
        for text in ("a", "b"):
            emu.push_update(emu.make_message_update(chat_id=7, user_id=7, text=text))
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{base}/bot{TOKEN}/getUpdates", json={"timeout": 0}) as resp,
        ):
            body = await resp.json()
        return [u["update_id"] for u in body["result"]]
    finally:
        await emu.stop()


async def test_a_second_run_continues_above_the_first() -> None:
    # A bot that persisted its de-duplication keys (Redis in .state/) between the
    # two runs must see every update of the second as new.
    first = await _run_once()
    second = await _run_once()
    assert len(first) == 2 and len(second) == 2
    assert first[1] == first[0] + 1 and second[1] == second[0] + 1
    assert min(second) > max(first)
