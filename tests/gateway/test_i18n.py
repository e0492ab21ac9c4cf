"""Every sentence exists in Russian and English, with the same placeholders."""

from __future__ import annotations

import string

import pytest

from gateway.i18n import MESSAGES, lang_of, language_name, t


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_both_languages_with_the_same_placeholders(key: str) -> None:
    texts = MESSAGES[key]
    assert set(texts) == {"en", "ru"}
    assert _fields(texts["en"]) == _fields(texts["ru"])
    assert all(text.strip() for text in texts.values())


def test_interface_language_follows_telegram() -> None:
    assert lang_of("ru") == lang_of("ru-RU") == lang_of("uk") == "ru"
    assert lang_of("en") == lang_of("de") == lang_of(None) == "en"
    assert t("ru", "nothing_to_cancel") == "Отменять нечего."
    assert language_name("en", "") == "detect automatically"
    assert language_name("ru", "ru") == "русский"


def test_command_menu_in_both_languages() -> None:
    from gateway.i18n import COMMANDS

    assert COMMANDS["en"].keys() == COMMANDS["ru"].keys()
    assert all(0 < len(d) <= 256 for menu in COMMANDS.values() for d in menu.values())
