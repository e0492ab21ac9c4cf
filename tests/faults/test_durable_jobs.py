"""Issues 14 and 15 end to end: the price follows the audio; no accepted note or paid
Star is ever lost, whatever dies or floods, and nothing is charged twice.

A mesh of real processes with a Redis of its own (this module flushes it), the
Bot API emulator as Telegram.
"""

from __future__ import annotations

import asyncio
import pathlib
import signal

import asyncpg
import pytest
from redis.asyncio import Redis

from billing.v1 import billing_pb2
from tests.faults.support import (
    TRIAL,
    captured,
    eventually,
    only_reply,
    push,
    push_note,
    restart,
)
from tests.gateway.support import (
    billing_stub,
    ensure_user,
    final_reply,
    repeated_clip,
    reply_to,
    settled,
    transactions,
    wait_for,
)
from tests.helpers import wer
from voxmesh.audiofiles import encode
from voxmesh_dev.embedded import EmbeddedRedis
from voxmesh_dev.mesh import Mesh
from voxmesh_dev.telegram import FaultPolicy

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

JFK_PRICE = 2  # 11 s at 10 credits a minute


async def test_a_long_note_declared_as_one_second_costs_its_real_price(
    mesh: Mesh, shared_audio: pathlib.Path
) -> None:
    user = 740001
    await ensure_user(mesh, user)
    clip = repeated_clip(shared_audio / "jfk.flac", 6)  # 66 s of speech
    note = push_note(mesh, user, clip, 1)  # the client claims one second
    answer = await final_reply(mesh, user, note, timeout=120)
    assert "country" in (answer.text or "").lower()
    money = await settled(mesh, user)
    # What an honest 66 s note costs: 11 credits, not the 1 a second would.
    assert await captured(mesh, user) == [-11]
    assert money.balance_credits == TRIAL - 11


async def test_a_short_document_from_a_user_low_on_credits_is_charged_its_length(
    mesh: Mesh, shared_audio: pathlib.Path, jfk_text: str
) -> None:
    user = 740002
    await ensure_user(mesh, user)
    # The user spends 95 of the trial's 100 credits first.
    async with billing_stub(mesh) as billing:
        spent = await billing.Reserve(
            billing_pb2.ReserveRequest(
                idempotency_key="durable-spend",
                user_id=user,
                amount_credits=95,
                job=billing_pb2.Job(chat_id=user, message_id=1),
            ),
            timeout=5,
        )
        await billing.Capture(
            billing_pb2.CaptureRequest(
                idempotency_key="durable-spend-c", hold_id=spent.hold.hold_id, amount_credits=95
            ),
            timeout=5,
        )
    # An MP3 document: Telegram gives no duration for it.
    mp3 = encode(shared_audio / "jfk.flac", container="mp3", codec="libmp3lame", rate=44100)
    file_id = mesh.emulator.add_file(mp3, mime_type="audio/mpeg", file_name="speech.mp3")
    note = push(mesh, chat_id=user, user_id=user, document=file_id)
    answer = await final_reply(mesh, user, note, timeout=90)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    money = await settled(mesh, user)
    assert (await captured(mesh, user))[0] == -JFK_PRICE
    assert money.balance_credits == 5 - JFK_PRICE


async def test_gateway_killed_with_five_notes_queued(
    mesh: Mesh, jfk_ogg: bytes, jfk_text: str
) -> None:
    user = 740003
    await ensure_user(mesh, user)
    notes = [push_note(mesh, user, jfk_ogg, 11) for _ in range(5)]
    # Every note accepted (recorded in billing), the first one under way.
    await wait_for(lambda: len(reply_to(mesh, user, notes[0])) == 1, 30, "the first status")
    await eventually(lambda: _jobs_of(mesh, user, 5), 30, "five recorded jobs")
    assert not all(_is_done(mesh, user, n) for n in notes), "killed too late"
    mesh.signal("gateway", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["gateway"].wait, 10)
    await restart(mesh, "gateway")
    answers = [await final_reply(mesh, user, n, timeout=120) for n in notes]
    for note, answer in zip(notes, answers, strict=True):
        assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
        assert only_reply(mesh, user, note).message_id == answer.message_id
    # In order: each note's text came after the one before it.
    finished = [_final_edit_time(mesh, user, a.message_id) for a in answers]
    assert finished == sorted(finished), finished
    await settled(mesh, user)
    assert await captured(mesh, user) == [-JFK_PRICE] * 5


async def test_notes_wait_out_a_429_storm_longer_than_any_deadline(
    mesh: Mesh, jfk_ogg: bytes, jfk_text: str
) -> None:
    user = 740004
    await ensure_user(mesh, user)
    emu = mesh.emulator
    # Every message to Telegram answered 429 for 40 s: past the notifier's
    # 30 s deadline, so the queued notices wait in its outbox.
    emu.faults = FaultPolicy(
        rate_429=1.0,
        retry_after=2,
        methods=frozenset({"sendMessage", "editMessageText", "sendDocument"}),
    )
    try:
        notes = [push_note(mesh, user, jfk_ogg, 11) for _ in range(3)]
        await asyncio.sleep(40)
    finally:
        emu.faults = FaultPolicy()
    assert sum(1 for c in emu.calls() if c.fault) >= 10, "the storm never happened"
    for note in notes:
        answer = await final_reply(mesh, user, note, timeout=150)
        assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
        only_reply(mesh, user, note)  # its own status message, and only one
    await settled(mesh, user)
    assert await captured(mesh, user) == [-JFK_PRICE] * 3


async def test_redis_flushed_mid_run_loses_and_repeats_nothing(
    mesh: Mesh, own_redis: EmbeddedRedis, jfk_ogg: bytes, jfk_text: str
) -> None:
    user = 740005
    await ensure_user(mesh, user)
    notes = [push_note(mesh, user, jfk_ogg, 11) for _ in range(3)]
    await wait_for(lambda: bool(reply_to(mesh, user, notes[0])), 30, "the first status")
    redis = Redis.from_url(own_redis.url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()
    await eventually(
        lambda: "Redis was reset" in mesh.log_text("gateway"), 20, "the gateway to see the reset"
    )
    for note in notes:
        answer = await final_reply(mesh, user, note, timeout=120)
        assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
        only_reply(mesh, user, note)
    await settled(mesh, user)
    assert await captured(mesh, user) == [-JFK_PRICE] * 3
    said = " ".join(m.text or "" for m in mesh.emulator.messages(user))
    assert "nothing was charged" not in said.lower()


async def test_a_payment_billing_could_not_take_is_credited_once(mesh: Mesh) -> None:
    user = 740006
    await ensure_user(mesh, user)
    emu = mesh.emulator
    mesh.signal("billing", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["billing"].wait, 10)
    paid = emu.make_successful_payment_update(
        chat_id=user,
        user_id=user,
        total_amount=50,
        invoice_payload="credits:50:500",
        telegram_payment_charge_id="stx-durable-1",
    )
    emu.push_update(paid)
    # Recorded by the gateway (acknowledged); billing is down, so not credited.
    await eventually(
        lambda: "not credited yet" in mesh.log_text("gateway"), 30, "the TopUp to fail"
    )
    # And the gateway dies before billing is back.
    mesh.signal("gateway", signal.SIGKILL)
    await asyncio.to_thread(mesh.procs["gateway"].wait, 10)
    await asyncio.sleep(5)
    await restart(mesh, "billing")
    await restart(mesh, "gateway")
    await wait_for(
        lambda: any((m.text or "").startswith("✅") for m in emu.messages(user)),
        60,
        "the payment's confirmation",
    )
    await asyncio.sleep(3)  # a second confirmation would show up here
    top_ups = [
        tx
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_TOP_UP
    ]
    assert [tx.amount_credits for tx in top_ups] == [500]
    confirmations = [m for m in emu.messages(user) if (m.text or "").startswith("✅")]
    assert len(confirmations) == 1, [m.text for m in emu.messages(user)]


async def _jobs_of(mesh: Mesh, user: int, count: int) -> bool:
    conn = await asyncpg.connect(mesh.database_url)
    try:
        n = await conn.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", user)
    finally:
        await conn.close()
    return int(n) >= count


def _is_done(mesh: Mesh, user: int, note: int) -> bool:
    msgs = reply_to(mesh, user, note)
    return bool(msgs) and (msgs[0].text or "").count(" ") > 5


def _final_edit_time(mesh: Mesh, user: int, message_id: int) -> float:
    edits = [
        c.time
        for c in mesh.emulator.calls()
        if c.method.lower() == "editmessagetext"
        and str(c.params.get("chat_id")) == str(user)
        and int(c.params.get("message_id") or 0) == message_id
        and c.status == 200
    ]
    return max(edits)
