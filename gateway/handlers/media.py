"""Voice notes, audio, video, round videos and audio/video documents."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from gateway.pipeline import Job, Media, Pipeline

router = Router(name="media")

_is_media_document = F.document.mime_type.startswith("audio/") | F.document.mime_type.startswith(
    "video/"
)


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
    if doc is not None:
        return Media(
            kind="document",
            file_id=doc.file_id,
            duration=0,
            file_size=int(doc.file_size or 0),
            mime_type=doc.mime_type or "",
        )
    return None


@router.message(
    F.chat.type == "private", F.voice | F.audio | F.video | F.video_note | _is_media_document
)
async def on_private_media(message: Message, pipeline: Pipeline, lang: str) -> None:
    media = media_of(message)
    assert media is not None and message.from_user is not None
    await pipeline.run(
        Job(
            user_id=message.from_user.id,
            chat_id=message.chat.id,
            chat_type=message.chat.type,
            message_id=message.message_id,
            media=media,
            lang=lang,
        )
    )
