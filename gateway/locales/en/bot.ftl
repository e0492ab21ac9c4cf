# The bot's sentences in English: the fallback for every other language.
#
# Each message has the same id and the same $variables in every locale
# (tests/gateway/test_i18n.py checks it). Counted nouns select on CLDR plural
# categories; numbers are formatted by the locale (Babel), so pass ints and
# floats, not strings.

## Start, help, hints

welcome = Hi! Send me a voice note, audio or video and I'll turn it into text. Your free trial: { $balance } { $balance ->
        [one] credit
       *[other] credits
    }, about { NUMBER($minutes, maximumFractionDigits: 1) } min of audio. /help lists what I can do.
welcome_back = Hi again! Your balance: { $balance } { $balance ->
        [one] credit
       *[other] credits
    }, about { NUMBER($minutes, maximumFractionDigits: 1) } min of audio. Send me a voice note, audio or video.
help =
    Send a voice note, audio file, video or round video: I reply with its text.
    /balance — your credits
    /buy — top up with Telegram Stars
    /history — your transactions
    /lang — speech language
    /format — text, text with timestamps, SRT or VTT subtitles
    /translate — translate transcripts into English
    /interface — the bot's language
    /cancel — stop the current transcription
    In groups: reply to a voice note with /t; admins can turn on /autotranscribe.
hint = Send me a voice note, audio or video and I'll transcribe it. /help
balance = Balance: { $balance } { $balance ->
        [one] credit
       *[other] credits
    } (about { NUMBER($minutes, maximumFractionDigits: 1) } min of audio).

## Jobs

transcribing = 🎙 Transcribing…
queued = ⏳ Queued: I'll start once your earlier recordings are done.
waiting_for_room = ⏳ Lots of recordings right now: I'll start on yours as soon as I can.
stopped_by_user = ⏹ Stopped at your request: you paid only for the part above.
stopped_no_credits = ⚠️ Your credits ran out here: you paid for the part above. Top up with /buy.
stopped_too_long = ⚠️ The recording is too long: this is its beginning, and you paid only for it.
queue_full = { $count ->
        [one] You already have { $count } recording waiting; send this one when it's done.
       *[other] You already have { $count } recordings waiting; send this one when they're done.
    }
cancelled = ⏹ Stopped. Nothing was charged: your credits were released.
nothing_to_cancel = Nothing to cancel.
rate_limited = Too many messages; please wait a minute.
no_speech = No speech found in this recording. Nothing was charged. Reference: { $ref }
no_funds = Not enough credits: this recording costs { $price }, you have { $balance }. Top up with /buy.
banned = Sorry, your access is blocked.
too_big = This file is larger than { $limit_mb } MB, the most the bot can download. Nothing was charged.
bad_media = I couldn't read this file as audio; your credits were released. Reference: { $ref }
too_long = This recording is too long for me; your credits were released. Reference: { $ref }
busy = I'm overloaded, try again in a minute; your credits were released. Reference: { $ref }
language_unavailable = I can't transcribe that language here (see /lang); your credits were released. Reference: { $ref }
failed = Sorry, the transcription failed; your credits were released. Reference: { $ref }
failed_no_hold = Sorry, something went wrong; nothing was charged. Reference: { $ref }
transcript_below = 📝 The transcript is long; it follows in the next messages.
from_cache = ♻️ Transcribed before: here it is again, free of charge.
detected_language = 🌐 Language: { $language }.
transcript_file = 📝 The transcript is long; here it is as a file.
subtitles_file = 📝 Here are the subtitles (SRT).
subtitles_file_vtt = 📝 Here are the subtitles (VTT).

## Settings: speech language

lang_current = Speech language: { $current }. Choose another:
lang_set = Speech language: { $current }.
lang_auto = detect automatically
lang_bad = Unknown language; try /lang auto, /lang en or /lang ru.
lang_english_only = This server only transcribes English; the language stays { $current }.

## Settings: transcript format

format_current = Transcript format: { $current }. Choose another:
format_set = Transcript format: { $current }.
format_bad = Unknown format; try /format text, /format timestamps, /format srt or /format vtt.
format_text = plain text
format_timestamps = text with timestamps
format_srt = SRT subtitles
format_vtt = WebVTT subtitles

## Settings: translation into English

translate_current = Translation into English: { $current }. Change it:
translate_set = Translation into English: { $current }.
translate_bad = Try /translate on or /translate off.
translate_unavailable = This server only transcribes English, so it cannot translate.
translate_on = on
translate_off = off

## Settings: the bot's own language

interface_current = The bot's language: { $current }. Choose another:
interface_set = The bot's language: { $current }.
interface_auto = as in Telegram
interface_bad = Unknown language; try /interface en, /interface ru or /interface auto.
interface_offer = You can choose the bot's language:

## Payments

buy_menu = Top up with Telegram Stars; choose a package:
buy_button = { $stars } ⭐ → { $credits } { $credits ->
        [one] credit
       *[other] credits
    }
invoice_title = { $credits } { $credits ->
        [one] credit
       *[other] credits
    }
invoice_description = { $credits } { $credits ->
        [one] credit
       *[other] credits
    }: about { NUMBER($minutes, maximumFractionDigits: 1) } min of transcribed audio.
invoice_sent = Invoice below 👇
offer_expired = This offer is no longer valid; please use /buy again.
paid = ✅ Payment received: +{ $credits } { $credits ->
        [one] credit
       *[other] credits
    }. Balance: { $balance }.
payment_failed = Your payment arrived but I couldn't add the credits yet; support will fix it with this reference: { $ref }

## History

history_title = Your transactions:
history_empty = No transactions yet.
history_row = { $when } { $kind }: { $sign }{ $amount } → { $balance }
history_older = Older ›
history_newest = « Newest
history_private = Your history is private: ask me in a direct chat.
tx_top_up = top-up
tx_capture = transcription
tx_refund = refund
tx_grant = gift
tx_trial = free trial
tx_other = other

## Groups

t_usage = Reply to a voice note, audio or video with /t to transcribe it.
auto_on = Auto-transcription is on: I'll transcribe every voice note here.
auto_off = Auto-transcription is off; reply to a note with /t to transcribe it.
group_admins_only = Only group admins can change this.
groups_only = This command works in groups.

## Admin

admins_only = Admins only.
usage_grant = Usage: /grant USER_ID CREDITS
usage_user = Usage: /{ $command } USER_ID
granted = Granted { $credits } { $credits ->
        [one] credit
       *[other] credits
    } to { $user }; their balance is { $balance }.
user_banned = User { $user } is banned.
user_unbanned = User { $user } is unbanned.
no_such_user = No such user.
usage_refund = Usage: /refund CHARGE_ID (the telegram_payment_charge_id of a Stars payment)
refund_unknown = No such payment.
refund_spent = The user has already spent these credits, so nothing was refunded.
refund_done = Refunded: { $credits } { $credits ->
        [one] credit
       *[other] credits
    } taken back from { $user } and their Stars returned; their balance is { $balance }.
stats =
    Users: { $users }
    Pending holds: { $holds } ({ $held } { $held ->
        [one] credit
       *[other] credits
    })
    Captured: { $captured } { $captured ->
        [one] credit
       *[other] credits
    }
    Topped up: { $topped } { $topped ->
        [one] credit
       *[other] credits
    }

## The command menu (setMyCommands): cmd_<command>

cmd_start = Start and see your free trial
cmd_help = What I can do
cmd_balance = Your credits
cmd_buy = Top up with Telegram Stars
cmd_history = Your transactions
cmd_lang = Speech language
cmd_format = Text, timestamps, SRT or VTT subtitles
cmd_translate = Translate transcripts into English
cmd_interface = The bot's language
cmd_cancel = Stop the current transcription
cmd_t = Transcribe the note you reply to
