"""Every message renders in Russian and English: plurals and numbers from CLDR (Fluent + Babel)."""

from __future__ import annotations

import pathlib
import re

import pytest
from fluent.syntax import ast
from fluent.syntax.visitor import Visitor

from gateway.i18n import (
    COMMANDS,
    catalogue,
    lang_of,
    language_name,
    message_ids,
    native_name,
    offers_choice,
    render,
    t,
)

VALUES = (0, 1, 2, 5, 21, 1.5)
# CLDR plural category of each value, written out here so a wrong rule shows.
RU_CATEGORY = {0: "many", 1: "one", 2: "few", 5: "many", 21: "one", 1.5: "other"}
RU_NOUNS = {
    "кредит": {"one": "кредит", "few": "кредита", "many": "кредитов", "other": "кредита"},
    "запис": {"one": "запись", "few": "записи", "many": "записей", "other": "записи"},
}
EN_NOUNS = {"credit": ("credit", "credits"), "recording": ("recording", "recordings")}


class _Variables(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_VariableReference(self, node: ast.VariableReference) -> None:
        self.names.add(node.id.name)


def variables(lang: str, key: str) -> set[str]:
    visitor = _Variables()
    for entry in catalogue(lang).body:
        if isinstance(entry, ast.Message) and entry.id.name == key:
            visitor.visit(entry)
    return visitor.names


KEYS = sorted(message_ids("en"))


def test_both_catalogues_have_the_same_messages_and_variables() -> None:
    assert message_ids("ru") == message_ids("en")
    assert len(KEYS) > 90
    for key in KEYS:
        assert variables("ru", key) == variables("en", key), key


def _nouns_in_russian(text: str, value: float) -> int:
    """Checks each "<value> <noun>" in ``text``; how many it found."""
    number = str(value).replace(".", ",")
    found = 0
    for stem, forms in RU_NOUNS.items():
        for word in re.findall(rf"(?<![\d,]){re.escape(number)} ({stem}\w*)", text):
            assert word == forms[RU_CATEGORY[value]], (value, text)
            found += 1
    return found


def _nouns_in_english(text: str, value: float) -> int:
    found = 0
    for stem, (one, other) in EN_NOUNS.items():
        for word in re.findall(rf"(?<![\d.]){re.escape(str(value))} ({stem}\w*)", text):
            assert word == (one if value == 1 else other), (value, text)
            found += 1
    return found


@pytest.mark.parametrize("key", KEYS)
def test_every_message_renders_in_both_languages(key: str) -> None:
    names = variables("en", key)
    for value in VALUES:
        for lang in ("en", "ru"):
            text, errors = render(lang, key, **dict.fromkeys(names, value))
            assert errors == [], (lang, key, value, errors)
            assert text.strip() and "{" not in text and "}" not in text, (lang, key, text)
            assert "\u2068" not in text  # no Unicode isolation marks in Telegram text
            if names and value == 1.5:
                # Decimal comma in Russian, point in English.
                assert ("1,5" in text) == (lang == "ru") and ("1.5" in text) == (lang == "en")


def test_counted_nouns_agree_with_the_number() -> None:
    counted = 0
    for key in KEYS:
        names = variables("en", key)
        for value in VALUES:
            values = dict.fromkeys(names, value)
            counted += _nouns_in_russian(t("ru", key, **values), value)
            counted += _nouns_in_english(t("en", key, **values), value)
    # balance, welcome, paid, stats, queue_full ... in both languages, at every value.
    assert counted > 100


@pytest.mark.parametrize(
    ("balance", "minutes", "ru", "en"),
    [
        (0, 0, "Баланс: 0 кредитов (примерно 0 мин аудио).", "Balance: 0 credits (about 0 min"),
        (1, 0.1, "Баланс: 1 кредит (примерно 0,1 мин аудио).", "Balance: 1 credit (about 0.1 min"),
        (2, 0.2, "Баланс: 2 кредита (примерно 0,2 мин аудио).", "Balance: 2 credits (about"),
        (5, 0.5, "Баланс: 5 кредитов (примерно 0,5 мин аудио).", "Balance: 5 credits (about"),
        (21, 2.1, "Баланс: 21 кредит (примерно 2,1 мин аудио).", "Balance: 21 credits (about"),
        (15, 1.5, "Баланс: 15 кредитов (примерно 1,5 мин аудио).", "(about 1.5 min of audio)"),
        (1000, 100, "Баланс: 1\xa0000 кредитов (примерно 100 мин", "Balance: 1,000 credits"),
    ],
)
def test_balance_in_both_languages(balance: int, minutes: float, ru: str, en: str) -> None:
    assert ru in t("ru", "balance", balance=balance, minutes=minutes)
    assert en in t("en", "balance", balance=balance, minutes=minutes)


def test_a_missing_value_is_reported_not_raised() -> None:
    text, errors = render("ru", "balance", balance=3)
    assert errors and "minutes" in str(errors[0])
    assert text.startswith("Баланс: 3 кредита")


def test_other_languages_fall_back_to_english() -> None:
    assert t("de", "nothing_to_cancel") == t("en", "nothing_to_cancel") == "Nothing to cancel."
    assert t("ru", "nothing_to_cancel") == "Отменять нечего."
    with pytest.raises(KeyError):
        t("en", "no_such_message")


def test_interface_language_chain() -> None:
    assert lang_of("ru") == lang_of("ru-RU") == lang_of("RU") == "ru"
    # Ukrainian, Belarusian, Kazakh and every other language start in English ...
    assert lang_of("uk") == lang_of("be") == lang_of("kk") == lang_of("de") == "en"
    assert lang_of(None) == lang_of("") == "en"
    # ... and the user's own choice wins over Telegram's.
    assert lang_of("uk", "ru") == lang_of("en", "ru") == "ru"
    assert lang_of("ru", "en") == "en"
    assert lang_of("ru", "xx") == "ru"
    assert offers_choice("uk") and offers_choice("be-BY") and offers_choice("kk")
    assert not offers_choice("ru") and not offers_choice("de") and not offers_choice(None)


def test_language_names_come_from_cldr() -> None:
    assert language_name("en", "") == "detect automatically"
    assert language_name("ru", "ru") == "русский"
    assert language_name("ru", "de") == "немецкий"
    assert language_name("en", "kk") == "Kazakh"
    assert [native_name(c) for c in ("uk", "be", "kk", "de")] == [
        "Українська",
        "Беларуская",
        "Қазақ тілі",
        "Deutsch",
    ]
    assert native_name("zz") == "zz"


def test_command_menu_in_both_languages() -> None:
    assert set(COMMANDS) == {"en", "ru"}
    assert COMMANDS["en"].keys() == COMMANDS["ru"].keys()
    assert {"lang", "format", "translate", "interface"} <= COMMANDS["en"].keys()
    assert all(0 < len(d) <= 256 for menu in COMMANDS.values() for d in menu.values())
    assert COMMANDS["ru"]["help"] == "Что я умею"


def test_no_russian_text_outside_the_catalogue() -> None:
    gateway = pathlib.Path(__file__).parents[2] / "gateway"
    cyrillic = re.compile("[\u0400-\u04ff]")
    offenders = [
        str(path.relative_to(gateway))
        for path in gateway.rglob("*.py")
        if cyrillic.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_every_key_the_gateway_names_is_in_the_catalogue() -> None:
    gateway = pathlib.Path(__file__).parents[2] / "gateway"
    call = re.compile(r"""\bt\(\s*[\w.]+,\s*["']([a-z_]+)["']""")
    used = {
        key: path.name
        for path in gateway.rglob("*.py")
        if path.name != "i18n.py"  # its docstring's example
        for key in call.findall(path.read_text())
    }
    assert len(used) > 40
    missing = {key: where for key, where in used.items() if key not in KEYS}
    assert missing == {}
