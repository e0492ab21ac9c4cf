"""Voice notes, audio, video, round videos and audio/video documents; /cancel.

A private chat transcribes every recording it gets, forwarded ones too. The
handler only records the job (billing's durable queue) and starts its lane:
the update is acknowledged once the job is recorded, never before.
"""

from __future__ import annotations

import contextlib

import grpc
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message

from billing.v1 import billing_pb2
from gateway.clients import Services
from gateway.handlers.settings import to_proto
from gateway.i18n import t
from gateway.jobs.accept import Jobs
from gateway.jobs.model import JobSpec, Media
from gateway.jobs.queue import QueueFullError
from gateway.prefs import Prefs
from gateway.replies import reply
from transcriber.v1 import transcriber_pb2

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
                file_unique_id=item.file_unique_id,
                duration=int(item.duration or 0),
                file_size=int(item.file_size or 0),
                mime_type=getattr(item, "mime_type", "") or "",
            )
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith(("audio/", "video/")):
        return Media(
            kind="document",
            file_id=doc.file_id,
            file_unique_id=doc.file_unique_id,
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
    jobs: Jobs,
    prefs: Prefs,
    trace_id: str = "",
) -> None:
    """Record a job for ``note`` in the payer's lane and start the lane.

    ``trigger`` is the message that asked (the note itself or a /t reply to it).
    """
    media = media_of(note)
    assert media is not None
    chosen = await prefs.user(payer)
    spec = JobSpec(
        user_id=payer,
        chat_id=trigger.chat.id,
        chat_type=trigger.chat.type,
        message_id=trigger.message_id,
        reply_to=note.message_id,
        media=media,
        lang=lang,
        speech_language=chosen.speech_language,
        output_format=int(to_proto(chosen.output_format)),
        task=transcriber_pb2.TASK_TRANSLATE
        if chosen.translate
        else transcriber_pb2.TASK_TRANSCRIBE,
    )
    try:
        await jobs.accept(spec, trace_id)
    except QueueFullError as exc:
        text = t(lang, "queue_full", count=exc.max_queued)
        await reply(services, trigger, "queue_full", text)


async def on_private_media(
    message: Message,
    services: Services,
    jobs: Jobs,
    prefs: Prefs,
    lang: str,
    trace_id: str = "",
) -> None:
    assert message.from_user is not None
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


async def on_cancel(message: Message, services: Services, jobs: Jobs, lang: str) -> None:
    assert message.from_user is not None
    job = await jobs.cancel(message.from_user.id)
    if job is None:
        await reply(services, message, "cancel", t(lang, "nothing_to_cancel"))
        return
    if job.state != billing_pb2.JOB_STATE_CANCELLED:
        return  # it runs: the job itself says it stopped and what was charged
    # It was only waiting: it never reserved anything.
    text = t(lang, "cancelled")
    if job.status_message_id:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await jobs.saga.edit_status(JobSpec.from_bytes(job.spec), job, text)
            return
    await reply(services, message, "cancel", text)


def make_router() -> Router:
    router = Router(name="media")
    router.message.register(on_private_media, F.chat.type == "private", has_media)
    router.message.register(on_cancel, Command("cancel"))
    return router
