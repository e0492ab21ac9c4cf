"""Reading Bot API request parameters the way Telegram does, whatever the encoding.

A Bot API request may carry its parameters in the query string, a JSON body, an urlencoded
form or multipart/form-data (aiogram uses multipart for every method). In forms every value is
a string, and Telegram parses each one by the parameter's type; :class:`Params` does the same.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def error_body(exc: ApiError) -> dict[str, Any]:
    """The JSON body Telegram answers an error with (``retry_after`` only on a 429)."""
    body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.retry_after is not None:
        body["parameters"] = {"retry_after": exc.retry_after}
    return body


def too_large() -> ApiError:
    return ApiError(413, "Request Entity Too Large")


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    file_name: str
    content: bytes
    content_type: str | None


class Params:
    """Typed access to one request's parameters, with Telegram's error wording."""

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.values = values
        self.files = files

    def has(self, name: str) -> bool:
        return name in self.values or name in self.files

    def get_str(self, name: str, *, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise bad_request(f"{name} is empty")
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value)

    def get_int(
        self, name: str, *, required: bool = False, missing: str | None = None
    ) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            if required:
                raise bad_request(missing or f"{name} is empty")
            return None
        if isinstance(value, bool):
            raise bad_request(f"invalid {name} specified")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise bad_request(f"invalid {name} specified") from None

    def chat_id(self) -> int:
        value = self.values.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        try:
            chat = self.get_int("chat_id")
        except ApiError:
            # "@channelusername" targets need a username registry the emulator does not keep
            raise bad_request("chat not found") from None
        assert chat is not None
        return chat

    def get_bool(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise bad_request(f"invalid {name} specified")

    def get_json(self, name: str, *, what: str | None = None) -> Any:
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {what or name} JSON object") from None

    def get_file(self, name: str) -> UploadedFile | str | None:
        """The upload for ``name`` (direct part or ``attach://key``), a file_id/URL, or None."""
        if name in self.files:
            return self.files[name]
        value = self.get_str(name)
        if value is None or value == "":
            return None
        if value.startswith("attach://"):
            key = value.removeprefix("attach://")
            if key not in self.files:
                raise bad_request(
                    "wrong remote file identifier specified: can't find attached file"
                )
            return self.files[key]
        return value

    def recorded(self) -> dict[str, Any]:
        """The parameters with file bytes replaced by their name and size, for the call log."""
        out = dict(self.values)
        for key, upload in self.files.items():
            out[key] = {"file_name": upload.file_name, "size": len(upload.content)}
        return out


async def read_multipart(
    reader: MultipartReader, max_upload: int
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Read form fields and file parts; a file over ``max_upload`` bytes raises 413."""
    values: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.filename is None:
            values[part.name] = await part.text()
            continue
        data = bytearray()
        while chunk := await part.read_chunk(1 << 16):
            data += chunk
            if len(data) > max_upload:
                raise too_large()
        files[part.name] = UploadedFile(
            file_name=part.filename,
            content=bytes(data),
            content_type=part.headers.get("Content-Type"),
        )
    return values, files


async def read_request(request: web.Request, max_upload: int) -> Params:
    """Merge the query string and the body (JSON, urlencoded or multipart) into :class:`Params`."""
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    content_type = request.content_type
    if request.method == "POST" and request.can_read_body:
        if content_type == "multipart/form-data":
            form, files = await read_multipart(await request.multipart(), max_upload)
            values.update(form)
        elif content_type == "application/x-www-form-urlencoded":
            try:
                form_data = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise too_large() from None
            values.update({k: v for k, v in form_data.items() if isinstance(v, str)})
        elif content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON object")
            values.update(body)
    return Params(values, files)


# One Bot API method: its parameters in, its ``result`` out (or an ApiError raised). Each
# method group maps lower-cased method names to these; the dispatcher looks them up.
Handler = Callable[[Params], Awaitable[Any]]
