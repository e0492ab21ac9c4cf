"""The HTTP control API and EmulatorClient, and the emulator run as its own process."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramServerError
from aiogram.types import BufferedInputFile

from voxmesh_dev.telegram import BotApiEmulator, EmulatorClient, FaultPolicy


@pytest.fixture
async def client(emulator: BotApiEmulator) -> Any:
    async with EmulatorClient(emulator.base_url) as c:
        yield c


async def test_client_pushes_a_voice_note_the_bot_downloads(
    bot: Bot, client: EmulatorClient
) -> None:
    audio = b"OggS\x00fake-opus" * 50
    file_id = await client.add_file(audio, mime_type="audio/ogg", file_name="note.ogg")
    update_id = await client.push("voice", chat_id=5, user_id=5, file_id=file_id, duration=4)
    [update] = await bot.get_updates(timeout=0)
    assert update.update_id == update_id
    assert update.message is not None and update.message.voice is not None
    assert update.message.voice.file_id == file_id
    file = await bot.get_file(file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == audio


async def test_client_reads_messages_and_calls(bot: Bot, client: EmulatorClient) -> None:
    await bot.send_document(6, BufferedInputFile(b"long text", filename="t.txt"), caption="c")
    [message] = await client.messages(6)
    assert message.document is not None
    assert message.document.content == b"long text"
    assert message.caption == "c"
    calls = await client.calls("sendDocument")
    assert [c.status for c in calls] == [200]
    assert await client.calls("getMe") == []


async def test_client_sets_faults_and_admins(bot: Bot, client: EmulatorClient) -> None:
    await client.set_faults(FaultPolicy(rate_500=1.0, methods=frozenset({"sendMessage"})))
    with pytest.raises(TelegramServerError):
        await bot.send_message(7, "x")
    await client.set_faults(FaultPolicy())
    await bot.send_message(7, "y")
    await client.set_chat_admins(-7, [70])
    assert (await bot.get_chat_member(-7, 70)).status == "administrator"
    pushed = await client.push("text", chat_id=7, user_id=7, text="/start")
    assert pushed > 0


async def test_bad_fault_policy_is_rejected(emulator: BotApiEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.base_url}/_emulator/faults"
        async with http.post(url, json={"rate_500": 2.0}) as resp:
            assert resp.status == 400
        async with http.post(url, json={"nonsense": 1}) as resp:
            assert resp.status == 400


async def test_standalone_process_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxmesh_dev.telegram",
        "--port",
        "0",
        "--token",
        "42:ABC",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
        base_url = line.decode().strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base_url}/bot42:ABC/getMe") as resp:
                body = await resp.json()
        assert body["ok"] is True and body["result"]["id"] == 42
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_plain_http_encodings(emulator: BotApiEmulator) -> None:
    """GET with a query, JSON and urlencoded bodies all work, as on Telegram."""
    base = f"{emulator.base_url}/bot{emulator.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/sendMessage", params={"chat_id": "1", "text": "q"}) as r:
            assert (await r.json())["result"]["text"] == "q"
        async with http.post(f"{base}/sendMessage", json={"chat_id": 2, "text": "j"}) as r:
            assert (await r.json())["result"]["chat"]["id"] == 2
        async with http.post(f"{base}/sendMessage", data={"chat_id": "3", "text": "f"}) as r:
            assert (await r.json())["result"]["text"] == "f"
        async with http.post(f"{base}/sendMessage", json={"chat_id": 4}) as r:
            assert r.status == 400
            assert await r.json() == {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: message text is empty",
            }
