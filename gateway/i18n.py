"""Every user-visible sentence, from Fluent catalogues: ``gateway/locales/<lang>/bot.ftl``.

Why Fluent (``fluent.runtime``) and not gettext with aiogram's ``I18nMiddleware``:
messages keep symbolic ids (``t(lang, "balance", balance=21)``, the call shape the
handlers already use); one sentence may count several nouns (``stats``), where
gettext's ``ngettext`` selects on a single number; plural categories and number
formats come from CLDR through Babel either way; and ``.ftl`` files ship as text,
with no ``.mo`` compile step to forget.

The interface language is English or Russian. A user may choose it (``/interface``,
stored in :mod:`gateway.prefs`); otherwise it follows Telegram's ``language_code``:
Russian for "ru", English for everything else. Telegram clients in Ukrainian,
Belarusian or Kazakh are offered the choice instead of being pushed into Russian.
A message missing from a catalogue falls back to English.

Adding a message: put ``key = ...`` in both ``en/bot.ftl`` and ``ru/bot.ftl`` (same
``$variables``; counted nouns as a select on the number, see ``balance``) and call
``t(lang, "key", name=value)`` with numbers as int/float. ``tests/gateway/test_i18n.py``
renders every message in both languages and fails on a gap.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from importlib.resources import files
from typing import Final

from babel import Locale, UnknownLocaleError
from fluent.runtime import FluentBundle, FluentResource
from fluent.syntax import ast

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE: Final = "en"
INTERFACE_LANGUAGES: Final = ("en", "ru")
# Telegram languages whose speakers often also read Russian: they start in English,
# as every language without a catalogue does, and are offered the choice.
OFFER_CHOICE: Final = frozenset({"uk", "be", "kk"})
# The command menu, in the order Telegram shows it; descriptions are cmd_<command>.
MENU_COMMANDS: Final = (
    "start",
    "help",
    "balance",
    "buy",
    "history",
    "lang",
    "format",
    "translate",
    "interface",
    "cancel",
    "t",
)


def _base(code: str | None) -> str:
    return (code or "").replace("_", "-").split("-")[0].lower()


@functools.cache
def catalogue(lang: str) -> ast.Resource:
    """The parsed ``bot.ftl`` of an interface language (read on first use, not at import)."""
    source = (files("gateway") / "locales" / lang / "bot.ftl").read_text(encoding="utf-8")
    resource = FluentResource(source)
    junk = [entry for entry in resource.body if isinstance(entry, ast.Junk)]
    if junk:
        raise ValueError(f"{lang}/bot.ftl does not parse: {(junk[0].content or '')[:80]!r}")
    return resource


@functools.cache
def bundle(lang: str) -> FluentBundle:
    # No Unicode isolation marks around values: Telegram text is copied and searched.
    messages = FluentBundle([lang], use_isolating=False)
    messages.add_resource(catalogue(lang))
    return messages


def message_ids(lang: str) -> frozenset[str]:
    return frozenset(e.id.name for e in catalogue(lang).body if isinstance(e, ast.Message))


def render(lang: str, key: str, **values: object) -> tuple[str, list[Exception]]:
    """The message in ``lang`` (else English) and what went wrong filling it in."""
    messages = bundle(lang if lang in INTERFACE_LANGUAGES else DEFAULT_LANGUAGE)
    if not messages.has_message(key):
        messages = bundle(DEFAULT_LANGUAGE)
    pattern = messages.get_message(key).value  # KeyError: a key no catalogue has
    if pattern is None:
        raise KeyError(key)
    text, errors = messages.format_pattern(pattern, dict(values))
    return str(text), errors


def t(lang: str, key: str, **values: object) -> str:
    text, errors = render(lang, key, **values)
    if errors:
        # A user still gets the sentence, with the unfilled part marked; never a crash.
        log.warning("message %s/%s: %s", lang, key, "; ".join(map(str, errors)))
    return text


def lang_of(language_code: str | None, chosen: str = "") -> str:
    """The interface language: the user's choice, else Telegram's when we have it, else English."""
    for code in (_base(chosen), _base(language_code)):
        if code in INTERFACE_LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def offers_choice(language_code: str | None) -> bool:
    """Whether this Telegram language should be offered the interface language choice."""
    return _base(language_code) in OFFER_CHOICE


def _locale(code: str) -> Locale | None:
    try:
        return Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return None


def language_name(lang: str, code: str) -> str:
    """How the interface names a speech language, from CLDR ("" = auto-detect)."""
    if not code:
        return t(lang, "lang_auto")
    locale = _locale(code)
    name = locale.get_display_name(lang) if locale else None
    return name or code


def native_name(code: str) -> str:
    """A language's name in itself, capitalised for a button: "Deutsch", "Polski"."""
    locale = _locale(code)
    name = locale.get_display_name(code) if locale else None
    return (name[:1].upper() + name[1:]) if name else code


class _Menu(Mapping[str, dict[str, str]]):
    """Interface language -> {command: description}, rendered when asked for."""

    def __getitem__(self, lang: str) -> dict[str, str]:
        if lang not in INTERFACE_LANGUAGES:
            raise KeyError(lang)
        return {command: t(lang, f"cmd_{command}") for command in MENU_COMMANDS}

    def __iter__(self) -> Iterator[str]:
        return iter(INTERFACE_LANGUAGES)

    def __len__(self) -> int:
        return len(INTERFACE_LANGUAGES)


# The command menu Telegram shows, per interface language (setMyCommands).
COMMANDS: Final[Mapping[str, dict[str, str]]] = _Menu()
