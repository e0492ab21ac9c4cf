"""Groups: /t as a reply to a recording, and /autotranscribe for group admins.

With privacy mode on (the default) Telegram shows the bot only commands and
replies to it, so /t is how a group asks. A group admin can turn on
/autotranscribe; the bot then transcribes every voice note and round video
it is shown (which needs privacy mode off or the bot made an admin). The
payer is whoever sent /t, or the note's author.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from gateway.clients import Services
from gateway.handlers.media import media_of, transcribe
from gateway.i18n import t
from gateway.jobs.accept import Jobs
from gateway.prefs import Prefs
from gateway.replies import reply

in_group = F.chat.type.in_({"group", "supergroup"})
_ADMINS = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR}


async def autotranscribe_on(message: Message, prefs: Prefs) -> bool:
    """Filter: the group turned auto-transcription on."""
    return await prefs.autotranscribe(message.chat.id)


async def on_autotranscribe(
    message: Message,
    command: CommandObject,
    bot: Bot,
    services: Services,
    prefs: Prefs,
    lang: str,
) -> None:
    assert message.from_user is not None
    # A read, not a message to anyone: asked of Telegram directly.
    member = await bot.get_chat_member(message.chat.id, message.from_user.id)
    if member.status not in _ADMINS:
        await reply(services, message, "auto", t(lang, "group_admins_only"), quote=True)
        return
    arg = (command.args or "").strip().lower()
    if arg in ("on", "off"):
        on = arg == "on"
    else:
        on = not await prefs.autotranscribe(message.chat.id)
    await prefs.set_autotranscribe(message.chat.id, on)
    await reply(services, message, "auto", t(lang, "auto_on" if on else "auto_off"))


async def on_autotranscribe_private(message: Message, services: Services, lang: str) -> None:
    await reply(services, message, "auto", t(lang, "groups_only"))


async def on_t(
    message: Message,
    services: Services,
    jobs: Jobs,
    prefs: Prefs,
    lang: str,
    trace_id: str = "",
) -> None:
    note = message.reply_to_message
    if note is None or media_of(note) is None or message.from_user is None:
        await reply(services, message, "t", t(lang, "t_usage"), quote=True)
        return
    await transcribe(
        trigger=message,
        note=note,
        payer=message.from_user.id,
        lang=lang,
        services=services,
        jobs=jobs,
        prefs=prefs,
        trace_id=trace_id,
    )


async def on_group_note(
    message: Message,
    services: Services,
    jobs: Jobs,
    prefs: Prefs,
    lang: str,
    trace_id: str = "",
) -> None:
    if message.from_user is None or message.from_user.is_bot:
        return
    await transcribe(
        trigger=message,
        note=message,
        payer=message.from_user.id,
        lang=lang,
        services=services,
        jobs=jobs,
        prefs=prefs,
        trace_id=trace_id,
    )


def make_router() -> Router:
    router = Router(name="groups")
    router.message.register(on_autotranscribe, Command("autotranscribe"), in_group)
    router.message.register(on_autotranscribe_private, Command("autotranscribe"))
    router.message.register(on_t, Command("t"))
    router.message.register(on_group_note, in_group, F.voice | F.video_note, autotranscribe_on)
    return router
