"""The user's settings, kept in Redis (:mod:`gateway.prefs`), each a command with buttons.

/lang (speech language), /format (transcript shape), /translate (into English) and
/interface (the bot's own language: English or Russian, else Telegram's).
``/cmd value`` sets it at once; ``/cmd`` alone shows it with a button per choice.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, User

from gateway.clients import Services
from gateway.i18n import INTERFACE_LANGUAGES, lang_of, language_name, native_name, t
from gateway.prefs import OUTPUT_FORMATS, OutputFormat, Prefs
from gateway.replies import Buttons, answer_callback, edit_from_callback, reply
from transcriber.v1 import transcriber_pb2

LANG_PREFIX = "lang:"
FORMAT_PREFIX = "fmt:"
TRANSLATE_PREFIX = "tr:"
INTERFACE_PREFIX = "ui:"
# Offered as buttons (by their own names); /lang XX accepts any ISO 639-1 code
# the transcriber knows.
LANGUAGE_CHOICES = ("auto", "ru", "en", "uk", "de", "es", "fr", "it", "pt", "pl", "tr", "kk", "be")
_CODE = re.compile(r"^[a-z]{2}$")
_ON = ("on", "1", "yes")
_OFF = ("off", "0", "no")

# Stores a choice: (services, prefs, user, interface language, choice) -> the reply.
Setter = Callable[[Services, Prefs, User, str, str], Awaitable[str]]


def _rows(buttons: Sequence[tuple[str, str]], width: int) -> Buttons:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def _mark(label: str, chosen: bool) -> str:
    return f"✓ {label}" if chosen else label


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


async def _multilingual(services: Services) -> bool:
    models = await services.transcriber.ListModels(transcriber_pb2.ListModelsRequest(), timeout=5)
    return any(m.is_default and m.multilingual for m in models.models)


# --- /lang: the spoken language ------------------------------------------------------


def _language_buttons(lang: str, multilingual: bool, current: str) -> Buttons:
    codes = LANGUAGE_CHOICES if multilingual else ("auto", "en")
    buttons = [
        (
            _mark(
                _capital(language_name(lang, "")) if c == "auto" else native_name(c),
                (current or "auto") == c,
            ),
            LANG_PREFIX + c,
        )
        for c in codes
    ]
    return _rows(buttons, 3)


async def _set_language(services: Services, prefs: Prefs, user: User, lang: str, code: str) -> str:
    """Store the choice; the sentence that tells the user how it went."""
    code = code.strip().lower()
    if code != "auto" and not _CODE.match(code):
        return t(lang, "lang_bad")
    language = "" if code == "auto" else code
    if language not in ("", "en") and not await _multilingual(services):
        current = (await prefs.user(user.id)).speech_language
        return t(lang, "lang_english_only", current=language_name(lang, current))
    await prefs.set_speech_language(user.id, language)
    return t(lang, "lang_set", current=language_name(lang, language))


async def on_lang(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_language(services, prefs, message.from_user, lang, command.args)
        await reply(services, message, "lang", text)
        return
    current = (await prefs.user(message.from_user.id)).speech_language
    buttons = _language_buttons(lang, await _multilingual(services), current)
    text = t(lang, "lang_current", current=language_name(lang, current))
    await reply(services, message, "lang", text, buttons=buttons)


# --- /format: the transcript's shape ---------------------------------------------------


def format_name(lang: str, output_format: str) -> str:
    return t(lang, f"format_{output_format}")


def to_proto(output_format: OutputFormat) -> transcriber_pb2.OutputFormat:
    return {
        "text": transcriber_pb2.OUTPUT_FORMAT_TEXT,
        "timestamps": transcriber_pb2.OUTPUT_FORMAT_TIMESTAMPED_TEXT,
        "srt": transcriber_pb2.OUTPUT_FORMAT_SRT,
        "vtt": transcriber_pb2.OUTPUT_FORMAT_VTT,
    }[output_format]


def _format_buttons(lang: str, current: str) -> Buttons:
    return [
        [(_mark(_capital(format_name(lang, f)), f == current), FORMAT_PREFIX + f)]
        for f in OUTPUT_FORMATS
    ]


async def _set_format(services: Services, prefs: Prefs, user: User, lang: str, choice: str) -> str:
    choice = choice.strip().lower()
    for output_format in OUTPUT_FORMATS:
        if choice == output_format:
            await prefs.set_output_format(user.id, output_format)
            return t(lang, "format_set", current=format_name(lang, output_format))
    return t(lang, "format_bad")


async def on_format(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_format(services, prefs, message.from_user, lang, command.args)
        await reply(services, message, "format", text)
        return
    current = (await prefs.user(message.from_user.id)).output_format
    text = t(lang, "format_current", current=format_name(lang, current))
    await reply(services, message, "format", text, buttons=_format_buttons(lang, current))


# --- /translate: an English translation instead of the spoken language -----------------


def _on_off(lang: str, on: bool) -> str:
    return t(lang, "translate_on" if on else "translate_off")


def _translate_buttons(lang: str, current: bool) -> Buttons:
    return [
        [
            (_mark(_capital(_on_off(lang, True)), current), TRANSLATE_PREFIX + "on"),
            (_mark(_capital(_on_off(lang, False)), not current), TRANSLATE_PREFIX + "off"),
        ]
    ]


async def _set_translate(
    services: Services, prefs: Prefs, user: User, lang: str, choice: str
) -> str:
    choice = choice.strip().lower()
    if choice not in _ON + _OFF:
        return t(lang, "translate_bad")
    on = choice in _ON
    # Only a multilingual model has the translate task.
    if on and not await _multilingual(services):
        return t(lang, "translate_unavailable")
    await prefs.set_translate(user.id, on)
    return t(lang, "translate_set", current=_on_off(lang, on))


async def on_translate(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_translate(services, prefs, message.from_user, lang, command.args)
        await reply(services, message, "translate", text)
        return
    current = (await prefs.user(message.from_user.id)).translate
    text = t(lang, "translate_current", current=_on_off(lang, current))
    await reply(services, message, "translate", text, buttons=_translate_buttons(lang, current))


# --- /interface: the bot's own language -------------------------------------------------


def interface_buttons(lang: str, current: str) -> Buttons:
    """Auto (Telegram's) and each interface language by its own name."""
    buttons = [(_mark(_capital(t(lang, "interface_auto")), not current), INTERFACE_PREFIX + "auto")]
    buttons += [
        (_mark(native_name(code), code == current), INTERFACE_PREFIX + code)
        for code in INTERFACE_LANGUAGES
    ]
    return [buttons]


def _interface_name(lang: str, chosen: str) -> str:
    return language_name(lang, chosen) if chosen else t(lang, "interface_auto")


async def _set_interface(
    services: Services, prefs: Prefs, user: User, lang: str, choice: str
) -> str:
    choice = choice.strip().lower()
    if choice != "auto" and choice not in INTERFACE_LANGUAGES:
        return t(lang, "interface_bad")
    chosen = "" if choice == "auto" else choice
    await prefs.set_interface_language(user.id, chosen)
    # Said in the language just chosen ("auto": Telegram's again).
    new = lang_of(user.language_code, chosen)
    return t(new, "interface_set", current=_interface_name(new, chosen))


async def on_interface(
    message: Message, command: CommandObject, services: Services, prefs: Prefs, lang: str
) -> None:
    assert message.from_user is not None
    if command.args:
        text = await _set_interface(services, prefs, message.from_user, lang, command.args)
        await reply(services, message, "interface", text)
        return
    current = (await prefs.user(message.from_user.id)).interface_language
    text = t(lang, "interface_current", current=_interface_name(lang, current))
    await reply(services, message, "interface", text, buttons=interface_buttons(lang, current))


# --- buttons ---------------------------------------------------------------------------


def _button(prefix: str, setter: Setter) -> Callable[..., Awaitable[None]]:
    """A callback handler: the button's choice goes through the same setter as /cmd X."""

    async def on_button(query: CallbackQuery, services: Services, prefs: Prefs, lang: str) -> None:
        assert query.data is not None
        choice = query.data.removeprefix(prefix)
        text = await setter(services, prefs, query.from_user, lang, choice)
        await edit_from_callback(services, query, text)
        await answer_callback(services, query)

    return on_button


def make_router() -> Router:
    router = Router(name="settings")
    for command, handler, prefix, setter in (
        ("lang", on_lang, LANG_PREFIX, _set_language),
        ("format", on_format, FORMAT_PREFIX, _set_format),
        ("translate", on_translate, TRANSLATE_PREFIX, _set_translate),
        ("interface", on_interface, INTERFACE_PREFIX, _set_interface),
    ):
        router.message.register(handler, Command(command))
        router.callback_query.register(_button(prefix, setter), F.data.startswith(prefix))
    return router
