"""Voice notes, audio, video, round videos and audio/video documents; /cancel.

A private chat transcribes every recording it gets, forwarded ones too.
Each job waits for its turn in the payer's lane (one job at a time per user)
and says how many are ahead of it while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message

from gateway.clients import Services
from gateway.handlers.settings import to_proto
from gateway.i18n import t
from gateway.jobs import JobLanes, LaneFullError
from gateway.middlewares import Gate
from gateway.pipeline import Job, Media, Pipeline
from gateway.prefs import Prefs
from gateway.replies import reply

if TYPE_CHECKING:
    from gateway.reconciler import JobRegistry

is_media_document = F.document.mime_type.startswith("audio/") | F.document.mime_type.startswith(
    "video/"
)
has_media = F.voice | F.audio | F.video | F.video_note | is_media_document


def media_of(message: Message) -> Media | None:
    for kind in ("voice", "audio", "video", "video_note"):
        item = getattr(message, kind)
        if item is not None:
            return Media(
                kind=kind,
                file_id=item.file_id,
                duration=int(item.duration or 0),
                file_size=int(item.file_size or 0),
                mime_type=getattr(item, "mime_type", "") or "",
            )
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith(("audio/", "video/")):
        return Media(
            kind="document",
            file_id=doc.file_id,
            duration=0,
            file_size=int(doc.file_size or 0),
            mime_type=doc.mime_type or "",
        )
    return None


async def transcribe(
    *,
    trigger: Message,
    note: Message,
    payer: int,
    lang: str,
    services: Services,
    pipeline: Pipeline,
    prefs: Prefs,
    lanes: JobLanes,
    gate: Gate | None,
    registry: JobRegistry | None = None,
) -> None:
    """Queue ``note`` in the payer's lane, wait for the turn, run the job.

    ``trigger`` is the message that asked (the note itself or a /t reply to it).
    """
    media = media_of(note)
    assert media is not None
    chosen = await prefs.user(payer)
    job = Job(
        user_id=payer,
        chat_id=trigger.chat.id,
        chat_type=trigger.chat.type,
        message_id=trigger.message_id,
        reply_to=note.message_id,
        media=media,
        lang=lang,
        speech_language=chosen.speech_language,
        output_format=to_proto(chosen.output_format),
    )
    try:
        ticket = await lanes.enqueue(payer)
    except LaneFullError:
        text = t(lang, "queue_full", count=lanes.max_queued)
        await pipeline.send(job, "queue_full", text)
        return
    async with ticket:
        if ticket.ahead:
            job = job.with_status(
                await pipeline.send(job, "queued", t(lang, "queued", ahead=ticket.ahead))
            )
        # Queued in arrival order: the user's next update may go ahead now.
        if gate is not None:
            gate.release()
        try:
            await ticket.wait_turn()
        except asyncio.CancelledError:
            # Shutdown before this job's turn: nothing was reserved yet.
            with contextlib.suppress(Exception):
                text = t(lang, "interrupted_queued")
                await asyncio.shield(asyncio.wait_for(pipeline.send(job, "final", text), 5))
            raise
        if registry is None:
            await pipeline.run(job, ticket.stop)
            return
        # Owned while it runs, and recorded: if this process dies mid-job, a
        # reconciler (gateway.reconciler) finishes it or gives the money back.
        async with await registry.own(job) as ownership:
            outcome = await pipeline.run(job, ticket.stop)
            ownership.finished = outcome.settled


async def on_private_media(
    message: Message,
    services: Services,
    pipeline: Pipeline,
    prefs: Prefs,
    lanes: JobLanes,
    lang: str,
    gate: Gate | None = None,
    registry: JobRegistry | None = None,
) -> None:
    assert message.from_user is not None
    await transcribe(
        trigger=message,
        note=message,
        payer=message.from_user.id,
        lang=lang,
        services=services,
        pipeline=pipeline,
        prefs=prefs,
        lanes=lanes,
        gate=gate,
        registry=registry,
    )


async def on_cancel(message: Message, services: Services, lanes: JobLanes, lang: str) -> None:
    assert message.from_user is not None
    # The job itself tells the user it stopped and that the hold was released.
    if not await lanes.cancel(message.from_user.id):
        await reply(services, message, "cancel", t(lang, "nothing_to_cancel"))


def make_router() -> Router:
    router = Router(name="media")
    router.message.register(on_private_media, F.chat.type == "private", has_media)
    router.message.register(on_cancel, Command("cancel"))
    return router
