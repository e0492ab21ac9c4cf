"""/lang (speech language) and /format (transcript shape): user preferences in Redis.

The interface language is not a setting: it follows Telegram's language_code.
"""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from gateway.clients import Services
from gateway.i18n import language_name, t
from gateway.prefs import OUTPUT_FORMATS, OutputFormat, Prefs
from gateway.replies import Buttons, answer_callback, edit_from_callback, reply
from transcriber.v1 import transcriber_pb2

LANG_PREFIX = "lang:"
FORMAT_PREFIX = "fmt:"
# Offered as buttons; /lang XX accepts any ISO 639-1 code the transcriber knows.
LANGUAGE_CHOICES = ("auto", "en", "ru", "uk", "de", "es", "fr")
_CODE = re.compile(r"^[a-z]{2}$")


async def _multilingual(services: Services) -> bool:
    models = await services.transcriber.ListModels(transcriber_pb2.ListModelsRequest(), timeout=5)
    return any(m.is_default and m.multilingual for m in models.models)


def _language_buttons(lang: str, multilingual: bool) -> Buttons:
    codes = LANGUAGE_CHOICES if multilingual else ("auto", "en")
    buttons = [(language_name(lang, "" if c == "auto" else c), LANG_PREFIX + c) for c in codes]
    return [buttons[i : i + 3] for i in range(0, len(buttons), 3)]


async def _set_language(
    services: Services, prefs: Prefs, user_id: int, lang: str, code: str
) -> str:
    """Store the choice; the sentence that tells the user how it went."""
    code = code.strip().lower()
    if code != "auto" and not _CODE.match(code):
        return t(lang, "lang_bad")
    language = "" if code == "auto" else code
    if language not in ("", "en") and not await _multilingual(services):
        current = (await prefs.user(user_id)).speech_language
        return t(lang, "lang_english_only", current=language_name(lang, current))
    await prefs.set_speech_language(user_id, language)
    return t(lang, "lang_set", current=language_name(lang, language))


async def on_lang(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_language(services, prefs, message.from_user.id, lang, command.args)
        await reply(services, message, "lang", text)
        return
    current = (await prefs.user(message.from_user.id)).speech_language
    buttons = _language_buttons(lang, await _multilingual(services))
    text = t(lang, "lang_current", current=language_name(lang, current))
    await reply(services, message, "lang", text, buttons=buttons)


async def on_lang_button(query: CallbackQuery, services: Services, prefs: Prefs, lang: str) -> None:
    assert query.data is not None
    code = query.data.removeprefix(LANG_PREFIX)
    text = await _set_language(services, prefs, query.from_user.id, lang, code)
    await edit_from_callback(services, query, text)
    await answer_callback(services, query)


def format_name(lang: str, output_format: str) -> str:
    return t(lang, f"format_{output_format}")


def to_proto(output_format: OutputFormat) -> transcriber_pb2.OutputFormat:
    return {
        "text": transcriber_pb2.OUTPUT_FORMAT_TEXT,
        "timestamps": transcriber_pb2.OUTPUT_FORMAT_TIMESTAMPED_TEXT,
        "srt": transcriber_pb2.OUTPUT_FORMAT_SRT,
    }[output_format]


def _format_buttons(lang: str) -> Buttons:
    return [[(format_name(lang, f), FORMAT_PREFIX + f)] for f in OUTPUT_FORMATS]


async def _set_format(prefs: Prefs, user_id: int, lang: str, choice: str) -> str:
    choice = choice.strip().lower()
    for output_format in OUTPUT_FORMATS:
        if choice == output_format:
            await prefs.set_output_format(user_id, output_format)
            return t(lang, "format_set", current=format_name(lang, output_format))
    return t(lang, "format_bad")


async def on_format(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_format(prefs, message.from_user.id, lang, command.args)
        await reply(services, message, "format", text)
        return
    current = (await prefs.user(message.from_user.id)).output_format
    text = t(lang, "format_current", current=format_name(lang, current))
    await reply(services, message, "format", text, buttons=_format_buttons(lang))


async def on_format_button(
    query: CallbackQuery, services: Services, prefs: Prefs, lang: str
) -> None:
    assert query.data is not None
    choice = query.data.removeprefix(FORMAT_PREFIX)
    text = await _set_format(prefs, query.from_user.id, lang, choice)
    await edit_from_callback(services, query, text)
    await answer_callback(services, query)


def make_router() -> Router:
    router = Router(name="settings")
    router.message.register(on_lang, Command("lang"))
    router.callback_query.register(on_lang_button, F.data.startswith(LANG_PREFIX))
    router.message.register(on_format, Command("format"))
    router.callback_query.register(on_format_button, F.data.startswith(FORMAT_PREFIX))
    return router
