# Фразы бота по-русски. Те же id и те же $переменные, что в en/bot.ftl.
#
# Счётные слова выбирают форму по категориям CLDR: one (1, 21, 101), few (2–4,
# 22–24), many (0, 5–20, 25–30), other (дробные: 1,5 кредита).

## Start, help, hints

welcome = Привет! Пришлите голосовое, аудио или видео, и я превращу его в текст. Пробный баланс: { $balance } { $balance ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }, примерно { NUMBER($minutes, maximumFractionDigits: 1) } мин аудио. /help — что я умею.
welcome_back = Снова привет! Баланс: { $balance } { $balance ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }, примерно { NUMBER($minutes, maximumFractionDigits: 1) } мин аудио. Пришлите голосовое, аудио или видео.
help =
    Пришлите голосовое, аудио, видео или кружок — я отвечу текстом.
    /balance — ваши кредиты
    /buy — пополнить звёздами Telegram
    /history — ваши операции
    /lang — язык речи
    /format — текст, текст с таймкодами, субтитры SRT или VTT
    /translate — переводить расшифровку на английский
    /interface — язык бота
    /cancel — остановить расшифровку
    В группах: ответьте на голосовое командой /t; админы могут включить /autotranscribe.
hint = Пришлите голосовое, аудио или видео, и я его расшифрую. /help
balance = Баланс: { $balance } { $balance ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    } (примерно { NUMBER($minutes, maximumFractionDigits: 1) } мин аудио).

## Jobs

transcribing = 🎙 Расшифровываю…
queued = ⏳ В очереди: начну, как только закончу предыдущие записи.
waiting_for_room = ⏳ Сейчас много записей: начну вашу, как только освобожусь.
stopped_by_user = ⏹ Остановлено по вашей просьбе: списано только за часть выше.
stopped_no_credits = ⚠️ Здесь закончились кредиты: списано за часть выше. Пополнить: /buy.
stopped_too_long = ⚠️ Запись слишком длинная: это её начало, и списано только за него.
queue_full = У вас уже { $count } { $count ->
        [one] запись
        [few] записи
        [many] записей
       *[other] записи
    } в очереди; пришлите эту, когда очередь пройдёт.
cancelled = ⏹ Остановлено. Ничего не списано: кредиты возвращены.
nothing_to_cancel = Отменять нечего.
rate_limited = Слишком много сообщений; подождите минуту.
no_speech = В записи не найдено речи. Ничего не списано. Код: { $ref }
no_funds = Недостаточно кредитов: запись стоит { $price }, у вас { $balance }. Пополнить: /buy.
banned = Извините, ваш доступ заблокирован.
too_big = Файл больше { $limit_mb } МБ — больше бот скачать не может. Ничего не списано.
bad_media = Не удалось прочитать файл как аудио; кредиты возвращены. Код: { $ref }
too_long = Запись слишком длинная; кредиты возвращены. Код: { $ref }
busy = Я перегружен, попробуйте через минуту; кредиты возвращены. Код: { $ref }
language_unavailable = Этот язык здесь недоступен (см. /lang); кредиты возвращены. Код: { $ref }
failed = Не удалось расшифровать запись; кредиты возвращены. Код: { $ref }
failed_no_hold = Что-то пошло не так; ничего не списано. Код: { $ref }
transcript_below = 📝 Текст длинный, он в следующих сообщениях.
from_cache = ♻️ Эту запись я уже расшифровывал: вот текст, бесплатно.
detected_language = 🌐 Язык: { $language }.
transcript_file = 📝 Текст длинный, отправляю его файлом.
subtitles_file = 📝 Вот субтитры (SRT).
subtitles_file_vtt = 📝 Вот субтитры (VTT).

## Settings: speech language

lang_current = Язык речи: { $current }. Выберите другой:
lang_set = Язык речи: { $current }.
lang_auto = определять автоматически
lang_bad = Неизвестный язык; попробуйте /lang auto, /lang en или /lang ru.
lang_english_only = Этот сервер расшифровывает только английский; язык остаётся: { $current }.

## Settings: transcript format

format_current = Формат расшифровки: { $current }. Выберите другой:
format_set = Формат расшифровки: { $current }.
format_bad = Неизвестный формат; попробуйте /format text, /format timestamps, /format srt или /format vtt.
format_text = обычный текст
format_timestamps = текст с таймкодами
format_srt = субтитры SRT
format_vtt = субтитры WebVTT

## Settings: translation into English

translate_current = Перевод на английский: { $current }. Изменить:
translate_set = Перевод на английский: { $current }.
translate_bad = Попробуйте /translate on или /translate off.
translate_unavailable = Этот сервер расшифровывает только английский, переводить он не умеет.
translate_on = включён
translate_off = выключен

## Settings: the bot's own language

interface_current = Язык бота: { $current }. Выберите другой:
interface_set = Язык бота: { $current }.
interface_auto = как в Telegram
interface_bad = Неизвестный язык; попробуйте /interface ru, /interface en или /interface auto.
interface_offer = Вы можете выбрать язык бота:

## Payments

buy_menu = Пополнение звёздами Telegram; выберите пакет:
buy_button = { $stars } ⭐ → { $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }
invoice_title = { $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }
invoice_description = { $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }: примерно { NUMBER($minutes, maximumFractionDigits: 1) } мин расшифрованного аудио.
invoice_sent = Счёт ниже 👇
offer_expired = Это предложение больше не действует; откройте /buy ещё раз.
paid = ✅ Оплата получена: +{ $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }. Баланс: { $balance }.
payment_failed = Оплата пришла, но кредиты пока не начислены; поддержка исправит это по коду: { $ref }

## History

history_title = Ваши операции:
history_empty = Операций пока нет.
history_row = { $when } { $kind }: { $sign }{ $amount } → { $balance }
history_older = Раньше ›
history_newest = « Последние
history_private = История личная: спросите меня в личном чате.
tx_top_up = пополнение
tx_capture = расшифровка
tx_refund = возврат
tx_grant = подарок
tx_trial = пробный баланс
tx_other = другое

## Groups

t_usage = Ответьте командой /t на голосовое, аудио или видео, чтобы расшифровать его.
auto_on = Авторасшифровка включена: я буду расшифровывать все голосовые здесь.
auto_off = Авторасшифровка выключена; ответьте на голосовое командой /t.
group_admins_only = Это могут менять только админы группы.
groups_only = Эта команда работает в группах.

## Admin

admins_only = Только для администраторов.
usage_grant = Формат: /grant USER_ID КРЕДИТЫ
usage_user = Формат: /{ $command } USER_ID
granted = Пользователю { $user } начислено: { $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }; баланс: { $balance }.
user_banned = Пользователь { $user } заблокирован.
user_unbanned = Пользователь { $user } разблокирован.
no_such_user = Нет такого пользователя.
usage_refund = Формат: /refund CHARGE_ID (telegram_payment_charge_id платежа в звёздах)
refund_unknown = Такого платежа нет.
refund_spent = Пользователь уже потратил эти кредиты, поэтому возврата не было.
refund_done = Возврат: у пользователя { $user } списано { $credits } { $credits ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }, звёзды возвращены; его баланс: { $balance }.
stats =
    Пользователей: { $users }
    Холдов в ожидании: { $holds } ({ $held } { $held ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    })
    Списано: { $captured } { $captured ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }
    Пополнено: { $topped } { $topped ->
        [one] кредит
        [few] кредита
        [many] кредитов
       *[other] кредита
    }

## The command menu (setMyCommands): cmd_<command>

cmd_start = Начать и узнать о пробном балансе
cmd_help = Что я умею
cmd_balance = Ваши кредиты
cmd_buy = Пополнить звёздами Telegram
cmd_history = Ваши операции
cmd_lang = Язык речи
cmd_format = Текст, таймкоды, субтитры SRT или VTT
cmd_translate = Переводить расшифровку на английский
cmd_interface = Язык бота
cmd_cancel = Остановить расшифровку
cmd_t = Расшифровать голосовое, на которое вы отвечаете
