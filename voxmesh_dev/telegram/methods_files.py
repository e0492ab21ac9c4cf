"""Bot API methods on files: getFile (then a download) and sendDocument.

The download itself (``/file/bot<token>/<path>``) is plain HTTP, not a method; the HTTP front
(:mod:`voxmesh_dev.telegram.dispatch`) serves it from the same state.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from voxmesh_dev.telegram.outgoing import Outbox
from voxmesh_dev.telegram.params import Handler, Params, UploadedFile, bad_request
from voxmesh_dev.telegram.records import RecordedDocument
from voxmesh_dev.telegram.state import BotState, StoredFile


class FileMethods:
    def __init__(self, state: BotState, outbox: Outbox) -> None:
        self.state = state
        self.outbox = outbox

    def handlers(self) -> dict[str, Handler]:
        return {"getfile": self.get_file, "senddocument": self.send_document}

    async def get_file(self, p: Params) -> Any:
        file_id = p.get_str("file_id")
        if not file_id:
            raise bad_request("file_id is empty")
        stored = self.state.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        # The cloud Bot API serves files up to 20 MB; a local server, up to 2000 MB.
        if len(stored.content) > self.state.download_limit:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def send_document(self, p: Params) -> Any:
        chat_id = p.chat_id()
        source = p.get_file("document")
        if source is None:
            raise bad_request("there is no document in the request")
        caption, caption_entities = self.outbox.caption(p)
        reply = self.outbox.reply(chat_id, p)
        markup = self.outbox.markup(p)
        self.outbox.check_can_send(chat_id)
        stored = self._source(source)
        extra: dict[str, Any] = {"document": stored.as_document()}
        if caption is not None:
            extra["caption"] = caption
            if caption_entities:
                extra["caption_entities"] = caption_entities
        message = self.outbox.new_message(chat_id, reply=reply, markup=markup, extra=extra)
        message.caption = caption
        message.parse_mode = p.get_str("parse_mode")
        message.document = RecordedDocument(
            file_id=stored.file_id,
            file_name=stored.file_name or "document",
            mime_type=stored.mime_type,
            content=stored.content,
        )
        return message.payload

    def _source(self, source: UploadedFile | str) -> StoredFile:
        """An upload becomes a new file; a file_id must name a known one (URLs are not fetched)."""
        if isinstance(source, UploadedFile):
            mime = (source.content_type or "").split(";")[0].strip()
            if not mime or mime == "application/octet-stream":
                mime = mimetypes.guess_type(source.file_name)[0] or "application/octet-stream"
            return self.state.store_file(source.content, mime_type=mime, file_name=source.file_name)
        found = self.state.files.get(source)
        if found is None:
            if source.startswith(("http://", "https://")):
                raise bad_request("failed to get HTTP URL content")
            raise bad_request("wrong file identifier/HTTP URL specified")
        return found
