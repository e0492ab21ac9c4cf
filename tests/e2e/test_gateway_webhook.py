"""The gateway in webhook mode: Telegram's secret token, re-deliveries, draining.

Its own mesh: a webhook and getUpdates exclude each other on one bot.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import signal
import subprocess
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
import pytest_asyncio

from billing.v1 import billing_pb2
from tests.faults.support import restart
from tests.gateway.support import (
    billing_stub,
    final_reply,
    repeated_clip,
    reply_to,
    settled,
    start_mesh,
    texts_in,
    transactions,
    wait_for,
)
from tests.helpers import reference_text, wer
from voxmesh.audiofiles import encode
from voxmesh_dev.mesh import Mesh

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SECRET = "s3cret-token_for-tests"


class WebhookMesh(Mesh):
    """The dev mesh, with the gateway told its own webhook URL once its port is known."""

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        if name == "gateway":
            self.env["GATEWAY_WEBHOOK_URL"] = f"http://{self.target('gateway')}/webhook"
        return super().spawn(name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    m = await start_mesh(
        state=tmp_path_factory.mktemp("gwhook"),
        postgres_dsn=postgres_dsn,
        redis_url=redis_url,
        env={
            "GATEWAY_MODE": "webhook",
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            # Room for the 55 s note in flight at SIGTERM on a busy 2-core machine,
            # where Whisper's temperature fallback on its repeated text is slow.
            "GATEWAY_GRACE_SECONDS": "90",
        },
        mesh_class=WebhookMesh,
    )
    yield m
    await m.stop()


async def metric(mesh: Mesh, name: str) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{mesh.target('gateway')}/metrics") as resp,
    ):
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            total += float(match.group(2))
    return total


async def test_wrong_secret_is_401_and_nothing_happens(mesh: Mesh) -> None:
    emu = mesh.emulator
    user = 720001
    update = emu.make_message_update(chat_id=user, user_id=user, text="/start")
    update["update_id"] = 987654
    handled = await metric(mesh, "voxmesh_gateway_updates_total")
    async with aiohttp.ClientSession() as http:
        for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
            async with http.post(
                f"http://{mesh.target('gateway')}/webhook", json=update, headers=headers
            ) as resp:
                assert resp.status == 401
    await asyncio.sleep(1.0)
    assert emu.messages(user) == []
    assert await metric(mesh, "voxmesh_gateway_updates_total") == handled
    async with billing_stub(mesh) as billing:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await billing.GetUser(billing_pb2.GetUserRequest(user_id=user), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_redelivered_update_is_ignored(mesh: Mesh) -> None:
    emu = mesh.emulator
    user = 720002
    assert emu.calls("setWebhook")[-1].params.get("secret_token") == SECRET
    update_id = emu.push_update(emu.make_message_update(chat_id=user, user_id=user, text="/help"))
    [help_text] = await texts_in(mesh, user, 1)
    assert help_text.startswith("Send a voice note")
    handled = await metric(mesh, "voxmesh_gateway_updates_total")
    assert await emu.redeliver(update_id) == 200
    await asyncio.sleep(1.0)
    assert await metric(mesh, "voxmesh_gateway_duplicate_updates_total") == 1
    assert await metric(mesh, "voxmesh_gateway_updates_total") == handled
    assert len(emu.messages(user)) == 1


async def test_voice_note_over_webhook(mesh: Mesh, shared_audio: pathlib.Path) -> None:
    user = 720003
    file_id = mesh.emulator.add_file(encode(shared_audio / "jfk.flac"), mime_type="audio/ogg")
    update = mesh.emulator.make_message_update(chat_id=user, user_id=user, voice=(file_id, 11))
    mesh.emulator.push_update(update)
    answer = await final_reply(mesh, user, update["message"]["message_id"])
    assert wer(reference_text(shared_audio, "jfk.flac"), answer.text or "") <= 0.15


async def test_sigterm_drains_the_job_in_flight(mesh: Mesh, shared_audio: pathlib.Path) -> None:
    emu = mesh.emulator
    user = 720004
    file_id = emu.add_file(repeated_clip(shared_audio / "jfk.flac", 5), mime_type="audio/ogg")
    update = emu.make_message_update(chat_id=user, user_id=user, voice=(file_id, 55))
    emu.push_update(update)
    note = update["message"]["message_id"]
    await wait_for(lambda: bool(reply_to(mesh, user, note)), 30, "the placeholder")
    mesh.signal("gateway", signal.SIGTERM)
    seen = []
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(f"http://{mesh.target('gateway')}/readyz") as resp:
                seen.append((resp.status, await resp.text()))
            if seen[-1][0] != 200:
                break
            await asyncio.sleep(0.02)
    assert seen[-1] == (503, "draining"), seen
    # The job finishes inside the grace period and the process exits cleanly.
    answer = await final_reply(mesh, user, note, timeout=120)
    assert "country" in (answer.text or "")
    assert await asyncio.to_thread(mesh.procs["gateway"].wait, 120) == 0


async def test_gateway_killed_with_five_notes_queued(
    mesh: Mesh, shared_audio: pathlib.Path
) -> None:
    """Each update is answered 200 only once its job is recorded: a SIGKILL with
    notes queued loses none; the restarted gateway runs them in order, charged once."""
    emu = mesh.emulator
    user = 720005
    if mesh.procs["gateway"].poll() is not None:
        await restart(mesh, "gateway")  # the drain test above let it exit
    clip = encode(shared_audio / "jfk.flac")
    notes = []
    for _ in range(5):
        file_id = emu.add_file(clip, mime_type="audio/ogg")  # five recordings, not one
        update = emu.make_message_update(chat_id=user, user_id=user, voice=(file_id, 11))
        emu.push_update(update)
        notes.append(update["message"]["message_id"])
    await wait_for(lambda: bool(reply_to(mesh, user, notes[0])), 30, "the first status")
    mesh.signal("gateway", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["gateway"].wait, 10)
    await restart(mesh, "gateway")
    text = reference_text(shared_audio, "jfk.flac")
    answers = [await final_reply(mesh, user, n, timeout=150) for n in notes]
    for note, answer in zip(notes, answers, strict=True):
        assert wer(text, answer.text or "") <= 0.15, answer.text
        assert len(reply_to(mesh, user, note)) == 1
    await settled(mesh, user)
    charged = [
        tx.amount_credits
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE
    ]
    assert charged == [-2] * 5
    # The restarted gateway counted what it finished (the first may have ended before the kill).
    assert await metric(mesh, 'voxmesh_gateway_jobs_total{outcome="done"}') >= 4
