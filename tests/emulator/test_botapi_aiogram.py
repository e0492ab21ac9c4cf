"""aiogram's real Bot and AiohttpSession against the Bot API emulator over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetMe
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    ChatMemberAdministrator,
    ChatMemberMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    ReplyParameters,
)

from voxmesh_dev.telegram import BotApiEmulator, FaultPolicy

MB = 1024 * 1024


async def test_get_me_describes_the_bot(bot: Bot, emulator: BotApiEmulator) -> None:
    me = await bot.get_me()
    assert me.id == emulator.bot_id == 123456
    assert me.is_bot
    assert me.username == "voxmesh_test_bot"
    assert emulator.calls("getMe")[0].status == 200


async def test_wrong_token_is_unauthorized(emulator: BotApiEmulator, bot_factory: Any) -> None:
    intruder = bot_factory(emulator.base_url, token="654321:WRONG")
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await intruder.get_me()
    assert emulator.calls("getMe")[-1].error_code == 401


async def test_unknown_method_is_not_found(bot: Bot) -> None:
    class Bogus(GetMe):
        __api_method__ = "getBogus"

    with pytest.raises(TelegramNotFound):
        await bot(Bogus())


async def test_send_message_returns_a_full_message(bot: Bot, emulator: BotApiEmulator) -> None:
    sent = await bot.send_message(42, "<b>hello</b> world", parse_mode="HTML")
    assert sent.chat.id == 42
    assert sent.chat.type == "private"
    assert sent.from_user is not None and sent.from_user.id == emulator.bot_id
    assert sent.text == "hello world"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    assert sent.entities[0].length == 5
    [recorded] = emulator.messages(42)
    assert recorded.message_id == sent.message_id
    assert recorded.text == "hello world"


async def test_edit_history_and_not_modified(
    bot: Bot, emulator: BotApiEmulator, clock: Any
) -> None:
    sent = await bot.send_message(7, "transcribing…")
    clock.advance(1.0)
    edited = await bot.edit_message_text("first words", chat_id=7, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.edit_date is not None
    clock.advance(1.0)
    await bot.edit_message_text("first words and more", chat_id=7, message_id=sent.message_id)
    clock.advance(1.0)
    with pytest.raises(TelegramBadRequest, match="message is not modified: specified new"):
        await bot.edit_message_text("first words and more", chat_id=7, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=7, message_id=999)
    [recorded] = emulator.messages(7)
    assert recorded.first_text == "transcribing…"
    assert recorded.edits == ["first words", "first words and more"]
    assert recorded.text == "first words and more"


async def test_edit_removes_keyboard_unless_repeated(bot: Bot, clock: Any) -> None:
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Top up", callback_data="topup:100")]]
    )
    sent = await bot.send_message(8, "pay?", reply_markup=keyboard)
    assert isinstance(sent.reply_markup, InlineKeyboardMarkup)
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "topup:100"
    clock.advance(1.0)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "pay?", chat_id=8, message_id=sent.message_id, reply_markup=keyboard
        )
    # same text, keyboard dropped: that is a modification
    edited = await bot.edit_message_text("pay?", chat_id=8, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.reply_markup is None


async def test_text_length_and_emptiness(bot: Bot) -> None:
    await bot.send_message(9, "x" * 4096)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(10, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(10, "   ")
    # entities do not count toward the limit: 4096 characters wrapped in a tag are fine
    await bot.send_message(11, "<b>" + "y" * 4096 + "</b>", parse_mode="HTML")


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<b>open", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<blink>x</blink>", 'Unsupported start tag "blink" at byte offset 0'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
    ],
)
async def test_html_errors(bot: Bot, html: str, reason: str) -> None:
    with pytest.raises(TelegramBadRequest) as info:
        await bot.send_message(12, html, parse_mode="HTML")
    assert info.value.message == f"Bad Request: can't parse entities: {reason}"


async def test_reply_to_a_user_message(bot: Bot, emulator: BotApiEmulator) -> None:
    update = emulator.make_message_update(chat_id=13, user_id=13, text="hi")
    emulator.push_update(update)
    user_message_id = update["message"]["message_id"]
    sent = await bot.send_message(
        13, "hello", reply_parameters=ReplyParameters(message_id=user_message_id)
    )
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.text == "hi"
    assert emulator.messages(13)[0].reply_to_message_id == user_message_id
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(14, "x", reply_parameters=ReplyParameters(message_id=555))


async def test_long_polling_returns_when_an_update_arrives(
    bot: Bot, emulator: BotApiEmulator
) -> None:
    assert await bot.get_updates(timeout=0) == []

    async def later() -> None:
        await asyncio.sleep(0.2)
        file_id = emulator.add_file(b"OggS...", mime_type="audio/ogg")
        emulator.push_update(
            emulator.make_message_update(chat_id=21, user_id=21, voice=(file_id, 3))
        )

    pusher = asyncio.create_task(later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=10)
    await pusher
    assert time.monotonic() - started < 5
    [update] = updates
    assert update.message is not None and update.message.voice is not None
    assert update.message.voice.duration == 3
    # not confirmed yet: the same update comes again
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [update.update_id]
    # an offset past it confirms it
    assert await bot.get_updates(offset=update.update_id + 1, timeout=0) == []


async def test_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 <= time.monotonic() - started < 3


async def test_get_file_and_download(bot: Bot, emulator: BotApiEmulator) -> None:
    content = bytes(range(256)) * 100
    file_id = emulator.add_file(content, mime_type="audio/ogg")
    file = await bot.get_file(file_id)
    assert file.file_size == len(content)
    assert file.file_path is not None and file.file_path.endswith(".oga")
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == content
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_files_over_20_mb_are_too_big(bot: Bot, emulator: BotApiEmulator) -> None:
    big = emulator.add_file(b"\0" * (20 * MB + 1), mime_type="video/mp4")
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(big)
    ok = emulator.add_file(b"\0" * (20 * MB), mime_type="video/mp4")
    assert (await bot.get_file(ok)).file_size == 20 * MB


async def test_local_mode_allows_large_files(bot_factory: Any) -> None:
    emu = BotApiEmulator(local_mode=True)
    await emu.start()
    try:
        big = emu.add_file(b"\0" * (21 * MB), mime_type="video/mp4")
        file = await bot_factory(emu.base_url).get_file(big)
        assert file.file_size == 21 * MB
    finally:
        await emu.stop()


async def test_send_document_stores_bytes_name_caption(bot: Bot, emulator: BotApiEmulator) -> None:
    payload = b"1\n00:00:00,000 --> 00:00:01,000\nHello\n"
    sent = await bot.send_document(
        31,
        BufferedInputFile(payload, filename="transcript.srt"),
        caption="<i>transcript</i>",
        parse_mode="HTML",
    )
    assert sent.document is not None
    assert sent.document.file_name == "transcript.srt"
    assert sent.document.file_size == len(payload)
    assert sent.caption == "transcript"
    [recorded] = emulator.messages(31)
    assert recorded.document is not None
    assert recorded.document.content == payload
    assert recorded.document.file_name == "transcript.srt"
    assert recorded.caption == "transcript"
    # the call log keeps the upload's name and size, never its bytes
    [call] = emulator.calls("sendDocument")
    uploads = [v for v in call.params.values() if isinstance(v, dict)]
    assert uploads == [{"file_name": "transcript.srt", "size": len(payload)}]


async def test_delete_message(bot: Bot, emulator: BotApiEmulator) -> None:
    sent = await bot.send_message(32, "soon gone")
    assert await bot.delete_message(32, sent.message_id)
    assert emulator.messages(32)[0].deleted
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(32, sent.message_id)


async def test_burst_to_one_private_chat_is_429(bot: Bot, emulator: BotApiEmulator) -> None:
    await bot.send_message(41, "one")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(41, "two")
    assert info.value.retry_after == 1
    assert "Too Many Requests: retry after 1" in info.value.message
    limited = [c for c in emulator.calls("sendMessage") if c.error_code == 429]
    assert len(limited) == 1 and limited[0].fault is None
    # another chat is not affected
    await bot.send_message(42, "other chat")


async def test_group_limit_is_20_per_minute(bot: Bot, emulator: BotApiEmulator, clock: Any) -> None:
    for i in range(20):
        await bot.send_message(-100500, f"m{i}")
        clock.advance(0.1)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(-100500, "one too many")
    assert 55 <= info.value.retry_after <= 60
    clock.advance(60)
    await bot.send_message(-100500, "after a minute")


async def test_bot_wide_limit_is_30_per_second(
    bot: Bot, emulator: BotApiEmulator, clock: Any
) -> None:
    for chat in range(1000, 1030):
        await bot.send_message(chat, "hi")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(2000, "thirty-first")
    clock.advance(1.0)
    await bot.send_message(2000, "next second")


async def test_paced_edits_never_see_429(bot: Bot, emulator: BotApiEmulator, clock: Any) -> None:
    sent = await bot.send_message(43, "…")
    for i in range(5):
        clock.advance(1.0)
        await bot.edit_message_text(f"part {i}", chat_id=43, message_id=sent.message_id)
    assert all(c.error_code != 429 for c in emulator.calls())


async def test_limits_can_be_switched_off(bot_factory: Any) -> None:
    emu = BotApiEmulator(enforce_limits=False)
    await emu.start()
    try:
        b = bot_factory(emu.base_url)
        for i in range(5):
            await b.send_message(44, f"m{i}")
        assert len(emu.messages(44)) == 5
    finally:
        await emu.stop()


async def test_injected_429_and_500(bot: Bot, emulator: BotApiEmulator) -> None:
    emulator.faults = FaultPolicy(rate_429=1.0, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(51, "x")
    assert info.value.retry_after == 3
    emulator.faults = FaultPolicy(rate_500=1.0, methods=frozenset({"sendMessage"}))
    with pytest.raises(TelegramServerError):
        await bot.send_message(52, "x")
    assert (await bot.get_me()).id == emulator.bot_id  # other methods unaffected
    assert [c.fault for c in emulator.calls("sendMessage")] == ["429", "500"]
    assert emulator.messages(51) == [] and emulator.messages(52) == []


async def test_injected_hang_times_the_client_out(
    emulator: BotApiEmulator, bot_factory: Any
) -> None:
    impatient = bot_factory(emulator.base_url, timeout=0.5)
    emulator.faults = FaultPolicy(rate_hang=1.0, hang_seconds=30)
    started = time.monotonic()
    with pytest.raises(TelegramNetworkError, match="timeout"):
        await impatient.send_message(53, "x")
    assert time.monotonic() - started < 5
    assert emulator.messages(53) == []


async def test_dropped_connection_after_send_loses_only_the_answer(
    bot: Bot, emulator: BotApiEmulator
) -> None:
    emulator.faults = FaultPolicy(rate_drop=1.0, lose_response=True)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(54, "sent, but you will never know")
    # the message went out: a naive retry would duplicate it
    assert [m.text for m in emulator.messages(54)] == ["sent, but you will never know"]
    [call] = emulator.calls("sendMessage")
    assert call.fault == "drop" and call.status == 0


async def test_fault_probabilities_are_seedable(emulator: BotApiEmulator) -> None:
    picks_a = [FaultPolicy(rate_500=0.5, seed=7).pick("sendMessage") for _ in range(1)]
    policy_a = FaultPolicy(rate_500=0.5, seed=7)
    policy_b = FaultPolicy(rate_500=0.5, seed=7)
    seq_a = [policy_a.pick("sendMessage") for _ in range(50)]
    seq_b = [policy_b.pick("sendMessage") for _ in range(50)]
    assert seq_a == seq_b
    assert 10 < seq_a.count("500") < 40
    assert picks_a[0] == seq_a[0]


async def test_blocked_user_is_forbidden(bot: Bot, emulator: BotApiEmulator) -> None:
    emulator.block_chat(61)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(61, "hello?")


async def test_stars_invoice_and_pre_checkout(bot: Bot, emulator: BotApiEmulator) -> None:
    sent = await bot.send_invoice(
        71,
        title="100 credits",
        description="Top up",
        payload="topup:71:100",
        currency="XTR",
        prices=[LabeledPrice(label="100 credits", amount=50)],
    )
    assert sent.invoice is not None and sent.invoice.total_amount == 50
    assert emulator.messages(71)[0].invoice == {
        "title": "100 credits",
        "description": "Top up",
        "start_parameter": "",
        "currency": "XTR",
        "total_amount": 50,
        "payload": "topup:71:100",
        "prices": [{"label": "100 credits", "amount": 50}],
    }
    with pytest.raises(TelegramBadRequest):
        await bot.send_invoice(
            72, title="t", description="d", payload="p", currency="USD", prices=[]
        )
    update = emulator.make_pre_checkout_update(
        user_id=71, total_amount=50, invoice_payload="topup:71:100"
    )
    emulator.push_update(update)
    query_id = update["pre_checkout_query"]["id"]
    assert await bot.answer_pre_checkout_query(query_id, ok=True)
    assert emulator.pre_checkout_answers[query_id] == {"ok": True, "error_message": None}
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query(query_id, ok=True)


async def test_callback_answer_and_chat_action(bot: Bot, emulator: BotApiEmulator) -> None:
    sent = await bot.send_message(
        81,
        "choose",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]]
        ),
    )
    update = emulator.make_callback_update(
        chat_id=81, user_id=81, data="a", message_id=sent.message_id
    )
    emulator.push_update(update)
    [received] = await bot.get_updates(timeout=0)
    assert received.callback_query is not None
    assert received.callback_query.message is not None
    assert received.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(received.callback_query.id, text="ok")
    assert emulator.callback_answers[received.callback_query.id]["text"] == "ok"
    assert await bot.send_chat_action(81, "typing")
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(81, "dancing")


async def test_group_admins(bot: Bot, emulator: BotApiEmulator) -> None:
    emulator.set_chat_admins(-500, [1, 2])
    admin = await bot.get_chat_member(-500, 2)
    assert isinstance(admin, ChatMemberAdministrator)
    member = await bot.get_chat_member(-500, 3)
    assert isinstance(member, ChatMemberMember)
    admins = await bot.get_chat_administrators(-500)
    assert sorted(a.user.id for a in admins) == [1, 2]


async def test_set_my_commands(bot: Bot, emulator: BotApiEmulator) -> None:
    commands = [BotCommand(command="balance", description="Your credits")]
    assert await bot.set_my_commands(commands)
    got = await bot.get_my_commands()
    assert [(c.command, c.description) for c in got] == [("balance", "Your credits")]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])


async def test_update_builders_validate_as_aiogram_updates(emulator: BotApiEmulator) -> None:
    from aiogram.types import Update

    file_id = emulator.add_file(b"data", mime_type="video/mp4", file_name="clip.mp4")
    builders: list[dict[str, Any]] = [
        emulator.make_message_update(chat_id=1, user_id=1, text="/start"),
        emulator.make_message_update(chat_id=1, user_id=1, audio=(file_id, 5)),
        emulator.make_message_update(chat_id=1, user_id=1, video=(file_id, 5), forward=True),
        emulator.make_message_update(chat_id=1, user_id=1, video_note=(file_id, 5)),
        emulator.make_message_update(chat_id=1, user_id=1, document=file_id),
        emulator.make_message_update(
            chat_id=-77, user_id=1, chat_type="supergroup", text="hi group"
        ),
        emulator.make_successful_payment_update(
            chat_id=1, user_id=1, total_amount=5, invoice_payload="p"
        ),
    ]
    for built in builders:
        update = Update.model_validate({"update_id": 1, **built})
        assert update.event_type in ("message",)
    forwarded = Update.model_validate({"update_id": 1, **builders[2]})
    assert forwarded.message is not None and forwarded.message.forward_origin is not None
