"""Every user-visible sentence, in Russian and English.

The interface language follows Telegram's ``language_code``: Russian for
"ru" (and the languages whose speakers most often read it), English
otherwise. Sentences are short; a failure says what happened, whether money
moved, and the reference an SRE can look up.

A dict rather than aiogram's gettext ``I18nMiddleware``: two languages, no
translators' tooling, and no compiled .mo files to build and ship.
"""

from __future__ import annotations

from typing import Final

_RU_READERS: Final = {"ru", "uk", "be", "kk"}

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "welcome": {
        "en": "Hi! Send me a voice note, audio or video and I'll turn it into text. "
        "Your free trial: {balance} credits, about {minutes} min of audio. "
        "/help lists what I can do.",
        "ru": "Привет! Пришлите голосовое, аудио или видео, и я превращу его в текст. "
        "Пробный баланс: {balance} кредитов, примерно {minutes} мин аудио. "
        "/help — что я умею.",
    },
    "welcome_back": {
        "en": "Hi again! Your balance: {balance} credits, about {minutes} min of audio. "
        "Send me a voice note, audio or video.",
        "ru": "Снова привет! Баланс: {balance} кредитов, примерно {minutes} мин аудио. "
        "Пришлите голосовое, аудио или видео.",
    },
    "help": {
        "en": "Send a voice note, audio file, video or round video: I reply with its text.\n"
        "/balance — your credits\n/buy — top up with Telegram Stars\n"
        "/history — your transactions\n/lang — speech language\n"
        "/format — text, text with timestamps or SRT subtitles\n"
        "/cancel — stop the current transcription\n"
        "In groups: reply to a voice note with /t; admins can turn on /autotranscribe.",
        "ru": "Пришлите голосовое, аудио, видео или кружок — я отвечу текстом.\n"
        "/balance — ваши кредиты\n/buy — пополнить звёздами Telegram\n"
        "/history — ваши операции\n/lang — язык речи\n"
        "/format — текст, текст с таймкодами или субтитры SRT\n"
        "/cancel — остановить расшифровку\n"
        "В группах: ответьте на голосовое командой /t; админы могут включить /autotranscribe.",
    },
    "hint": {
        "en": "Send me a voice note, audio or video and I'll transcribe it. /help",
        "ru": "Пришлите голосовое, аудио или видео, и я его расшифрую. /help",
    },
    "balance": {
        "en": "Balance: {balance} credits (about {minutes} min of audio).",
        "ru": "Баланс: {balance} кредитов (примерно {minutes} мин аудио).",
    },
    "transcribing": {"en": "🎙 Transcribing…", "ru": "🎙 Расшифровываю…"},
    "queued": {
        "en": "⏳ Queued: {ahead} ahead of you.",
        "ru": "⏳ В очереди: перед вами {ahead}.",
    },
    "queue_full": {
        "en": "You already have {count} recordings waiting; send this one when they're done.",
        "ru": "У вас уже {count} записей в очереди; пришлите эту, когда они закончатся.",
    },
    "cancelled": {
        "en": "⏹ Stopped. Nothing was charged: your credits were released.",
        "ru": "⏹ Остановлено. Ничего не списано: кредиты возвращены.",
    },
    "nothing_to_cancel": {
        "en": "Nothing to cancel.",
        "ru": "Отменять нечего.",
    },
    "rate_limited": {
        "en": "Too many messages; please wait a minute.",
        "ru": "Слишком много сообщений; подождите минуту.",
    },
    "no_speech": {
        "en": "No speech found in this recording. Nothing was charged. Reference: {ref}",
        "ru": "В записи не найдено речи. Ничего не списано. Код: {ref}",
    },
    "no_funds": {
        "en": "Not enough credits: this recording costs {price}, you have {balance}. "
        "Top up with /buy.",
        "ru": "Недостаточно кредитов: запись стоит {price}, у вас {balance}. Пополнить: /buy.",
    },
    "banned": {"en": "Sorry, your access is blocked.", "ru": "Извините, ваш доступ заблокирован."},
    "too_big": {
        "en": "This file is larger than {limit_mb} MB, the most the bot can download. "
        "Nothing was charged.",
        "ru": "Файл больше {limit_mb} МБ — больше бот скачать не может. Ничего не списано.",
    },
    "bad_media": {
        "en": "I couldn't read this file as audio; your credits were released. Reference: {ref}",
        "ru": "Не удалось прочитать файл как аудио; кредиты возвращены. Код: {ref}",
    },
    "too_long": {
        "en": "This recording is too long for me; your credits were released. Reference: {ref}",
        "ru": "Запись слишком длинная; кредиты возвращены. Код: {ref}",
    },
    "busy": {
        "en": "I'm overloaded, try again in a minute; your credits were released. Reference: {ref}",
        "ru": "Я перегружен, попробуйте через минуту; кредиты возвращены. Код: {ref}",
    },
    "language_unavailable": {
        "en": "I can't transcribe that language here (see /lang); your credits were released. "
        "Reference: {ref}",
        "ru": "Этот язык здесь недоступен (см. /lang); кредиты возвращены. Код: {ref}",
    },
    "failed": {
        "en": "Sorry, the transcription failed; your credits were released. Reference: {ref}",
        "ru": "Не удалось расшифровать запись; кредиты возвращены. Код: {ref}",
    },
    "interrupted": {
        "en": "The bot restarted mid-way; your credits were released, please send it again. "
        "Reference: {ref}",
        "ru": "Бот перезапустился; кредиты возвращены, пришлите запись ещё раз. Код: {ref}",
    },
    "interrupted_queued": {
        "en": "The bot restarted before your recording's turn; nothing was charged, "
        "please send it again.",
        "ru": "Бот перезапустился до вашей очереди; ничего не списано, пришлите запись ещё раз.",
    },
    "failed_no_hold": {
        "en": "Sorry, something went wrong; nothing was charged. Reference: {ref}",
        "ru": "Что-то пошло не так; ничего не списано. Код: {ref}",
    },
    "transcript_below": {
        "en": "📝 The transcript is long; it follows in the next messages.",
        "ru": "📝 Текст длинный, он в следующих сообщениях.",
    },
    "transcript_file": {
        "en": "📝 The transcript is long; here it is as a file.",
        "ru": "📝 Текст длинный, отправляю его файлом.",
    },
    "subtitles_file": {
        "en": "📝 Here are the subtitles (SRT).",
        "ru": "📝 Вот субтитры (SRT).",
    },
    # Settings
    "lang_current": {
        "en": "Speech language: {current}. Choose another:",
        "ru": "Язык речи: {current}. Выберите другой:",
    },
    "lang_set": {"en": "Speech language: {current}.", "ru": "Язык речи: {current}."},
    "lang_auto": {"en": "detect automatically", "ru": "определять автоматически"},
    "lang_bad": {
        "en": "Unknown language; try /lang auto, /lang en or /lang ru.",
        "ru": "Неизвестный язык; попробуйте /lang auto, /lang en или /lang ru.",
    },
    "lang_english_only": {
        "en": "This server only transcribes English; the language stays {current}.",
        "ru": "Этот сервер расшифровывает только английский; язык остаётся: {current}.",
    },
    "format_current": {
        "en": "Transcript format: {current}. Choose another:",
        "ru": "Формат расшифровки: {current}. Выберите другой:",
    },
    "format_set": {"en": "Transcript format: {current}.", "ru": "Формат расшифровки: {current}."},
    "format_bad": {
        "en": "Unknown format; try /format text, /format timestamps or /format srt.",
        "ru": "Неизвестный формат; попробуйте /format text, /format timestamps или /format srt.",
    },
    "format_text": {"en": "plain text", "ru": "обычный текст"},
    "format_timestamps": {"en": "text with timestamps", "ru": "текст с таймкодами"},
    "format_srt": {"en": "SRT subtitles", "ru": "субтитры SRT"},
    # Payments
    "buy_menu": {
        "en": "Top up with Telegram Stars; choose a package:",
        "ru": "Пополнение звёздами Telegram; выберите пакет:",
    },
    "buy_button": {"en": "{stars} ⭐ → {credits} credits", "ru": "{stars} ⭐ → {credits} кредитов"},
    "invoice_title": {"en": "{credits} credits", "ru": "{credits} кредитов"},
    "invoice_description": {
        "en": "{credits} credits: about {minutes} min of transcribed audio.",
        "ru": "{credits} кредитов: примерно {minutes} мин расшифрованного аудио.",
    },
    "invoice_sent": {"en": "Invoice below 👇", "ru": "Счёт ниже 👇"},
    "offer_expired": {
        "en": "This offer is no longer valid; please use /buy again.",
        "ru": "Это предложение больше не действует; откройте /buy ещё раз.",
    },
    "paid": {
        "en": "✅ Payment received: +{credits} credits. Balance: {balance}.",
        "ru": "✅ Оплата получена: +{credits} кредитов. Баланс: {balance}.",
    },
    "payment_failed": {
        "en": "Your payment arrived but I couldn't add the credits yet; "
        "support will fix it with this reference: {ref}",
        "ru": "Оплата пришла, но кредиты пока не начислены; поддержка исправит это по коду: {ref}",
    },
    # History
    "history_title": {"en": "Your transactions:", "ru": "Ваши операции:"},
    "history_empty": {"en": "No transactions yet.", "ru": "Операций пока нет."},
    "history_older": {"en": "Older ›", "ru": "Раньше ›"},
    "history_newest": {"en": "« Newest", "ru": "« Последние"},
    "history_private": {
        "en": "Your history is private: ask me in a direct chat.",
        "ru": "История личная: спросите меня в личном чате.",
    },
    "tx_top_up": {"en": "top-up", "ru": "пополнение"},
    "tx_capture": {"en": "transcription", "ru": "расшифровка"},
    "tx_refund": {"en": "refund", "ru": "возврат"},
    "tx_grant": {"en": "gift", "ru": "подарок"},
    "tx_trial": {"en": "free trial", "ru": "пробный баланс"},
    "tx_other": {"en": "other", "ru": "другое"},
    # Groups
    "t_usage": {
        "en": "Reply to a voice note, audio or video with /t to transcribe it.",
        "ru": "Ответьте командой /t на голосовое, аудио или видео, чтобы расшифровать его.",
    },
    "auto_on": {
        "en": "Auto-transcription is on: I'll transcribe every voice note here.",
        "ru": "Авторасшифровка включена: я буду расшифровывать все голосовые здесь.",
    },
    "auto_off": {
        "en": "Auto-transcription is off; reply to a note with /t to transcribe it.",
        "ru": "Авторасшифровка выключена; ответьте на голосовое командой /t.",
    },
    "group_admins_only": {
        "en": "Only group admins can change this.",
        "ru": "Это могут менять только админы группы.",
    },
    "groups_only": {
        "en": "This command works in groups.",
        "ru": "Эта команда работает в группах.",
    },
    # Admin
    "admins_only": {"en": "Admins only.", "ru": "Только для администраторов."},
    "usage_grant": {"en": "Usage: /grant USER_ID CREDITS", "ru": "Формат: /grant USER_ID КРЕДИТЫ"},
    "usage_user": {"en": "Usage: /{command} USER_ID", "ru": "Формат: /{command} USER_ID"},
    "granted": {
        "en": "Granted {credits} credits to {user}; their balance is {balance}.",
        "ru": "Пользователю {user} начислено {credits} кредитов; баланс: {balance}.",
    },
    "user_banned": {"en": "User {user} is banned.", "ru": "Пользователь {user} заблокирован."},
    "user_unbanned": {
        "en": "User {user} is unbanned.",
        "ru": "Пользователь {user} разблокирован.",
    },
    "no_such_user": {"en": "No such user.", "ru": "Нет такого пользователя."},
    "stats": {
        "en": "Users: {users}\nPending holds: {holds} ({held} credits)\n"
        "Captured: {captured} credits\nTopped up: {topped} credits",
        "ru": "Пользователей: {users}\nОжидающих холдов: {holds} ({held} кредитов)\n"
        "Списано: {captured} кредитов\nПополнено: {topped} кредитов",
    },
}

# The command menu Telegram shows, per interface language (setMyCommands).
COMMANDS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "start": "Start and see your free trial",
        "help": "What I can do",
        "balance": "Your credits",
        "buy": "Top up with Telegram Stars",
        "history": "Your transactions",
        "lang": "Speech language",
        "format": "Text, timestamps or SRT subtitles",
        "cancel": "Stop the current transcription",
        "t": "Transcribe the note you reply to",
    },
    "ru": {
        "start": "Начать и узнать о пробном балансе",
        "help": "Что я умею",
        "balance": "Ваши кредиты",
        "buy": "Пополнить звёздами Telegram",
        "history": "Ваши операции",
        "lang": "Язык речи",
        "format": "Текст, таймкоды или субтитры SRT",
        "cancel": "Остановить расшифровку",
        "t": "Расшифровать голосовое, на которое вы отвечаете",
    },
}

LANGUAGE_NAMES: Final[dict[str, dict[str, str]]] = {
    "en": {"en": "English", "ru": "английский"},
    "ru": {"en": "Russian", "ru": "русский"},
    "uk": {"en": "Ukrainian", "ru": "украинский"},
    "de": {"en": "German", "ru": "немецкий"},
    "es": {"en": "Spanish", "ru": "испанский"},
    "fr": {"en": "French", "ru": "французский"},
}


def lang_of(language_code: str | None) -> str:
    code = (language_code or "").split("-")[0].lower()
    return "ru" if code in _RU_READERS else "en"


def t(lang: str, key: str, **values: object) -> str:
    text = MESSAGES[key].get(lang) or MESSAGES[key]["en"]
    return text.format(**values) if values else text


def language_name(lang: str, code: str) -> str:
    """How the interface names a speech language ("" = auto-detect)."""
    if not code:
        return t(lang, "lang_auto")
    names = LANGUAGE_NAMES.get(code)
    return names.get(lang, names["en"]) if names else code
