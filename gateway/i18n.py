"""Every user-visible sentence, in Russian and English.

The interface language follows Telegram's ``language_code``: Russian for
"ru" (and the languages whose speakers most often read it), English
otherwise. Sentences are short; a failure says what happened, whether money
moved, and the reference an SRE can look up.
"""

from __future__ import annotations

from typing import Final

_RU_READERS: Final = {"ru", "uk", "be", "kk"}

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "welcome": {
        "en": "Hi! Send me a voice note, audio or video and I'll turn it into text. "
        "You have {balance} credits to start with. /help lists what I can do.",
        "ru": "Привет! Пришлите голосовое, аудио или видео, и я превращу его в текст. "
        "Для начала у вас {balance} кредитов. /help — что я умею.",
    },
    "help": {
        "en": "Send a voice note, audio file, video or round video: I reply with its text.\n"
        "/balance — your credits\n/buy — top up with Telegram Stars\n"
        "/history — your transactions\n/cancel — stop the current transcription",
        "ru": "Пришлите голосовое, аудио, видео или кружок — я отвечу текстом.\n"
        "/balance — ваши кредиты\n/buy — пополнить звёздами Telegram\n"
        "/history — ваши операции\n/cancel — остановить расшифровку",
    },
    "balance": {
        "en": "Balance: {balance} credits (about {minutes} min of audio).",
        "ru": "Баланс: {balance} кредитов (примерно {minutes} мин аудио).",
    },
    "transcribing": {"en": "🎙 Transcribing…", "ru": "🎙 Расшифровываю…"},
    "no_speech": {"en": "No speech found in this recording.", "ru": "В записи не найдено речи."},
    "no_funds": {
        "en": "Not enough credits: this recording costs {price}, you have {balance}. "
        "Top up with /buy.",
        "ru": "Недостаточно кредитов: запись стоит {price}, у вас {balance}. Пополнить: /buy.",
    },
    "banned": {"en": "Sorry, your access is blocked.", "ru": "Извините, ваш доступ заблокирован."},
    "too_big": {
        "en": "This file is larger than {limit_mb} MB, the most Telegram lets bots download. "
        "Nothing was charged.",
        "ru": "Файл больше {limit_mb} МБ — столько Telegram не даёт скачать ботам. "
        "Ничего не списано.",
    },
    "bad_media": {
        "en": "I couldn't read this file as audio. Nothing was charged. Reference: {ref}",
        "ru": "Не удалось прочитать файл как аудио. Ничего не списано. Код: {ref}",
    },
    "too_long": {
        "en": "This recording is too long for me. Nothing was charged. Reference: {ref}",
        "ru": "Запись слишком длинная. Ничего не списано. Код: {ref}",
    },
    "busy": {
        "en": "I'm overloaded right now; try again in a minute. Nothing was charged. "
        "Reference: {ref}",
        "ru": "Сейчас я перегружен, попробуйте через минуту. Ничего не списано. Код: {ref}",
    },
    "failed": {
        "en": "Sorry, the transcription failed. Your credits were released. Reference: {ref}",
        "ru": "Не удалось расшифровать запись. Кредиты возвращены. Код: {ref}",
    },
    "failed_no_hold": {
        "en": "Sorry, something went wrong. Nothing was charged. Reference: {ref}",
        "ru": "Что-то пошло не так. Ничего не списано. Код: {ref}",
    },
    "transcript_below": {
        "en": "📝 The transcript is long; it follows in the next messages.",
        "ru": "📝 Текст длинный, он в следующих сообщениях.",
    },
    "transcript_file": {
        "en": "📝 The transcript is long; here it is as a file.",
        "ru": "📝 Текст длинный, отправляю его файлом.",
    },
}


def lang_of(language_code: str | None) -> str:
    code = (language_code or "").split("-")[0].lower()
    return "ru" if code in _RU_READERS else "en"


def t(lang: str, key: str, **values: object) -> str:
    text = MESSAGES[key].get(lang) or MESSAGES[key]["en"]
    return text.format(**values) if values else text
