"""/lang, /format, /translate and /interface through the real dispatcher and Redis prefs."""

from __future__ import annotations

from typing import Any

from billing.v1 import billing_pb2
from tests.gateway.fakes import transcript
from tests.gateway.test_dispatch import Rig, message, rig  # noqa: F401  (rig: the fixture)
from transcriber.v1 import transcriber_pb2


def multilingual(rig: Rig) -> None:  # noqa: F811
    rig.transcriber.replies["ListModels"] = transcriber_pb2.ListModelsResponse(
        models=[transcriber_pb2.ModelInfo(name="base", multilingual=True, is_default=True)]
    )


def buttons(request: Any) -> list[tuple[str, str]]:
    return [(b.text, b.callback_data) for row in request.buttons for b in row.buttons]


async def press(rig: Rig, user_id: int, data: str, language_code: str = "en") -> None:  # noqa: F811
    await rig.feed(
        rig.emu.make_callback_update(
            chat_id=user_id,
            user_id=user_id,
            data=data,
            message_id=1,
            language_code=language_code,
        )
    )


async def test_lang_offers_auto_and_the_common_languages_by_their_own_names(
    rig: Rig,  # noqa: F811
) -> None:
    multilingual(rig)
    await rig.feed(message(rig, user_id=40, text="/lang"))
    [send] = rig.notifier.requests("Send")
    assert send.text == "Speech language: detect automatically. Choose another:"
    assert buttons(send) == [
        ("✓ Detect automatically", "lang:auto"),
        ("Русский", "lang:ru"),
        ("English", "lang:en"),
        ("Українська", "lang:uk"),
        ("Deutsch", "lang:de"),
        ("Español", "lang:es"),
        ("Français", "lang:fr"),
        ("Italiano", "lang:it"),
        ("Português", "lang:pt"),
        ("Polski", "lang:pl"),
        ("Türkçe", "lang:tr"),
        ("Қазақ тілі", "lang:kk"),
        ("Беларуская", "lang:be"),
    ]
    await press(rig, 40, "lang:uk")
    [edit] = rig.notifier.requests("Edit")
    assert edit.text == "Speech language: Ukrainian."
    assert (await rig.prefs.user(40)).speech_language == "uk"
    # The next note is transcribed as Ukrainian.
    rig.transcriber.events = transcript("Привіт.")
    await rig.feed(message(rig, user_id=40, voice=("f40", 2)))
    [stream] = rig.transcriber.streams
    assert stream.uploaded[0].config.language == "uk"
    # Named in the interface's language, and marked as the current choice.
    await rig.feed(message(rig, user_id=40, text="/lang", language_code="ru"))
    last = rig.notifier.requests("Send")[-1]
    assert last.text == "Язык речи: украинский. Выберите другой:"
    assert ("✓ Українська", "lang:uk") in buttons(last)


async def test_an_english_only_model_offers_only_english(rig: Rig) -> None:  # noqa: F811
    await rig.feed(message(rig, user_id=41, text="/lang"))
    [send] = rig.notifier.requests("Send")
    assert buttons(send) == [("✓ Detect automatically", "lang:auto"), ("English", "lang:en")]
    await rig.feed(message(rig, user_id=41, text="/lang ru"))
    assert rig.texts()[-1] == (
        "This server only transcribes English; the language stays detect automatically."
    )
    assert (await rig.prefs.user(41)).speech_language == ""


async def test_format_offers_text_timestamps_srt_and_vtt(rig: Rig) -> None:  # noqa: F811
    await rig.feed(message(rig, user_id=42, text="/format", language_code="ru"))
    [send] = rig.notifier.requests("Send")
    assert send.text == "Формат расшифровки: обычный текст. Выберите другой:"
    assert buttons(send) == [
        ("✓ Обычный текст", "fmt:text"),
        ("Текст с таймкодами", "fmt:timestamps"),
        ("Субтитры SRT", "fmt:srt"),
        ("Субтитры WebVTT", "fmt:vtt"),
    ]
    await press(rig, 42, "fmt:vtt", language_code="ru")
    assert rig.notifier.requests("Edit")[-1].text == "Формат расшифровки: субтитры WebVTT."
    assert (await rig.prefs.user(42)).output_format == "vtt"
    await rig.feed(message(rig, user_id=42, text="/format docx"))
    assert rig.texts()[-1].startswith("Unknown format; try /format text")
    rig.transcriber.events = transcript("Hi.", formatted="WEBVTT\n\n00:00.000 --> 00:01.000\nHi.")
    await rig.feed(message(rig, user_id=42, voice=("f42", 1)))
    [stream] = rig.transcriber.streams
    assert stream.uploaded[0].config.output_format == transcriber_pb2.OUTPUT_FORMAT_VTT


async def test_translate_into_english_is_off_until_turned_on(rig: Rig) -> None:  # noqa: F811
    # An English-only model cannot translate: refused, the setting stays off.
    await rig.feed(message(rig, user_id=43, text="/translate on"))
    assert rig.texts() == ["This server only transcribes English, so it cannot translate."]
    assert (await rig.prefs.user(43)).translate is False
    multilingual(rig)
    await rig.feed(message(rig, user_id=43, text="/translate"))
    send = rig.notifier.requests("Send")[-1]
    assert send.text == "Translation into English: off. Change it:"
    assert buttons(send) == [("On", "tr:on"), ("✓ Off", "tr:off")]
    await press(rig, 43, "tr:on")
    assert rig.notifier.requests("Edit")[-1].text == "Translation into English: on."
    assert (await rig.prefs.user(43)).translate is True
    await rig.feed(message(rig, user_id=43, text="/translate maybe", language_code="ru"))
    assert rig.texts()[-1] == "Попробуйте /translate on или /translate off."
    await rig.feed(message(rig, user_id=43, text="/translate off", language_code="ru"))
    assert rig.texts()[-1] == "Перевод на английский: выключен."
    assert (await rig.prefs.user(43)).translate is False


async def test_ukrainian_telegram_starts_in_english_and_may_choose_russian(
    rig: Rig,  # noqa: F811
) -> None:
    await rig.feed(message(rig, user_id=44, text="/start", language_code="uk"))
    [send] = rig.notifier.requests("Send")
    assert send.text.startswith("Hi again!")
    assert send.text.endswith("You can choose the bot's language:")
    assert buttons(send) == [
        ("✓ As in Telegram", "ui:auto"),
        ("English", "ui:en"),
        ("Русский", "ui:ru"),
    ]
    await press(rig, 44, "ui:ru", language_code="uk")
    # Said in the language just chosen; every later reply follows it.
    assert rig.notifier.requests("Edit")[-1].text == "Язык бота: русский."
    assert (await rig.prefs.user(44)).interface_language == "ru"
    await rig.feed(message(rig, user_id=44, text="/help", language_code="uk"))
    assert rig.texts()[-1].startswith("Пришлите голосовое, аудио, видео или кружок")
    # Once chosen, /start no longer asks.
    await rig.feed(message(rig, user_id=44, text="/start", language_code="uk"))
    assert rig.texts()[-1].startswith("Снова привет!")
    assert buttons(rig.notifier.requests("Send")[-1]) == []
    await rig.feed(message(rig, user_id=44, text="/interface auto", language_code="uk"))
    assert rig.texts()[-1] == "The bot's language: as in Telegram."
    assert (await rig.prefs.user(44)).interface_language == ""


async def test_interface_command_and_russian_start(rig: Rig) -> None:  # noqa: F811
    await rig.feed(message(rig, user_id=45, text="/start", language_code="ru"))
    assert buttons(rig.notifier.requests("Send")[-1]) == []  # Russian Telegram: no question
    await rig.feed(message(rig, user_id=45, text="/interface", language_code="ru"))
    send = rig.notifier.requests("Send")[-1]
    assert send.text == "Язык бота: как в Telegram. Выберите другой:"
    await rig.feed(message(rig, user_id=45, text="/interface xx", language_code="ru"))
    assert rig.texts()[-1].startswith("Неизвестный язык; попробуйте /interface ru")
    await rig.feed(message(rig, user_id=45, text="/interface en", language_code="ru"))
    assert rig.texts()[-1] == "The bot's language: English."
    await rig.feed(message(rig, user_id=45, text="/cancel", language_code="ru"))
    assert rig.texts()[-1] == "Nothing to cancel."


async def test_balance_in_russian_counts_and_formats(rig: Rig) -> None:  # noqa: F811
    for user, amount, seconds in ((46, 21, 90), (47, 2, 6), (48, 5, 30)):
        rig.billing.replies["GetBalance"] = billing_pb2.GetBalanceResponse(
            balance_credits=amount, seconds_available=seconds
        )
        await rig.feed(message(rig, user_id=user, text="/balance", language_code="ru"))
    assert rig.texts() == [
        "Баланс: 21 кредит (примерно 1,5 мин аудио).",
        "Баланс: 2 кредита (примерно 0,1 мин аудио).",
        "Баланс: 5 кредитов (примерно 0,5 мин аудио).",
    ]
