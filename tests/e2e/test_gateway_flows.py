"""The bot as users meet it: every flow through the whole mesh, one process per service.

One mesh for the module (polling mode); each test uses its own users and chats.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from billing.v1 import billing_pb2
from tests.gateway.support import (
    ADMIN_ID,
    balance,
    billing_stub,
    ensure_user,
    final_reply,
    is_final,
    repeated_clip,
    reply_to,
    settled,
    start_mesh,
    texts_in,
    transactions,
    wait_for,
)
from tests.helpers import cer, reference_text, wer
from voxmesh.audiofiles import encode
from voxmesh_dev.mesh import Mesh

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TRIAL = 100  # billing's default free trial
JFK_PRICE = 2  # 11 s at 10 credits a minute, rounded up


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    m = await start_mesh(
        state=tmp_path_factory.mktemp("gwflows"),
        postgres_dsn=postgres_dsn,
        redis_url=redis_url,
        env={},
    )
    yield m
    await m.stop()


@pytest.fixture(scope="module")
def jfk_ogg(shared_audio: pathlib.Path) -> bytes:
    return encode(shared_audio / "jfk.flac")


@pytest.fixture(scope="module")
def jfk_text(shared_audio: pathlib.Path) -> str:
    return reference_text(shared_audio, "jfk.flac")


def push(mesh: Mesh, **kwargs: object) -> int:
    """Push a message update; return the message id."""
    update = mesh.emulator.make_message_update(**kwargs)
    mesh.emulator.push_update(update)
    return int(update["message"]["message_id"])


async def test_voice_note_in_private_chat(mesh: Mesh, jfk_ogg: bytes, jfk_text: str) -> None:
    user = 710001
    file_id = mesh.emulator.add_file(jfk_ogg, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 11))
    answer = await final_reply(mesh, user, note)
    assert answer.first_text == "🎙 Transcribing…"
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    assert any(e.endswith("…") for e in answer.edits[:-1]), "no live progress was shown"
    await settled(mesh, user)
    captures = [
        tx
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE
    ]
    assert [tx.amount_credits for tx in captures] == [-JFK_PRICE]
    money = await balance(mesh, user)
    assert (money.balance_credits, money.held_credits) == (TRIAL - JFK_PRICE, 0)


async def test_audio_file_and_forwarded_mp3(
    mesh: Mesh, shared_audio: pathlib.Path, jfk_text: str
) -> None:
    user = 710002
    mp3 = encode(shared_audio / "jfk.flac", container="mp3", codec="libmp3lame", rate=44100)
    file_id = mesh.emulator.add_file(mp3, mime_type="audio/mpeg", file_name="speech.mp3")
    note = push(mesh, chat_id=user, user_id=user, audio=(file_id, 11), forward=True)
    answer = await final_reply(mesh, user, note)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text


async def test_video_note(mesh: Mesh, shared_audio: pathlib.Path, jfk_text: str) -> None:
    user = 710003
    mp4 = encode(shared_audio / "jfk.flac", container="mp4", codec="aac", rate=44100)
    file_id = mesh.emulator.add_file(mp4, mime_type="video/mp4")
    note = push(mesh, chat_id=user, user_id=user, video_note=(file_id, 11))
    answer = await final_reply(mesh, user, note)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text


async def test_group_t_and_autotranscribe(mesh: Mesh, jfk_ogg: bytes, jfk_text: str) -> None:
    emu = mesh.emulator
    group, author, asker, admin, member = -100710004, 710041, 710042, 710043, 710044
    emu.set_chat_admins(group, [admin])
    for user in (author, asker):
        await ensure_user(mesh, user)
    file_id = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    kw = {"chat_id": group, "chat_type": "supergroup"}

    # Privacy mode: a note alone is not for the bot while autotranscribe is off.
    quiet = push(mesh, user_id=author, voice=(file_id, 11), **kw)
    await asyncio.sleep(1.5)
    assert reply_to(mesh, group, quiet) == []

    # /t in reply to it: the asker pays, the answer replies to the note.
    push(mesh, user_id=asker, text="/t", reply_to_message_id=quiet, **kw)
    answer = await final_reply(mesh, group, quiet)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    assert (await settled(mesh, asker)).balance_credits == TRIAL - JFK_PRICE
    assert (await balance(mesh, author)).balance_credits == TRIAL

    # Only a group admin may turn autotranscribe on.
    before = len(emu.messages(group))
    push(mesh, user_id=member, text="/autotranscribe", **kw)
    texts = await texts_in(mesh, group, before + 1)
    assert texts[-1] == "Only group admins can change this."
    push(mesh, user_id=admin, text="/autotranscribe", **kw)
    texts = await texts_in(mesh, group, before + 2)
    assert texts[-1].startswith("Auto-transcription is on")

    # Now a note is transcribed by itself, and its author pays (a new recording: the
    # same file again would be answered from the transcript cache, free).
    fresh = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    auto = push(mesh, user_id=author, voice=(fresh, 11), **kw)
    answer = await final_reply(mesh, group, auto)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    assert (await settled(mesh, author)).balance_credits == TRIAL - JFK_PRICE


async def test_buy_with_stars_credits_once(mesh: Mesh) -> None:
    emu = mesh.emulator
    user = 710005
    push(mesh, chat_id=user, user_id=user, text="/buy")
    [menu] = await texts_in(mesh, user, 1)
    assert menu.startswith("Top up with Telegram Stars")
    buttons = emu.messages(user)[0].reply_markup["inline_keyboard"]  # type: ignore[index]
    data = buttons[0][0]["callback_data"]
    assert data == "buy:50:500"

    query = emu.make_callback_update(
        chat_id=user, user_id=user, data=data, message_id=emu.messages(user)[0].message_id
    )
    emu.push_update(query)
    await wait_for(lambda: len(emu.messages(user)) >= 2, 20, "the invoice")
    invoice = emu.messages(user)[1].invoice
    assert invoice is not None
    assert invoice["currency"] == "XTR" and invoice["total_amount"] == 50
    await wait_for(lambda: query["callback_query"]["id"] in emu.callback_answers, 10, "answer")

    # A tampered amount is refused at pre-checkout; the real one is accepted.
    bad = emu.make_pre_checkout_update(
        user_id=user, total_amount=1, invoice_payload=invoice["payload"]
    )
    good = emu.make_pre_checkout_update(
        user_id=user, total_amount=50, invoice_payload=invoice["payload"]
    )
    emu.push_update(bad)
    emu.push_update(good)
    await wait_for(
        lambda: (
            {bad["pre_checkout_query"]["id"], good["pre_checkout_query"]["id"]}
            <= emu.pre_checkout_answers.keys()
        ),
        10,
        "pre-checkout answers",
    )
    assert emu.pre_checkout_answers[good["pre_checkout_query"]["id"]]["ok"] is True
    assert emu.pre_checkout_answers[bad["pre_checkout_query"]["id"]]["ok"] is False

    before = (await balance(mesh, user)).balance_credits
    paid = emu.make_successful_payment_update(
        chat_id=user,
        user_id=user,
        total_amount=50,
        invoice_payload=invoice["payload"],
        telegram_payment_charge_id="stxGATEWAYTEST0001",
    )
    # Delivered twice (a new update_id each time): credited once.
    emu.push_update(paid)
    emu.push_update(paid)
    texts = await texts_in(mesh, user, 3)
    await asyncio.sleep(1.5)
    texts = [m.text or "" for m in emu.messages(user)]
    assert sum(text.startswith("✅ Payment received: +500 credits") for text in texts) == 1
    assert (await balance(mesh, user)).balance_credits == before + 500
    top_ups = [
        tx
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_TOP_UP
    ]
    assert [tx.amount_credits for tx in top_ups] == [500]


async def test_a_note_transcribed_before_is_answered_from_the_cache_free(
    mesh: Mesh, jfk_ogg: bytes, jfk_text: str
) -> None:
    emu = mesh.emulator
    first, second = 710018, 710019
    file_id = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    note = push(mesh, chat_id=first, user_id=first, voice=(file_id, 11))
    answer = await final_reply(mesh, first, note)
    assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    await settled(mesh, first)
    streams = _transcribe_calls(mesh)
    # The same file forwarded to another user: its text at once, no job, no charge.
    forwarded = push(mesh, chat_id=second, user_id=second, voice=(file_id, 11))
    [again] = await texts_in(mesh, second, 1)
    assert again.startswith("♻️ Transcribed before: here it is again, free of charge.\n\n")
    assert again.split("\n\n", 1)[1] == answer.text
    assert reply_to(mesh, second, forwarded)  # a reply to the forwarded note
    await asyncio.sleep(1)
    assert _transcribe_calls(mesh) == streams
    money = await balance(mesh, second)
    assert (money.balance_credits, money.held_credits) == (TRIAL, 0)
    kinds = {tx.kind for tx in await transactions(mesh, second)}
    assert billing_pb2.TRANSACTION_KIND_CAPTURE not in kinds


def _transcribe_calls(mesh: Mesh) -> int:
    return sum(
        1
        for line in mesh.log_text("transcriber").splitlines()
        if "transcriber.v1.TranscriberService/Transcribe" in line
    )


DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


async def test_a_russian_note_on_the_defaults(mesh: Mesh) -> None:
    """The committed Russian clip from a Russian Telegram user, nothing configured:
    Russian text, character error rate under 0.10."""
    user = 710020
    clip = (DATA / "ru_paragraph.ogg").read_bytes()
    file_id = mesh.emulator.add_file(clip, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 1), language_code="ru")
    answer = await final_reply(mesh, user, note, timeout=120)
    text = answer.text or ""
    expected = (DATA / "ru_paragraph.txt").read_text().strip()
    assert cer(expected, text) < 0.10, text
    assert "🌐" not in text  # Russian, as the interface: no language line


async def test_admin_refunds_a_stars_payment_once(mesh: Mesh) -> None:
    emu = mesh.emulator
    user, admin = 710017, ADMIN_ID
    await ensure_user(mesh, admin)
    paid = emu.make_successful_payment_update(
        chat_id=user,
        user_id=user,
        total_amount=50,
        invoice_payload="credits:50:500",
        telegram_payment_charge_id="stxREFUNDTEST0001",
    )
    emu.push_update(paid)
    await wait_for(lambda: bool(emu.messages(user)), 20, "the payment's confirmation")
    before = (await balance(mesh, user)).balance_credits
    # Not an admin: refused; an admin: refunded once, however often asked.
    push(mesh, chat_id=user, user_id=user, text="/refund stxREFUNDTEST0001")
    assert (await texts_in(mesh, user, 2))[1] == "Admins only."
    # In a chat of its own (the admin's private chat is test_admin_commands').
    room = {"chat_id": -100710017, "chat_type": "supergroup"}
    for _ in range(2):
        push(mesh, user_id=admin, text="/refund stxREFUNDTEST0001", **room)
    texts = await texts_in(mesh, room["chat_id"], 2)
    assert (
        texts
        == [
            f"Refunded: 500 credits taken back from {user} and their Stars returned;"
            f" their balance is {before - 500}."
        ]
        * 2
    )
    assert emu.refunded == {"stxREFUNDTEST0001"}
    assert (await balance(mesh, user)).balance_credits == before - 500
    push(mesh, user_id=admin, text="/refund stxNOSUCHCHARGE", **room)
    assert (await texts_in(mesh, room["chat_id"], 3))[2] == "No such payment."


async def test_cancel_mid_stream_charges_only_what_was_delivered(
    mesh: Mesh, shared_audio: pathlib.Path
) -> None:
    emu = mesh.emulator
    user = 710006
    await ensure_user(mesh, user)
    long_note = repeated_clip(shared_audio / "jfk.flac", 12)  # about 132 s
    file_id = emu.add_file(long_note, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 132))

    def streaming() -> bool:
        msgs = reply_to(mesh, user, note)
        return bool(msgs) and any(
            e.endswith("…") and "Transcribing" not in e for e in msgs[0].edits
        )

    await wait_for(streaming, 60, "the first live segment")
    held = await balance(mesh, user)
    assert held.held_credits == 22  # 132 s at 10 credits a minute
    push(mesh, chat_id=user, user_id=user, text="/cancel")
    answer = await final_reply(mesh, user, note)
    # The text so far stays, marked as stopped, and only it is charged.
    text = answer.text or ""
    assert text.endswith("⏹ Stopped at your request: you paid only for the part above.")
    assert "country" in text.lower()  # the clip's words, as far as it got
    money = await settled(mesh, user)
    charged = TRIAL - money.balance_credits
    assert 0 < charged < 22, charged
    captures = [
        tx
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE
    ]
    assert [-tx.amount_credits for tx in captures] == [charged]
    # The transcriber saw the stream cancelled and stopped.
    await wait_for(
        lambda: any(
            "Transcribe" in line and "CANCELLED" in line
            for line in mesh.log_text("transcriber").splitlines()
        ),
        10,
        "the transcriber to log the cancelled stream",
    )


async def test_nothing_to_cancel(mesh: Mesh) -> None:
    user = 710016
    push(mesh, chat_id=user, user_id=user, text="/cancel")
    assert await texts_in(mesh, user, 1) == ["Nothing to cancel."]


async def test_insufficient_balance(mesh: Mesh, jfk_ogg: bytes) -> None:
    user = 710007
    await ensure_user(mesh, user)
    # Hold the whole trial elsewhere so this note cannot be paid for.
    async with billing_stub(mesh) as billing:
        hold = (
            await billing.Reserve(
                billing_pb2.ReserveRequest(
                    idempotency_key="drain-710007",
                    user_id=user,
                    amount_credits=TRIAL,
                    job=billing_pb2.Job(chat_id=user, message_id=999999),
                ),
                timeout=5,
            )
        ).hold
        file_id = mesh.emulator.add_file(jfk_ogg, mime_type="audio/ogg")
        note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 11))
        answer = await final_reply(mesh, user, note)
        assert answer.text == (
            f"Not enough credits: this recording costs {JFK_PRICE}, you have 0. Top up with /buy."
        )
        await billing.Release(
            billing_pb2.ReleaseRequest(idempotency_key="undrain-710007", hold_id=hold.hold_id),
            timeout=5,
        )
    assert (await balance(mesh, user)).balance_credits == TRIAL


async def test_file_over_20_mb_is_refused_without_charge(mesh: Mesh) -> None:
    user = 710008
    await ensure_user(mesh, user)
    big = b"\0" * (25 * 1024 * 1024)
    file_id = mesh.emulator.add_file(big, mime_type="audio/mpeg", file_name="long.mp3")
    note = push(mesh, chat_id=user, user_id=user, document=file_id)
    answer = await final_reply(mesh, user, note)
    assert answer.text == (
        "This file is larger than 20 MB, the most the bot can download. Nothing was charged."
    )
    money = await balance(mesh, user)
    assert (money.balance_credits, money.held_credits) == (TRIAL, 0)
    assert not [c for c in mesh.emulator.calls("getFile") if c.params.get("file_id") == file_id]


async def test_history_is_paged_with_buttons(mesh: Mesh) -> None:
    emu = mesh.emulator
    user = 710009
    await ensure_user(mesh, user)
    await ensure_user(mesh, ADMIN_ID)
    async with billing_stub(mesh) as billing:
        for i in range(6):
            await billing.Grant(
                billing_pb2.GrantRequest(
                    idempotency_key=f"hist-{user}-{i}",
                    actor_user_id=ADMIN_ID,
                    user_id=user,
                    amount_credits=i + 1,
                ),
                timeout=5,
            )
    push(mesh, chat_id=user, user_id=user, text="/history")
    [first] = await texts_in(mesh, user, 1)
    lines = first.splitlines()
    assert lines[0] == "Your transactions:" and len(lines) == 6
    assert lines[1].endswith("gift: +6 → 121")
    page = emu.messages(user)[0]
    [[older]] = page.reply_markup["inline_keyboard"]  # type: ignore[index]
    assert older["text"] == "Older ›"

    query = emu.make_callback_update(
        chat_id=user, user_id=user, data=older["callback_data"], message_id=page.message_id
    )
    emu.push_update(query)
    await wait_for(lambda: len(page.edits) == 1, 20, "the older page")
    second = page.edits[0].splitlines()
    assert len(second) == 3 and second[1].endswith("gift: +1 → 101"), second
    assert second[2].endswith("free trial: +100 → 100"), second
    assert [b["text"] for b in page.reply_markup["inline_keyboard"][0]] == ["« Newest"]  # type: ignore[index]
    await wait_for(lambda: query["callback_query"]["id"] in emu.callback_answers, 10, "answer")


async def test_russian_and_english_replies(mesh: Mesh) -> None:
    ru, en = 710010, 710011
    push(mesh, chat_id=ru, user_id=ru, text="/start", language_code="ru")
    push(mesh, chat_id=en, user_id=en, text="/start", language_code="en")
    [ru_text] = await texts_in(mesh, ru, 1)
    [en_text] = await texts_in(mesh, en, 1)
    assert ru_text.startswith("Привет!") and "Пробный баланс: 100 кредитов" in ru_text
    assert en_text.startswith("Hi!") and "Your free trial: 100 credits" in en_text
    push(mesh, chat_id=ru, user_id=ru, text="/cancel", language_code="ru")
    texts = await texts_in(mesh, ru, 2)
    assert texts[1] == "Отменять нечего."


async def test_five_notes_one_at_a_time_in_order(mesh: Mesh, jfk_ogg: bytes, jfk_text: str) -> None:
    emu = mesh.emulator
    user = 710012
    file_id = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    files = [file_id] + [emu.add_file(jfk_ogg, mime_type="audio/ogg") for _ in range(4)]
    notes = [push(mesh, chat_id=user, user_id=user, voice=(f, 11)) for f in files]
    answers = [await final_reply(mesh, user, note, timeout=90) for note in notes]
    await settled(mesh, user)
    for answer in answers:
        assert wer(jfk_text, answer.text or "") <= 0.15, answer.text
    # Notes 2..5 were told they wait, in the message that later shows their text.
    assert [a.first_text for a in answers[1:]] == [
        "⏳ Queued: I'll start once your earlier recordings are done."
    ] * 4

    # One job at a time: each started (its "Transcribing" text) after the
    # previous one's final edit.
    sent = [c for c in emu.calls() if str(c.params.get("chat_id")) == str(user) and c.status == 200]

    def timeline(index: int, message_id: int) -> tuple[float, float]:
        edits = [
            c
            for c in sent
            if c.method.lower() == "editmessagetext"
            and int(c.params.get("message_id") or 0) == message_id
        ]
        starts = [
            c.time
            for c in (sent if index == 0 else edits)
            if c.params.get("text") == "🎙 Transcribing…"
        ]
        return min(starts), max(c.time for c in edits)

    spans = [timeline(i, a.message_id) for i, a in enumerate(answers)]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans
    captures = [
        tx
        for tx in await transactions(mesh, user)
        if tx.kind == billing_pb2.TRANSACTION_KIND_CAPTURE
    ]
    assert len(captures) == 5


async def test_subtitles_and_language_settings(mesh: Mesh, jfk_ogg: bytes) -> None:
    emu = mesh.emulator
    user = 710013
    push(mesh, chat_id=user, user_id=user, text="/format srt")
    assert (await texts_in(mesh, user, 1))[0] == "Transcript format: SRT subtitles."
    push(mesh, chat_id=user, user_id=user, text="/lang en")
    assert (await texts_in(mesh, user, 2))[1] == "Speech language: English."
    file_id = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 11))
    answer = await final_reply(mesh, user, note)
    assert answer.text == "📝 Here are the subtitles (SRT)."
    await wait_for(
        lambda: any(m.document for m in reply_to(mesh, user, note)), 20, "the .srt document"
    )
    doc = next(m.document for m in reply_to(mesh, user, note) if m.document)
    assert doc is not None and doc.file_name == "transcript.srt"
    srt = doc.content.decode()
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "country" in srt


async def test_vtt_and_timestamps_formats(mesh: Mesh, jfk_ogg: bytes) -> None:
    emu = mesh.emulator
    user = 710021
    file_id = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    push(mesh, chat_id=user, user_id=user, text="/format vtt")
    await texts_in(mesh, user, 1)
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 11))
    answer = await final_reply(mesh, user, note)
    assert answer.text == "📝 Here are the subtitles (VTT)."
    await wait_for(
        lambda: any(m.document for m in reply_to(mesh, user, note)), 20, "the .vtt document"
    )
    doc = next(m.document for m in reply_to(mesh, user, note) if m.document)
    assert doc is not None and doc.file_name == "transcript.vtt"
    vtt = doc.content.decode()
    assert vtt.startswith("WEBVTT") and " --> " in vtt and "country" in vtt
    push(mesh, chat_id=user, user_id=user, text="/format timestamps")
    await texts_in(mesh, user, 4)
    again = emu.add_file(jfk_ogg, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(again, 11))
    answer = await final_reply(mesh, user, note)
    assert (answer.text or "").startswith("[00:0"), answer.text


async def test_translate_a_russian_note_into_english(mesh: Mesh) -> None:
    emu = mesh.emulator
    user = 710022
    push(mesh, chat_id=user, user_id=user, text="/translate on", language_code="ru")
    await texts_in(mesh, user, 1)
    file_id = emu.add_file((DATA / "ru_paragraph.ogg").read_bytes(), mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 60), language_code="ru")
    answer = await final_reply(mesh, user, note, timeout=150)
    text = (answer.text or "").lower()
    # English words of the paragraph's weather and city, no Cyrillic.
    assert not any("а" <= ch <= "я" for ch in text), text
    assert sum(w in text for w in ("city", "morning", "river", "weather", "library", "cold")) >= 3


async def test_admin_commands(mesh: Mesh, jfk_ogg: bytes) -> None:
    user, admin = 710014, ADMIN_ID
    push(mesh, chat_id=user, user_id=user, text="/stats")
    assert (await texts_in(mesh, user, 1)) == ["Admins only."]
    push(mesh, chat_id=admin, user_id=admin, text=f"/grant {user} 40")
    texts = await texts_in(mesh, admin, 1)
    assert texts[0] == f"Granted 40 credits to {user}; their balance is {TRIAL + 40}."
    push(mesh, chat_id=admin, user_id=admin, text=f"/ban {user}")
    assert (await texts_in(mesh, admin, 2))[1] == f"User {user} is banned."
    file_id = mesh.emulator.add_file(jfk_ogg, mime_type="audio/ogg")
    note = push(mesh, chat_id=user, user_id=user, voice=(file_id, 11))
    answer = await final_reply(mesh, user, note)
    assert answer.text == "Sorry, your access is blocked."
    push(mesh, chat_id=admin, user_id=admin, text=f"/unban {user}")
    assert (await texts_in(mesh, admin, 3))[2] == f"User {user} is unbanned."
    push(mesh, chat_id=admin, user_id=admin, text="/stats")
    stats = (await texts_in(mesh, admin, 4))[3]
    assert stats.startswith("Users: ") and "Topped up: " in stats
    assert is_final(answer)


async def test_interface_language_is_a_choice(mesh: Mesh) -> None:
    emu = mesh.emulator
    # The command menu, in both interface languages, names every setting.
    default = json.dumps({"type": "default"}, sort_keys=True)
    menus = {
        lang: {c["command"]: c["description"] for c in emu.commands[(default, lang)]}
        for lang in ("", "ru")
    }
    assert menus[""].keys() == menus["ru"].keys()
    assert {"lang", "format", "translate", "interface"} <= menus[""].keys()
    assert menus["ru"]["interface"] == "Язык бота"
    # A Ukrainian Telegram starts in English and is asked.
    user = 710015
    push(mesh, chat_id=user, user_id=user, text="/start", language_code="uk")
    [welcome] = await texts_in(mesh, user, 1)
    assert welcome.startswith("Hi!") and welcome.endswith("You can choose the bot's language:")
    start = emu.messages(user)[0]
    [row] = start.reply_markup["inline_keyboard"]  # type: ignore[index]
    assert [b["text"] for b in row] == ["✓ As in Telegram", "English", "Русский"]
    query = emu.make_callback_update(
        chat_id=user,
        user_id=user,
        data=row[2]["callback_data"],
        message_id=start.message_id,
        language_code="uk",
    )
    emu.push_update(query)
    await wait_for(lambda: len(start.edits) == 1, 20, "the choice confirmed")
    assert start.edits[0] == "Язык бота: русский."
    # From now on, Russian, with Russian plurals and decimal commas.
    push(mesh, chat_id=user, user_id=user, text="/balance", language_code="uk")
    assert (await texts_in(mesh, user, 2))[1] == "Баланс: 100 кредитов (примерно 10 мин аудио)."
    push(mesh, chat_id=user, user_id=user, text="/translate on", language_code="uk")
    assert (await texts_in(mesh, user, 3))[2] == "Перевод на английский: включён."
