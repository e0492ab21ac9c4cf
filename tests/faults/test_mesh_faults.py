"""Breaking the mesh on purpose: no note is lost, no one is charged twice.

One mesh for the module (separate processes, the Bot API emulator, a Redis
of the module's own so that it can be stopped); each test breaks one thing,
checks what the user saw (the emulator's record), what billing booked (the
database) and, where cheap, the traces, then leaves the mesh whole again.
"""

from __future__ import annotations

import asyncio
import pathlib
import signal
from collections.abc import Awaitable, Callable

import asyncpg
import grpc
import pytest

from notifier.v1 import notifier_pb2, notifier_pb2_grpc
from tests.faults.support import (
    JFK_PRICE,
    REF,
    TRIAL,
    captured,
    eventually,
    gateway_ready,
    only_reply,
    push,
    push_note,
    restart,
)
from tests.gateway.support import (
    balance,
    ensure_user,
    final_reply,
    is_final,
    repeated_clip,
    reply_to,
    settled,
    wait_for,
)
from tests.helpers import wer
from voxmesh.channels import dial
from voxmesh.errors import error_details
from voxmesh_dev.embedded import EmbeddedRedis
from voxmesh_dev.mesh import Mesh
from voxmesh_dev.telegram import FaultPolicy

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

FAILED = "Sorry, the transcription failed; your credits were released. Reference: "
SENDING = frozenset({"sendmessage", "editmessagetext", "senddocument"})


def live_segment_shown(mesh: Mesh, user: int, note: int) -> bool:
    msgs = reply_to(mesh, user, note)
    return bool(msgs) and any(e.endswith("…") and "Transcribing" not in e for e in msgs[0].edits)


def sent_count(mesh: Mesh) -> int:
    return sum(1 for c in mesh.emulator.calls() if c.method.lower() in SENDING)


async def job_trace_id(dsn: str, chat_id: int, note_id: int) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(
            await conn.fetchval(
                "SELECT trace_id FROM jobs WHERE chat_id = $1 AND message_id = $2",
                chat_id,
                note_id,
            )
        )
    finally:
        await conn.close()


def held(mesh: Mesh, user: int, amount: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await balance(mesh, user)).held_credits == amount

    return check


async def test_transcriber_killed_mid_stream_and_restarted(
    mesh: Mesh, shared_audio: pathlib.Path, jfk_text: str
) -> None:
    """The note is tried again once the transcriber is back: the user gets the text."""
    user = 730020
    await ensure_user(mesh, user)
    long_note = repeated_clip(shared_audio / "jfk.flac", 8)  # 88 s of speech
    note = push_note(mesh, user, long_note, 88)
    await wait_for(lambda: live_segment_shown(mesh, user, note), 60, "the first live segment")
    held = (await balance(mesh, user)).held_credits
    assert held > 0

    mesh.signal("transcriber", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["transcriber"].wait, 10)
    await restart(mesh, "transcriber")

    answer = await final_reply(mesh, user, note, timeout=180)
    assert wer(" ".join([jfk_text] * 8), answer.text or "") <= 0.15, answer.text
    await asyncio.sleep(1)  # nothing else follows
    assert only_reply(mesh, user, note).message_id == answer.message_id
    # Charged once, for the whole note (what was held for its real length); nothing left held.
    money = await settled(mesh, user)
    assert await captured(mesh, user) == [-held]
    assert (money.balance_credits, money.held_credits) == (TRIAL - held, 0)


async def test_transcriber_killed_mid_stream_and_never_back(
    mesh: Mesh, shared_audio: pathlib.Path, jfk_ogg: bytes, jfk_text: str
) -> None:
    user = 730001
    await ensure_user(mesh, user)
    long_note = repeated_clip(shared_audio / "jfk.flac", 20)  # 220 s of speech
    note = push_note(mesh, user, long_note, 220)
    await wait_for(lambda: live_segment_shown(mesh, user, note), 60, "the first live segment")
    assert (await balance(mesh, user)).held_credits == 37  # 220 s at 10 a minute

    mesh.signal("transcriber", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["transcriber"].wait, 10)

    # After its three tries (5 s, then 10 s apart), one clear message, in place
    # of the placeholder, with a reference.
    answer = await final_reply(mesh, user, note, timeout=90)
    assert (answer.text or "").startswith(FAILED), answer.text
    ref = REF.search(answer.text or "")
    assert ref is not None
    await asyncio.sleep(1)  # nothing else follows
    assert only_reply(mesh, user, note).message_id == answer.message_id
    # The hold went back in full; nothing was charged.
    money = await settled(mesh, user)
    assert (money.balance_credits, money.held_credits) == (TRIAL, 0)
    assert await captured(mesh, user) == []
    # The reference is the job's trace: it holds the Transcribe call that broke.
    await mesh.collector.wait_for_spans(
        lambda spans: any(
            s["traceId"] == ref.group(1)
            and s["localEndpoint"]["serviceName"] == "gateway"
            and s["name"].endswith("/transcribe")
            and s.get("tags", {}).get("rpc.grpc.status_code") == "14"  # UNAVAILABLE
            and "error" in s.get("tags", {})  # Zipkin's error tag marks the failed hop
            for s in spans
        ),
        15,
    )

    # Back up, a new note works and is charged once.
    await restart(mesh, "transcriber")
    again = push_note(mesh, user, jfk_ogg, 11)
    answer = await final_reply(mesh, user, again, timeout=60)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    await settled(mesh, user)
    assert await captured(mesh, user) == [-JFK_PRICE]
    assert (await balance(mesh, user)).balance_credits == TRIAL - JFK_PRICE


async def test_transcriber_hang_past_the_job_deadline(mesh: Mesh, jfk_ogg: bytes) -> None:
    """A transcriber that stops answering (SIGSTOP): the job's deadline passes,
    and still the hold is released and the user told (on a budget of its own)."""
    user = 730002
    await ensure_user(mesh, user)
    saved = dict(mesh.env)
    await mesh.stop_service("gateway")
    mesh.env.update(
        {"GATEWAY_JOB_BASE_SECONDS": "3", "GATEWAY_JOB_SECONDS_PER_AUDIO_SECOND": "0.2"}
    )
    await restart(mesh, "gateway")
    mesh.signal("transcriber", signal.SIGSTOP)
    try:
        started = asyncio.get_running_loop().time()
        note = push_note(mesh, user, jfk_ogg, 11)  # deadline 3 + 11 * 0.2 = 5.2 s
        answer = await final_reply(mesh, user, note, timeout=30)
        assert (answer.text or "").startswith(FAILED), answer.text
        assert asyncio.get_running_loop().time() - started < 20
        money = await settled(mesh, user, timeout=5)
        assert (money.balance_credits, money.held_credits) == (TRIAL, 0)
        assert await captured(mesh, user) == []
    finally:
        mesh.signal("transcriber", signal.SIGCONT)
        await mesh.stop_service("gateway")
        mesh.env.clear()
        mesh.env.update(saved)
        await restart(mesh, "gateway")
    assert only_reply(mesh, user, note).text == answer.text


async def test_gateway_killed_mid_job_is_finished_by_the_reconciler(
    mesh: Mesh, shared_audio: pathlib.Path, jfk_text: str
) -> None:
    user = 730003
    await ensure_user(mesh, user)
    clip = repeated_clip(shared_audio / "jfk.flac", 6)  # 66 s: a job that takes a while
    note = push_note(mesh, user, clip, 66)
    await wait_for(lambda: bool(reply_to(mesh, user, note)), 30, "the placeholder")
    await eventually(held(mesh, user, 11), 30, "the job's hold")  # 66 s at 10 a minute
    loop = asyncio.get_running_loop()
    mesh.signal("gateway", signal.SIGKILL)
    killed_at = loop.time()
    await asyncio.to_thread(mesh.procs["gateway"].wait, 10)
    assert not is_final(reply_to(mesh, user, note)[0]), "killed too late: the job had ended"
    assert (await balance(mesh, user)).held_credits == 11  # the abandoned hold

    await restart(mesh, "gateway")
    answer = await final_reply(mesh, user, note, timeout=150)
    finished = loop.time() - killed_at
    # The same placeholder got the transcript: no second message, no failure.
    assert only_reply(mesh, user, note).message_id == answer.message_id
    assert wer(" ".join([jfk_text] * 6), answer.text or "") <= 0.25, answer.text
    money = await settled(mesh, user)
    assert await captured(mesh, user) == [-11]
    assert (money.balance_credits, money.held_credits) == (TRIAL - 11, 0)
    # Finished inside the job's own deadline (60 s + 66 s): no job stays open past it.
    assert finished < 60 + 66, finished
    # The second try (a new claim of the durable job) joined the job's first trace.
    trace_id = await job_trace_id(mesh.database_url, user, note)
    await mesh.collector.wait_for_spans(
        lambda spans: any(
            s["traceId"] == trace_id
            and s["name"] == "gateway.job"
            and s.get("tags", {}).get("voxmesh.attempt") == "2"
            for s in spans
        ),
        15,
    )


async def test_gateway_killed_and_file_gone_refunds(mesh: Mesh, shared_audio: pathlib.Path) -> None:
    """The re-drive cannot fetch the file any more: the hold is released, the user told."""
    user = 730004
    emu = mesh.emulator
    await ensure_user(mesh, user)
    clip = repeated_clip(shared_audio / "jfk.flac", 6)
    note = push_note(mesh, user, clip, 66)
    await wait_for(lambda: bool(reply_to(mesh, user, note)), 30, "the placeholder")
    await eventually(held(mesh, user, 11), 30, "the job's hold")
    mesh.signal("gateway", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["gateway"].wait, 10)
    assert not is_final(reply_to(mesh, user, note)[0])
    # Telegram no longer hands the file out.
    emu.faults = FaultPolicy(rate_500=1.0, methods=frozenset({"getFile", "download"}))
    try:
        await restart(mesh, "gateway")
        answer = await final_reply(mesh, user, note, timeout=90)
    finally:
        emu.faults = FaultPolicy()
    assert (answer.text or "").startswith(FAILED), answer.text
    assert only_reply(mesh, user, note).message_id == answer.message_id
    money = await settled(mesh, user)
    assert (money.balance_credits, money.held_credits) == (TRIAL, 0)
    assert await captured(mesh, user) == []


async def test_redis_outage_pauses_then_recovers(
    mesh: Mesh, own_redis: EmbeddedRedis, jfk_ogg: bytes, jfk_text: str
) -> None:
    user = 730005
    emu = mesh.emulator
    await ensure_user(mesh, user)
    await asyncio.to_thread(own_redis.stop)
    try:
        # The notifier refuses at once, with the reason and a retry delay.
        async with dial(mesh.target("notifier")) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Send(
                    notifier_pb2.SendRequest(
                        idempotency_key="faults-redis-down", chat_id=user, text="hello"
                    ),
                    timeout=10,
                )
        details = error_details(info.value)
        assert (details.code, details.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "DEPENDENCY_UNAVAILABLE",
        )
        assert details.retry_after is not None

        # The gateway reports not ready and stops taking updates.
        async def not_ready() -> bool:
            return await gateway_ready(mesh) == 503

        await eventually(not_ready, 10, "/readyz to turn 503")
        sent = sent_count(mesh)
        polls = len(emu.calls("getUpdates"))
        note = push_note(mesh, user, jfk_ogg, 11)
        push(mesh, chat_id=user, user_id=user, text="/balance")
        await asyncio.sleep(4)
        # Nothing was sent, and no retry storm: at most the poll in flight returned.
        assert sent_count(mesh) == sent
        assert len(emu.calls("getUpdates")) - polls <= 1
        assert emu.messages(user) == []
    finally:
        await asyncio.to_thread(own_redis.start)

    # Redis is back: both updates are handled, once.
    answer = await final_reply(mesh, user, note, timeout=60)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    await wait_for(
        lambda: any((m.text or "").startswith("Balance: ") for m in emu.messages(user)),
        20,
        "the /balance answer",
    )
    await asyncio.sleep(1)
    texts = [m.text or "" for m in emu.messages(user)]
    assert sum(t.startswith("Balance: ") for t in texts) == 1, texts
    assert only_reply(mesh, user, note).message_id == answer.message_id
    await settled(mesh, user)
    assert await captured(mesh, user) == [-JFK_PRICE]
    assert await gateway_ready(mesh) == 200
    assert "Redis is unavailable: taking no updates" in mesh.log_text("gateway")


async def test_telegram_faults_then_calm(mesh: Mesh, jfk_ogg: bytes, jfk_text: str) -> None:
    """429s, 500s, hangs and dropped connections at random for a while: once calm,
    every note has exactly one answer and every /balance exactly one reply."""
    emu = mesh.emulator
    users = [730010 + i for i in range(4)]
    for user in users:
        await ensure_user(mesh, user)
    emu.faults = FaultPolicy(
        rate_429=0.1,
        retry_after=1,
        rate_500=0.1,
        rate_hang=0.05,
        hang_seconds=2,
        rate_drop=0.05,
        seed=20260501,
        methods=frozenset({"sendMessage", "editMessageText", "getUpdates", "getFile", "download"}),
    )
    try:
        notes = {user: push_note(mesh, user, jfk_ogg, 11) for user in users}
        for user in users:
            push(mesh, chat_id=user, user_id=user, text="/balance")
        await asyncio.sleep(10)
    finally:
        emu.faults = FaultPolicy()
    assert sum(1 for c in emu.calls() if c.fault) >= 5, "too few faults to prove anything"

    for user, note in notes.items():
        answer = await final_reply(mesh, user, note, timeout=90)
        money = await settled(mesh, user)
        if (answer.text or "").startswith(FAILED):
            assert await captured(mesh, user) == []
            assert money.balance_credits == TRIAL
        else:
            assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
            assert await captured(mesh, user) == [-JFK_PRICE]
            assert money.balance_credits == TRIAL - JFK_PRICE
    await asyncio.sleep(2)  # late duplicates would show up here
    for user, note in notes.items():
        only_reply(mesh, user, note)
        texts = [m.text or "" for m in emu.messages(user)]
        assert sum(t.startswith("Balance: ") for t in texts) == 1, texts
        assert len(texts) == 2, texts
