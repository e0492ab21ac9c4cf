"""Files come over HTTP from the cloud Bot API, or from disk with a local Bot API server."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import File
from aiohttp import web

from gateway.jobs.model import Job, JobSpec, Media
from gateway.jobs.queue import JobQueue, Lease
from gateway.jobs.saga import Saga
from gateway.jobs.stream import FileTooBigError
from gateway.telegram_files import CHUNK_BYTES, TelegramFiles
from tests.gateway.fakes import RecordingSession, fake_services


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


sizes_reported: list[bool] = []


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def bot_api(get_file: Handler, download: Handler) -> AsyncIterator[str]:
    """A Bot API on a free port with getFile and one file's download; yields its base URL."""
    app = web.Application()
    app.router.add_post("/bot42:TEST/getFile", get_file)
    app.router.add_get("/file/bot42:TEST/voice/x.oga", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def endless_file_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A Bot API that reports a small file_size (or none) and then serves bytes forever."""
    sent = [0]
    sizes_reported.clear()

    async def get_file(request: web.Request) -> web.Response:
        # "lying" reports 1000 bytes; any other id no size at all.
        lie = (await request.post()).get("file_id") == "lying"
        sizes_reported.append(lie)
        result: dict[str, object] = {"file_id": "f", "file_unique_id": "u"}
        result["file_path"] = "voice/x.oga"
        if lie:
            result["file_size"] = 1000
        return web.json_response({"ok": True, "result": result})

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"\0" * (64 * 1024)
        with contextlib.suppress(ConnectionError):
            while sent[0] < 1 << 30:
                await response.write(chunk)
                sent[0] += len(chunk)
        return response

    async with bot_api(get_file, download) as base:
        yield base, sent


@pytest.mark.parametrize("file_id", ["lying", "unsized"])
async def test_downloads_are_byte_counted_and_stop_at_the_limit(
    endless_file_server: tuple[str, list[int]], file_id: str
) -> None:
    base, sent = endless_file_server
    session = AiohttpSession(api=TelegramAPIServer.from_base(base))
    bot = Bot("42:TEST", session=session)
    limit = 1 << 20
    files = TelegramFiles(bot, limit=limit, attempts=1)
    received = 0
    try:
        with pytest.raises(FileTooBigError, match="more than 1048576 bytes"):
            async for chunk in files.stream(file_id):
                received += len(chunk)
    finally:
        await session.close()
    # Only what fits the limit reached the caller, and the server was cut off
    # early: it had sent a few socket buffers more at most, not the gigabyte.
    assert received <= limit
    assert sizes_reported == [file_id == "lying"]
    await asyncio.sleep(0.2)
    assert sent[0] < 64 * limit


async def test_a_local_file_past_the_limit_stops_early(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "voice.oga"
    path.write_bytes(b"\1" * (CHUNK_BYTES * 5))
    session = RecordingSession()
    # A local Bot API server may report no size at all.
    session.results["getFile"] = File(file_id="f", file_unique_id="u", file_path=str(path))
    files = TelegramFiles(bot_with(session, local=True), limit=CHUNK_BYTES * 2)
    got: list[bytes] = []
    with pytest.raises(FileTooBigError):
        async for chunk in files.stream("f"):
            got.append(chunk)
    assert sum(map(len, got)) == CHUNK_BYTES * 2


async def test_a_download_cut_off_at_the_limit_tells_the_user_and_charges_nothing(
    endless_file_server: tuple[str, list[int]],
) -> None:
    base, _ = endless_file_server
    session = AiohttpSession(api=TelegramAPIServer.from_base(base))
    files = TelegramFiles(Bot("42:TEST", session=session), limit=1 << 20, attempts=1)
    services, billing, transcriber, notifier = fake_services()
    saga = Saga(services, files, download_limit=1 << 20, edit_interval_seconds=0.01)
    # Telegram said 1000 bytes; the bytes said otherwise.
    note = Media(kind="voice", file_id="lying", duration=11, file_size=1000)
    spec = JobSpec(user_id=1, chat_id=1, chat_type="private", message_id=5, media=note, lang="en")
    job = Job(job_id="job-1", attempt=1, spec=spec)
    lease = Lease(JobQueue(services, bot_id=42, owner="t"), job, lease_seconds=15, renew_seconds=5)

    async def attach(job_id: str, message_id: int) -> int:
        return message_id

    try:
        outcome = await saga.run(job, lease, attach)
    finally:
        await session.close()
    assert outcome.status == "failed"
    assert billing.requests("Capture") == [] and len(billing.requests("Release")) == 1
    assert notifier.requests("Edit")[-1].text == (
        "This file is larger than 1 MB, the most the bot can download. Nothing was charged."
    )
    assert sum(len(r.audio) for r in transcriber.streams[0].uploaded) <= 1 << 20


@pytest.fixture
async def failing_file_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A Bot API whose file server answers 500 to the first ``failures[0]`` downloads."""
    failures = [0]
    calls = [0]

    async def get_file(request: web.Request) -> web.Response:
        result = {"file_id": "f", "file_unique_id": "u", "file_path": "voice/x.oga"}
        return web.json_response({"ok": True, "result": result})

    async def download(request: web.Request) -> web.Response:
        calls[0] += 1
        if calls[0] <= failures[0]:
            return web.Response(status=500, text="Internal Server Error")
        return web.Response(body=b"\1" * 1000)

    async with bot_api(get_file, download) as base:
        yield base, failures


@pytest.mark.parametrize(("failures", "ok"), [(4, True), (5, False)])
async def test_a_file_server_answering_500_is_tried_five_times(
    failing_file_server: tuple[str, list[int]], failures: int, ok: bool
) -> None:
    from gateway.jobs.stream import FileUnavailableError

    base, failing = failing_file_server
    failing[0] = failures
    session = AiohttpSession(api=TelegramAPIServer.from_base(base))
    files = TelegramFiles(Bot("42:TEST", session=session), limit=1 << 20, backoff=0.01)
    try:
        if ok:
            assert b"".join([c async for c in files.stream("f")]) == b"\1" * 1000
        else:
            # Past its own tries, a transient failure says the job may try again later.
            with pytest.raises(FileUnavailableError, match="after 5 tries"):
                async for _ in files.stream("f"):
                    pass
    finally:
        await session.close()
