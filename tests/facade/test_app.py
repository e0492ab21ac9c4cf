"""The facade without a model: settings, validation, auth, health, a transcriber that is down."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from facade.config import FacadeSettings, parse_api_keys
from facade.errors import ApiError
from facade.upload import parse
from tests.facade.conftest import API_KEY, FacadeFactory
from tests.transcriber.conftest import REPO_ROOT, ServerFactory, chunks
from transcriber.v1 import transcriber_pb2 as pb
from voxmesh.config import ConfigError
from voxmesh.errors import (
    STATUS_DETAILS_KEY,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)


def test_api_keys_map_keys_to_identities() -> None:
    keys = parse_api_keys("K", "team-a:sk-aaaaaaaaaaaaaaaa, team-b:sk-bbbbbbbbbbbbbbbb")
    assert keys == {"sk-aaaaaaaaaaaaaaaa": "team-a", "sk-bbbbbbbbbbbbbbbb": "team-b"}
    assert parse_api_keys("K", "") == {}
    with pytest.raises(ConfigError, match="not identity:key"):
        parse_api_keys("K", "team-a")
    with pytest.raises(ConfigError, match="shorter than 16"):
        parse_api_keys("K", "team-a:short")
    with pytest.raises(ConfigError, match="share a key"):
        parse_api_keys("K", "a:sk-aaaaaaaaaaaaaaaa,b:sk-aaaaaaaaaaaaaaaa")


def test_keys_are_required_off_loopback() -> None:
    with pytest.raises(ConfigError, match="FACADE_API_KEYS is required"):
        FacadeSettings.from_env({"FACADE_HTTP_ADDR": "0.0.0.0:8090"})
    settings = FacadeSettings.from_env(
        {"FACADE_HTTP_ADDR": "0.0.0.0:8090", "FACADE_API_KEYS": "a:sk-aaaaaaaaaaaaaaaa"}
    )
    assert settings.api_keys == {"sk-aaaaaaaaaaaaaaaa": "a"}
    local = FacadeSettings.from_env({})
    assert (local.http_addr, local.transcriber_target) == ("127.0.0.1:8090", "127.0.0.1:50052")
    assert local.max_upload_bytes == 25 * 1024 * 1024
    with pytest.raises(ConfigError, match="FACADE_REQUEST_TIMEOUT_SECONDS"):
        FacadeSettings.from_env({"FACADE_REQUEST_TIMEOUT_SECONDS": "0"})


def test_parse_takes_openai_fields_and_ignores_unknown_ones() -> None:
    req = parse(
        "transcribe",
        {
            "model": ["whisper-1"],
            "language": ["RU"],
            "prompt": ["Имена: Иван"],
            "response_format": ["verbose_json"],
            "temperature": ["0.2"],
            "timestamp_granularities[]": ["word", "segment"],
            "chunking_strategy": ["auto"],
        },
        b"audio",
        "a.ogg",
    )
    assert (req.model, req.language, req.response_format) == ("whisper-1", "ru", "verbose_json")
    assert req.temperature == pytest.approx(0.2)
    assert req.granularities == {"word", "segment"}
    translated = parse("translate", {"model": ["base"], "language": ["ru"]}, b"a", "a.ogg")
    assert translated.language == ""  # translations take no language, as OpenAI's
    with pytest.raises(ApiError) as missing:
        parse("transcribe", {}, b"a", "a.ogg")
    assert (missing.value.status, missing.value.param) == (400, "model")
    with pytest.raises(ApiError) as granularity:
        parse(
            "transcribe",
            {"model": ["x"], "timestamp_granularities[]": ["char"]},
            b"a",
            "a.ogg",
        )
    assert granularity.value.param == "timestamp_granularities"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_auth_and_a_transcriber_that_is_down(start_facade: FacadeFactory) -> None:
    fac = await start_facade(f"127.0.0.1:{_free_port()}")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fac.url}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{fac.url}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.text()) == "transcriber unavailable"
        async with http.get(f"{fac.url}/v1/models") as resp:
            assert resp.status == 401
            body = await resp.json()
            assert body["error"]["code"] == "invalid_api_key"
            assert resp.headers["x-request-id"] == body["error"]["trace_id"]
        async with http.get(f"{fac.url}/v1/models", headers=auth) as resp:
            assert resp.status == 503
            error = (await resp.json())["error"]
            assert (error["type"], error["code"]) == ("server_error", "unavailable")
        async with http.get(f"{fac.url}/v1/nothing", headers=auth) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
        fac.facade.draining = True
        async with http.get(f"{fac.url}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.text()) == "draining"


@pytest.mark.slow
async def test_a_caller_that_hangs_up_stops_the_transcription(
    start_server: ServerFactory, start_facade: FacadeFactory
) -> None:
    """The upload is answered only when the transcript is done; leaving early must free the
    transcriber's slot at once, not after the whole file."""
    srv = await start_server()
    fac = await start_facade(srv.target)
    long_clip = (REPO_ROOT / "tests" / "data" / "ru_paragraph.ogg").read_bytes()
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", "base")
    form.add_field("file", io.BytesIO(long_clip), filename="ru.ogg", content_type="audio/ogg")
    async with aiohttp.ClientSession() as http:
        request = asyncio.ensure_future(
            http.post(
                f"{fac.url}/v1/audio/transcriptions",
                data=form,
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
        )
        admission = srv.service.admission
        for _ in range(200):
            if admission.active:
                break
            await asyncio.sleep(0.05)
        assert admission.active == 1
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request
    for _ in range(100):
        if not admission.active:
            break
        await asyncio.sleep(0.05)
    assert admission.active == 0


async def test_an_upload_that_waited_in_the_queue_still_fails_as_an_error_response(
    start_server: ServerFactory, start_facade: FacadeFactory, audio_dir: Path
) -> None:
    """The transcriber's queued events are no SSE: a stream that waits for a slot, then
    fails, is an ordinary 4xx, as it is when the slot is free."""
    srv = await start_server(max_active_streams=1, max_queued_streams=1)
    fac = await start_facade(srv.target)
    jfk = (audio_dir / "jfk.flac").read_bytes()

    async def hold_the_slot() -> AsyncIterator[pb.TranscribeRequest]:
        yield pb.TranscribeRequest(config=pb.TranscriptionConfig())
        for piece in chunks(jfk):
            yield pb.TranscribeRequest(audio=piece)
        await asyncio.Event().wait()

    busy = srv.stub.Transcribe(hold_the_slot(), timeout=60)
    first = await busy.read()
    assert isinstance(first, pb.TranscribeResponse) and first.WhichOneof("event") == "audio"
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", "whisper-1")
    form.add_field("stream", "true")
    form.add_field("file", b"not audio at all" * 64, filename="notes.ogg")
    admission = srv.service.admission
    async with aiohttp.ClientSession() as http:
        post = asyncio.ensure_future(
            http.post(
                f"{fac.url}/v1/audio/transcriptions",
                data=form,
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
        )
        for _ in range(200):
            if admission.queued:
                break
            await asyncio.sleep(0.05)
        assert admission.queued == 1
        busy.cancel()  # the slot frees; the queued upload runs and fails
        async with await post as resp:
            assert resp.status == 400, await resp.text()
            error = (await resp.json())["error"]
    assert (error["param"], error["code"]) == ("file", "audio_corrupt")


def _rpc_error(err: ServiceError) -> grpc.aio.AioRpcError:
    status = err.to_status("transcriber.voxmesh", "ab" * 16)
    return grpc.aio.AioRpcError(
        err.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, status.SerializeToString())),
        details=err.message,
    )


@pytest.mark.parametrize(
    ("err", "status", "kind", "code", "param", "retry_after"),
    [
        (
            InvalidArgument("not audio", reason="AUDIO_CORRUPT"),
            400,
            "invalid_request_error",
            "audio_corrupt",
            "file",
            None,
        ),
        (
            ResourceExhausted("busy", reason="OVERLOADED", retry_after=2.4),
            429,
            "rate_limit_error",
            "overloaded",
            None,
            "2",
        ),
        (Unavailable("draining"), 503, "server_error", "dependency_unavailable", None, None),
        (DeadlineExceeded("too slow"), 504, "server_error", "deadline_too_short", None, None),
        (Internal("reference ab"), 500, "server_error", "internal", None, None),
    ],
)
def test_transcriber_statuses_map_to_openai_errors(
    err: ServiceError,
    status: int,
    kind: str,
    code: str,
    param: str | None,
    retry_after: str | None,
) -> None:
    api = ApiError.from_rpc(_rpc_error(err))
    response = api.response("ab" * 16)
    assert response.status == status
    assert response.headers.get("Retry-After") == retry_after
    assert response.headers["x-request-id"] == "ab" * 16
    assert api.body("ab" * 16) == {
        "error": {
            "message": err.message,
            "type": kind,
            "param": param,
            "code": code,
            "trace_id": "ab" * 16,
        }
    }
