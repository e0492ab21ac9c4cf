"""What the Bot API emulator remembers, in a form tests can assert on and send as JSON."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedDocument:
    """A file the bot uploaded with sendDocument."""

    file_id: str
    file_name: str
    mime_type: str
    content: bytes

    @property
    def filename(self) -> str:
        """Alias of file_name, the spelling multipart uploads use."""
        return self.file_name


@dataclass
class RecordedMessage:
    """A message the bot sent, as it stands now.

    ``text`` is the current text after entity parsing (what the user sees); ``edits`` holds the
    text set by each successful editMessageText, in order (so the first text is ``first_text``
    and, when edited, ``text == edits[-1]``). ``payload`` is the Message object the Bot API
    would return for it now.
    """

    message_id: int
    chat_id: int
    date: int
    text: str | None = None
    first_text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    parse_mode: str | None = None
    caption: str | None = None
    document: RecordedDocument | None = None
    reply_to_message_id: int | None = None
    reply_markup: dict[str, Any] | None = None
    invoice: dict[str, Any] | None = None
    edits: list[str] = field(default_factory=list)
    deleted: bool = False
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "document"}
        if self.document is None:
            data["document"] = None
        else:
            data["document"] = {
                "file_id": self.document.file_id,
                "file_name": self.document.file_name,
                "mime_type": self.document.mime_type,
                "content_b64": base64.b64encode(self.document.content).decode("ascii"),
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedMessage:
        data = dict(data)
        doc = data.pop("document", None)
        msg = cls(**data)
        if doc is not None:
            msg.document = RecordedDocument(
                file_id=doc["file_id"],
                file_name=doc["file_name"],
                mime_type=doc["mime_type"],
                content=base64.b64decode(doc["content_b64"]),
            )
        return msg


@dataclass
class RecordedCall:
    """One Bot API request as the emulator answered it.

    ``params`` has uploaded files replaced by ``{"file_name": ..., "size": ...}``. ``status``
    is the HTTP status, or 0 when the connection was dropped or hung (``fault`` says which);
    ``error_code`` is None on success. ``fault`` is set only for injected failures, so a
    test can tell a genuine flood-limit 429 (fault None) from an injected one.
    """

    method: str
    params: dict[str, Any]
    time: float
    status: int
    error_code: int | None = None
    description: str | None = None
    fault: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedCall:
        return cls(**data)
