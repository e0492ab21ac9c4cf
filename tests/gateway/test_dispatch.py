"""Routing, middlewares and handlers through ``dp.feed_raw_update``.

The real dispatcher (routers, filters, middlewares, error handlers) with
real Redis; only the gRPC stubs and the Bot's HTTP transport are fakes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import ChatMemberMember, ChatMemberOwner, User
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from billing.v1 import billing_pb2
from gateway.app import Guards, build_dispatcher
from gateway.config import GatewaySettings
from gateway.jobs.accept import Jobs
from gateway.jobs.queue import JobQueue
from gateway.jobs.runner import Runner
from gateway.jobs.saga import Saga
from gateway.limits import RateLimiter, UpdateDedupe
from gateway.middlewares import UserOrderMiddleware
from gateway.payments import Payments
from gateway.prefs import RedisPrefs
from tests.gateway.fakes import (
    FakeFiles,
    FakeStub,
    FakeTranscriber,
    MemoryJobs,
    RecordingSession,
    fake_services,
    rpc_error,
    transcript,
)
from voxmesh.errors import PermissionDenied, Unavailable
from voxmesh_dev.telegram import BotApiEmulator


@dataclass
class Rig:
    dp: Dispatcher
    bot: Bot
    session: RecordingSession
    billing: FakeStub
    transcriber: FakeTranscriber
    notifier: FakeStub
    prefs: RedisPrefs
    emu: BotApiEmulator
    runner: Runner

    async def feed(self, update: dict[str, Any]) -> None:
        # The emulator remembers it, so later replies to this message carry it.
        update_id = self.emu.push_update(update)
        await self.dp.feed_raw_update(self.bot, {**update, "update_id": update_id})
        await self.runner.idle()  # the jobs it started, run to their end

    def texts(self) -> list[str]:
        return [r.text for r in self.notifier.requests("Send")]


@pytest.fixture
async def rig(redis_url: str, key_prefix: str) -> AsyncIterator[Rig]:
    redis = Redis.from_url(redis_url)
    services, billing, transcriber, notifier = fake_services()
    session = RecordingSession()
    bot = Bot("42:TEST", session=session)
    prefs = RedisPrefs(redis, key_prefix)
    settings = GatewaySettings.from_env({"TELEGRAM_BOT_TOKEN": "42:TEST"})
    MemoryJobs().install(billing)
    saga = Saga(services, FakeFiles(), download_limit=20 << 20, edit_interval_seconds=0.01)
    queue = JobQueue(services, bot_id=42, owner="test")
    runner = Runner(queue, saga, lease_seconds=5)
    dp, _ = build_dispatcher(
        services=services,
        jobs=Jobs(queue, runner, saga),
        prefs=prefs,
        payments=Payments(redis, key_prefix, services),
        guards=Guards(
            limiter=RateLimiter(redis, key_prefix, limit=5),
            dedupe=UpdateDedupe(redis, key_prefix, ttl_seconds=60),
        ),
        settings=settings,
        registry=CollectorRegistry(),
    )
    yield Rig(dp, bot, session, billing, transcriber, notifier, prefs, BotApiEmulator(), runner)
    await redis.aclose()


def message(rig: Rig, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("chat_id", kwargs.get("user_id", 1))
    return rig.emu.make_message_update(**kwargs)


async def test_private_text_gets_a_hint_and_group_chatter_nothing(rig: Rig) -> None:
    await rig.feed(message(rig, user_id=5, text="hello"))
    await rig.feed(message(rig, user_id=5, chat_id=-100, chat_type="group", text="hi all"))
    assert rig.texts() == ["Send me a voice note, audio or video and I'll transcribe it. /help"]
    # The user was made known to billing on each update.
    assert [r.user_id for r in rig.billing.requests("EnsureUser")] == [5, 5]


async def test_t_without_a_note_explains_itself(rig: Rig) -> None:
    await rig.feed(message(rig, user_id=6, chat_id=-100, chat_type="supergroup", text="/t"))
    [send] = rig.notifier.requests("Send")
    assert send.text.startswith("Reply to a voice note") and send.reply_to_message_id > 0


async def test_t_on_a_note_makes_the_asker_pay(rig: Rig) -> None:
    rig.transcriber.events = transcript("Hello there.")
    note = message(rig, user_id=7, chat_id=-100, chat_type="supergroup", voice=("f1", 3))
    await rig.feed(note)
    assert rig.notifier.calls == []  # privacy: a note alone is not for us
    note_id = note["message"]["message_id"]
    await rig.feed(
        message(
            rig,
            user_id=8,
            chat_id=-100,
            chat_type="supergroup",
            text="/t",
            reply_to_message_id=note_id,
        )
    )
    [reserve] = rig.billing.requests("Reserve")
    assert reserve.user_id == 8 and reserve.job.message_id == note_id
    assert rig.notifier.requests("Edit")[-1].text == "Hello there."
    assert all(s.reply_to_message_id == note_id for s in rig.notifier.requests("Send"))


async def test_autotranscribe_is_for_group_admins(rig: Rig) -> None:
    def member(method: Any) -> Any:
        user = User(id=method.user_id, is_bot=False, first_name="x")
        if method.user_id == 10:
            return ChatMemberOwner(user=user, is_anonymous=False)
        return ChatMemberMember(user=user)

    rig.session.results["getChatMember"] = member
    group = {"chat_id": -200, "chat_type": "group"}
    await rig.feed(message(rig, user_id=11, text="/autotranscribe", **group))
    assert await rig.prefs.autotranscribe(-200) is False
    await rig.feed(message(rig, user_id=10, text="/autotranscribe", **group))
    assert await rig.prefs.autotranscribe(-200) is True
    assert rig.texts() == [
        "Only group admins can change this.",
        "Auto-transcription is on: I'll transcribe every voice note here.",
    ]
    rig.transcriber.events = transcript("Auto.")
    await rig.feed(message(rig, user_id=12, voice=("f2", 2), **group))
    assert rig.billing.requests("Reserve")[0].user_id == 12
    await rig.feed(message(rig, user_id=10, text="/autotranscribe off", **group))
    assert await rig.prefs.autotranscribe(-200) is False


async def test_pre_checkout_accepts_only_what_was_offered(rig: Rig) -> None:
    ok = rig.emu.make_pre_checkout_update(
        user_id=20, total_amount=50, invoice_payload="credits:50:500"
    )
    cheap = rig.emu.make_pre_checkout_update(
        user_id=20, total_amount=1, invoice_payload="credits:50:500"
    )
    forged = rig.emu.make_pre_checkout_update(
        user_id=20, total_amount=50, invoice_payload="credits:50:5000000"
    )
    for update in (ok, cheap, forged):
        await rig.feed(update)
    answers = rig.session.sent("answerPreCheckoutQuery")
    assert [a.ok for a in answers] == [True, False, False]
    assert answers[1].error_message == "This offer is no longer valid; please use /buy again."


async def test_successful_payment_tops_up_by_the_charge_id(rig: Rig) -> None:
    rig.billing.replies["TopUp"] = billing_pb2.TopUpResponse(balance_credits=600)
    paid = rig.emu.make_successful_payment_update(
        chat_id=21,
        user_id=21,
        total_amount=50,
        invoice_payload="credits:50:500",
        telegram_payment_charge_id="stxABC",
    )
    await rig.feed(paid)
    await rig.feed(paid)  # delivered again, with a new update_id
    top_ups = rig.billing.requests("TopUp")
    assert {(r.idempotency_key, r.user_id, r.amount_credits, r.provider) for r in top_ups} == {
        ("stxABC", 21, 500, "telegram_stars")
    }
    assert {s.idempotency_key for s in rig.notifier.requests("Send")} == {"paid:stxABC"}


async def test_buy_button_sends_a_stars_invoice(rig: Rig) -> None:
    await rig.feed(message(rig, user_id=22, text="/buy"))
    [menu] = rig.notifier.requests("Send")
    assert [b.callback_data for row in menu.buttons for b in row.buttons] == [
        "buy:50:500",
        "buy:100:1000",
        "buy:250:2500",
    ]
    await rig.feed(message(rig, user_id=22, text="x"))  # a message the button sits on
    press = rig.emu.make_callback_update(chat_id=22, user_id=22, data="buy:100:1000", message_id=1)
    await rig.feed(press)
    [invoice] = rig.session.sent("sendInvoice")
    assert (invoice.currency, invoice.payload, invoice.prices[0].amount) == (
        "XTR",
        "credits:100:1000",
        100,
    )
    assert len(rig.notifier.requests("AnswerCallback")) == 1


async def test_not_admin_gets_a_short_reply(rig: Rig) -> None:
    rig.billing.errors["Stats"] = rpc_error(PermissionDenied("no", reason="NOT_ADMIN"))
    await rig.feed(message(rig, user_id=30, text="/stats"))
    await rig.feed(message(rig, user_id=30, text="/grant 5 x"))
    assert rig.texts() == ["Admins only.", "Usage: /grant USER_ID CREDITS"]


async def test_a_failure_is_one_sentence_with_a_reference(rig: Rig) -> None:
    rig.billing.errors["GetBalance"] = rpc_error(Unavailable("db down"))
    await rig.feed(message(rig, user_id=31, text="/balance", language_code="ru"))
    [text] = rig.texts()
    assert text.startswith("Что-то пошло не так; ничего не списано. Код: ")


async def test_a_reply_the_notifier_queued_is_not_reported_as_failed(rig: Rig) -> None:
    # A 429 storm longer than the call's deadline: the notifier keeps the reply
    # in its outbox and says so. It will go out; a "something went wrong" would too.
    rig.notifier.errors["Send"] = rpc_error(
        Unavailable(
            "the message is queued and not yet delivered; retry with the same key",
            reason="TELEGRAM_UNAVAILABLE",
            metadata={"queued": "true"},
            retry_after=3.0,
        ),
        domain="notifier.voxmesh",
    )
    await rig.feed(message(rig, user_id=34, text="/balance"))
    assert [text.split(" ")[0] for text in rig.texts()] == ["Balance:"]


async def test_a_reply_the_notifier_could_not_take_is_reported(rig: Rig) -> None:
    rig.notifier.errors["Send"] = rpc_error(Unavailable("redis down"), domain="notifier.voxmesh")
    await rig.feed(message(rig, user_id=35, text="/balance"))
    texts = rig.texts()
    assert texts[0].startswith("Balance: ") and texts[1].startswith("Sorry, something went wrong")


async def test_rate_limit_answers_once_and_drops_the_rest(rig: Rig) -> None:
    for _ in range(8):
        await rig.feed(message(rig, user_id=32, text="/help"))
    texts = rig.texts()
    assert len(texts) == 6
    assert texts[-1] == "Too many messages; please wait a minute."


async def test_a_redelivered_update_is_handled_once(rig: Rig) -> None:
    update = {"update_id": 777_000_001, **message(rig, user_id=33, text="/help")}
    await rig.dp.feed_raw_update(rig.bot, update)
    await rig.dp.feed_raw_update(rig.bot, update)
    assert len(rig.texts()) == 1


async def test_history_pages_with_buttons(rig: Rig) -> None:
    def page(request: Any) -> billing_pb2.ListTransactionsResponse:
        tx = billing_pb2.Transaction(
            kind=billing_pb2.TRANSACTION_KIND_GRANT, amount_credits=5, balance_after_credits=105
        )
        return billing_pb2.ListTransactionsResponse(
            transactions=[tx], next_page_token="" if request.page_token else "TOKEN"
        )

    rig.billing.replies["ListTransactions"] = page
    await rig.feed(message(rig, user_id=34, text="/history"))
    [first] = rig.notifier.requests("Send")
    assert first.text.splitlines()[1].endswith("gift: +5 → 105")
    assert [(b.text, b.callback_data) for b in first.buttons[0].buttons] == [("Older ›", "h:TOKEN")]
    await rig.feed(message(rig, user_id=34, text="x"))
    await rig.feed(
        rig.emu.make_callback_update(chat_id=34, user_id=34, data="h:TOKEN", message_id=1)
    )
    [edit] = rig.notifier.requests("Edit")
    assert [b.callback_data for b in edit.buttons[0].buttons] == ["h:"]
    assert rig.billing.requests("ListTransactions")[-1].page_token == "TOKEN"
    assert len(rig.notifier.requests("AnswerCallback")) == 1


async def test_format_and_language_preferences(rig: Rig) -> None:
    await rig.feed(message(rig, user_id=35, text="/format timestamps"))
    await rig.feed(message(rig, user_id=35, text="/lang zz!"))
    await rig.feed(message(rig, user_id=35, text="/lang en"))
    assert rig.texts() == [
        "Transcript format: text with timestamps.",
        "Unknown language; try /lang auto, /lang en or /lang ru.",
        "Speech language: English.",
    ]
    prefs = await rig.prefs.user(35)
    assert (prefs.speech_language, prefs.output_format) == ("en", "timestamps")
    rig.transcriber.events = transcript("Hi.", formatted="[00:00] Hi.")
    await rig.feed(message(rig, user_id=35, voice=("f3", 1)))
    [stream] = rig.transcriber.streams
    config = stream.uploaded[0].config
    assert config.language == "en" and config.output_format == 2  # TIMESTAMPED_TEXT
    assert rig.notifier.requests("Edit")[-1].text == "[00:00] Hi."


async def test_user_order_keeps_arrival_order() -> None:
    order: list[int] = []
    middleware = UserOrderMiddleware()
    user = User(id=1, is_bot=False, first_name="x")

    async def handler(event: Any, data: dict[str, Any]) -> None:
        # Later updates finish their I/O first: without the gate they would overtake.
        await asyncio.sleep(0.05 / (event + 1))
        order.append(event)

    await asyncio.gather(
        *(middleware(handler, i, {"event_from_user": user}) for i in range(5))  # type: ignore[arg-type]
    )
    assert order == [0, 1, 2, 3, 4]
    assert middleware._locks == {}
