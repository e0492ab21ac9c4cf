"""Files come over HTTP from the cloud Bot API, or from disk with a local Bot API server."""

from __future__ import annotations

import pathlib

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import File

from gateway.jobs.stream import FileTooBigError
from gateway.telegram_files import CHUNK_BYTES, TelegramFiles
from tests.gateway.fakes import RecordingSession


def bot_with(session: RecordingSession, *, local: bool) -> Bot:
    session.api = TelegramAPIServer.from_base("http://127.0.0.1:1", is_local=local)
    return Bot("42:TEST", session=session)


async def test_local_bot_api_files_are_read_from_disk(tmp_path: pathlib.Path) -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 128 + 3)
    path = tmp_path / "voice.oga"
    path.write_bytes(data)
    session = RecordingSession()
    session.results["getFile"] = File(
        file_id="f", file_unique_id="u", file_size=len(data), file_path=str(path)
    )
    files = TelegramFiles(bot_with(session, local=True), limit=2000 << 20)
    chunks = [chunk async for chunk in files.stream("f")]
    assert b"".join(chunks) == data and len(chunks) == 3


async def test_a_file_over_the_limit_is_refused(tmp_path: pathlib.Path) -> None:
    session = RecordingSession()
    session.results["getFile"] = File(
        file_id="f", file_unique_id="u", file_size=21 << 20, file_path="voice/x.oga"
    )
    files = TelegramFiles(bot_with(session, local=False), limit=20 << 20)
    with pytest.raises(FileTooBigError):
        async for _ in files.stream("f"):
            pass
