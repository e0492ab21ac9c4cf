"""What a job is: the note, how to transcribe it, and how it ended.

A :class:`JobSpec` is everything needed to run a job from scratch, taken
when the update is accepted. It travels through billing's durable job
record as opaque JSON bytes (billing stores it, never reads it), so any
gateway replica can run a job another one accepted, after any crash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from notifier.v1 import notifier_pb2
from transcriber.v1 import transcriber_pb2


class SpecError(ValueError):
    """A durable job record this gateway cannot read."""


@dataclass(frozen=True)
class Media:
    kind: str  # voice, audio, video, video_note, document
    file_id: str
    # Telegram's id of the file itself, the same across forwards and bots'
    # copies: the transcript cache's key.
    file_unique_id: str = ""
    # Seconds, as the sender's client declared them: a hint, never a price.
    duration: int = 0
    file_size: int = 0  # bytes, 0 when Telegram did not say
    mime_type: str = ""


@dataclass(frozen=True)
class JobSpec:
    user_id: int  # who pays
    chat_id: int
    chat_type: str
    # The message that asked for the job (the note itself, or a /t reply to
    # it): every idempotency key derives from it.
    message_id: int
    media: Media
    lang: str  # interface language of the replies
    # The note the answers reply to; 0: message_id.
    reply_to: int = 0
    speech_language: str = ""  # "" = detect
    output_format: int = transcriber_pb2.OUTPUT_FORMAT_TEXT
    task: int = transcriber_pb2.TASK_TRANSCRIBE

    @property
    def chat_kind(self) -> notifier_pb2.ChatKind:
        return (
            notifier_pb2.CHAT_KIND_PRIVATE
            if self.chat_type == "private"
            else notifier_pb2.CHAT_KIND_GROUP
        )

    @property
    def note_id(self) -> int:
        return self.reply_to or self.message_id

    def key(self, what: str) -> str:
        return f"{what}:{self.chat_id}:{self.message_id}"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> JobSpec:
        try:
            data: dict[str, Any] = json.loads(raw)
            media = Media(**data.pop("media"))
            return cls(media=media, **data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SpecError(f"unreadable job spec: {exc}") from exc


@dataclass(frozen=True)
class Job:
    """A claimed job: the spec plus what billing knows of its run."""

    job_id: str
    attempt: int  # the fencing token of this run
    spec: JobSpec
    status_message_id: int = 0
    hold_id: str = ""
    trace_id: str = ""


@dataclass
class Outcome:
    # done, no_speech, no_funds, banned, too_big, too_long, failed, cancelled,
    # out_of_credits (stopped where the user's credits ended, text so far delivered)
    status: str
    text: str = ""
    captured_credits: int = 0
    trace_id: str = ""
    segments: list[str] = field(default_factory=list)
    # False: the job is not over (a dependency was unreachable mid-way); its
    # lease is let go so a runner tries it again.
    final: bool = True

    @property
    def job_state(self) -> str:
        if self.status == "cancelled":
            return "cancelled"
        if self.status in ("done", "no_speech", "out_of_credits"):
            return "done"
        return "failed"
