"""OpenAI's own Python SDK, pointed at the facade by base_url, against a real transcriber.

Every response format, streaming, a translation with the multilingual model,
and the error shape of bad requests. The English clip goes through
``whisper-1`` (the transcriber's default model, whichever it is); the Russian
one names ``base``, the multilingual model that ships with the project.
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.facade.conftest import API_KEY, OTHER_KEY, FacadeFactory
from tests.helpers import readme_block
from tests.transcriber.conftest import REPO_ROOT, ServerFactory, wer
from tests.transcriber.test_russian import cer
from voxmesh.audiofiles import encode

pytestmark = pytest.mark.slow

RU_CLIP = REPO_ROOT / "tests" / "data" / "ru_paragraph.ogg"
RU_TEXT = (REPO_ROOT / "tests" / "data" / "ru_paragraph.txt").read_text(encoding="utf-8")
SRT_CUE = re.compile(r"^\d+\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n.+", re.M)
VTT_CUE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n.+", re.M)


def _cue_text(subtitles: str) -> str:
    lines = [ln for ln in subtitles.splitlines() if ln and "-->" not in ln and not ln.isdigit()]
    return " ".join(ln for ln in lines if ln != "WEBVTT")


@dataclass(frozen=True)
class Clip:
    path: Path
    model: str
    language: str
    language_name: str
    seconds: float
    reference: str
    error: Callable[[str, str], float]
    bound: float


def _clip(name: str, audio_dir: Path, transcripts: dict[str, Any]) -> Clip:
    if name == "jfk":
        reference = transcripts["jfk.flac"]["text"]
        return Clip(audio_dir / "jfk.flac", "whisper-1", "en", "english", 11.0, reference, wer, 0.1)
    # Russian needs the multilingual model, named; whisper-1 is whatever the default is.
    return Clip(RU_CLIP, "base", "ru", "russian", 65.6, RU_TEXT, cer, 0.12)


@pytest.mark.parametrize("name", ["jfk", "ru_paragraph"])
async def test_every_response_format_through_the_sdk(
    name: str,
    start_server: ServerFactory,
    start_facade: FacadeFactory,
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    clip = _clip(name, audio_dir, transcripts)
    srv = await start_server()
    fac = await start_facade(srv.target)

    def close(text: str) -> bool:
        return clip.error(clip.reference, text) <= clip.bound

    async with fac.client() as client:
        create = client.audio.transcriptions.create
        plain = await create(model=clip.model, file=clip.path)
        assert close(plain.text), plain.text
        assert plain.usage is not None
        assert plain.usage.seconds == pytest.approx(clip.seconds, abs=1.0)

        text = await create(model=clip.model, file=clip.path, response_format="text")
        assert isinstance(text, str) and close(text), text

        srt = await create(model=clip.model, file=clip.path, response_format="srt")
        assert SRT_CUE.search(srt) and close(_cue_text(srt)), srt

        vtt = await create(model=clip.model, file=clip.path, response_format="vtt")
        assert vtt.startswith("WEBVTT") and VTT_CUE.search(vtt), vtt
        assert close(_cue_text(vtt)), vtt

        verbose = await create(
            model=clip.model,
            file=clip.path,
            response_format="verbose_json",
            timestamp_granularities=["segment", "word"],
            language=clip.language,
            prompt="A speech." if clip.language == "en" else "Прогноз погоды.",
            temperature=0.0,
        )
    assert verbose.language == clip.language_name
    assert verbose.duration == pytest.approx(clip.seconds, abs=1.0)
    assert close(verbose.text), verbose.text
    assert verbose.segments and verbose.words
    starts = [s.start for s in verbose.segments]
    assert starts == sorted(starts) and verbose.segments[-1].end <= verbose.duration + 0.1
    assert close(" ".join(w.word for w in verbose.words))


async def test_the_readmes_curl_line_works(
    start_server: ServerFactory,
    start_facade: FacadeFactory,
    audio_dir: Path,
    transcripts: dict[str, Any],
    tmp_path: Path,
) -> None:
    block = readme_block("curl -s")
    srv = await start_server()
    fac = await start_facade(srv.target)
    (tmp_path / "talk.mp3").write_bytes(
        encode(audio_dir / "jfk.flac", container="mp3", codec="mp3", rate=44100)
    )
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        block.replace("http://127.0.0.1:8090", fac.url),
        cwd=tmp_path,
        env={**os.environ, "KEY": API_KEY},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    srt = out.decode()
    assert SRT_CUE.search(srt), srt
    assert wer(transcripts["jfk.flac"]["text"], _cue_text(srt)) <= 0.1, srt


async def test_stream_true_sends_segments_as_server_sent_events(
    start_server: ServerFactory,
    start_facade: FacadeFactory,
    audio_dir: Path,
    transcripts: dict[str, Any],
) -> None:
    srv = await start_server()
    fac = await start_facade(srv.target)
    async with fac.client() as client:
        stream = await client.audio.transcriptions.create(
            model="whisper-1", file=audio_dir / "jfk.flac", stream=True
        )
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[-1] == "transcript.text.done"
    segments = [e for e in events if e.type == "transcript.text.segment"]
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    assert segments and len(segments) == len(deltas)
    assert [float(s.start) for s in segments] == sorted(float(s.start) for s in segments)
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas).strip() == done.text
    assert wer(transcripts["jfk.flac"]["text"], done.text) <= 0.1


async def test_a_russian_clip_translated_with_the_multilingual_model(
    start_server: ServerFactory, start_facade: FacadeFactory
) -> None:
    srv = await start_server()
    fac = await start_facade(srv.target)
    async with fac.client() as client:
        models = await client.models.list()
        assert {"whisper-1", "base"} <= {m.id for m in models.data}
        with warnings.catch_warnings():
            # The SDK marks its translations endpoint deprecated; it is still OpenAI's API.
            warnings.simplefilter("ignore", DeprecationWarning)
            english = await client.audio.translations.create(model="base", file=RU_CLIP)
    text = english.text.lower()
    assert not re.search(r"[а-яё]", text), text
    expected = {"morning", "city", "library", "bread", "newspapers", "bridge", "park", "tea"}
    assert len({w for w in expected if w in text}) >= 5, text


async def test_bad_uploads_get_openai_error_shape_with_a_4xx(
    start_server: ServerFactory, start_facade: FacadeFactory, audio_dir: Path
) -> None:
    srv = await start_server()
    fac = await start_facade(srv.target)
    clip = audio_dir / "jfk.flac"
    async with fac.client() as client:
        cases: list[tuple[dict[str, Any], int, str | None, str]] = [
            (
                {"model": "whisper-1", "file": ("notes.ogg", b"not audio at all" * 64)},
                400,
                "file",
                "audio",
            ),
            ({"model": "whisper-1", "file": ("empty.ogg", b"")}, 400, "file", "empty_file"),
            ({"model": "whisper-9", "file": clip}, 404, "model", "model_not_found"),
            (
                {"model": "whisper-1", "file": clip, "response_format": "xml"},
                400,
                "response_format",
                "invalid_value",
            ),
            (
                {"model": "whisper-1", "file": clip, "temperature": 3.0},
                400,
                "temperature",
                "invalid_value",
            ),
            (
                {"model": "whisper-1", "file": clip, "language": "English"},
                400,
                "language",
                "invalid_value",
            ),
            (
                {"model": "whisper-1", "file": clip, "response_format": "srt", "stream": True},
                400,
                "stream",
                "invalid_value",
            ),
        ]
        for kwargs, status, param, code in cases:
            with pytest.raises(openai.APIStatusError) as info:
                await client.audio.transcriptions.create(**kwargs)
            err = info.value
            assert err.status_code == status, (kwargs, err.body)
            body = err.body
            assert isinstance(body, dict) and set(body) >= {"message", "type", "param", "code"}
            assert body["type"] == "invalid_request_error"
            assert body["param"] == param, body
            assert str(body["code"]).startswith(code), body
            assert body["message"], body
            # The reference: the trace id, in the body and as the SDK's request id.
            assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"]), body
            assert err.request_id == body["trace_id"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(openai.BadRequestError) as english_only:
                await client.audio.translations.create(model="tiny.en", file=clip)
        assert english_only.value.body["code"] == "model_not_multilingual"  # type: ignore[index]

    async with fac.client(api_key="sk-wrong-000000000000000") as stranger:
        with pytest.raises(openai.AuthenticationError) as denied:
            await stranger.audio.transcriptions.create(model="whisper-1", file=clip)
    assert denied.value.body["code"] == "invalid_api_key"  # type: ignore[index]

    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {OTHER_KEY}"}
        async with http.post(
            f"{fac.url}/v1/audio/transcriptions", data=b"{}", headers=headers
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "invalid_content_type"
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("model", "whisper-1")
        async with http.post(
            f"{fac.url}/v1/audio/transcriptions", data=form, headers=headers
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "file"
        async with http.get(f"{fac.url}/metrics") as resp:
            metrics = await resp.text()
    assert (
        'voxmesh_facade_requests_total{caller="team-a",route="/v1/audio/transcriptions",status="404"}'
        in metrics
    )
    assert 'caller="team-b"' in metrics and 'status="401"' in metrics
