"""The multipart form of OpenAI's audio endpoints, read and validated before any gRPC call.

The file is read whole (at most ``FACADE_MAX_UPLOAD_BYTES``, 25 MiB by
default, as OpenAI's limit): OpenAI's form does not fix the order of its
parts, so the options may arrive after the file, and a request is checked in
full before the transcriber spends anything on it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import BodyPartReader, web

from facade.errors import ApiError, bad_request

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
_FIELD_BYTES = 8 * 1024
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_MAX_PROMPT = 1000


@dataclass(frozen=True)
class AudioRequest:
    """One validated request to /v1/audio/transcriptions or /v1/audio/translations."""

    task: Literal["transcribe", "translate"]
    audio: bytes
    filename: str
    model: str
    language: str = ""
    prompt: str = ""
    response_format: ResponseFormat = "json"
    temperature: float = 0.0
    stream: bool = False
    granularities: frozenset[str] = field(default_factory=lambda: frozenset({"segment"}))


async def read_form(
    request: web.Request, max_upload_bytes: int
) -> tuple[dict[str, list[str]], bytes, str]:
    """The form's text fields (repeatable), the file's bytes and its name."""
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(
            400,
            "The request must be multipart/form-data with the audio in the 'file' field.",
            code="invalid_content_type",
        )
    if request.content_length is not None and request.content_length > max_upload_bytes + (1 << 20):
        raise _too_large(max_upload_bytes)
    fields: dict[str, list[str]] = {}
    audio: bytes | None = None
    filename = ""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            if part.name == "file":
                audio = await _read_capped(part, max_upload_bytes)
                filename = part.filename or "audio"
                continue
            raw = await _read_capped(part, _FIELD_BYTES, field_name=part.name)
            fields.setdefault(part.name, []).append(raw.decode("utf-8", "replace"))
    except ValueError as exc:  # aiohttp's malformed multipart
        raise bad_request(f"The multipart body is malformed: {exc}", "file") from None
    if audio is None:
        raise bad_request("The 'file' field is required.", "file", "missing_required_parameter")
    if not audio:
        raise bad_request("The uploaded file is empty.", "file", "empty_file")
    return fields, audio, filename


async def _read_capped(part: BodyPartReader, limit: int, *, field_name: str = "") -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > limit:
            if field_name:
                raise bad_request(f"The '{field_name}' field is too long.", field_name)
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"The file is larger than {limit // (1024 * 1024)} MiB.",
        param="file",
        code="file_too_large",
    )


def _one(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[-1].strip()


def parse(
    task: Literal["transcribe", "translate"],
    fields: dict[str, list[str]],
    audio: bytes,
    filename: str,
) -> AudioRequest:
    """Check every option OpenAI's API takes; unknown fields are ignored, as OpenAI's
    SDKs send newer ones (``chunking_strategy``, ``include[]``) to every server."""
    model = _one(fields, "model")
    if not model:
        raise bad_request(
            "You must provide a model parameter (see GET /v1/models; whisper-1 means the "
            "default model).",
            "model",
            "missing_required_parameter",
        )
    language = _one(fields, "language").lower() if task == "transcribe" else ""
    if language in {"auto"}:
        language = ""
    if language and not _LANGUAGE.match(language):
        raise bad_request(
            f"'{language}' is not an ISO 639-1 language code such as 'en' or 'ru'.", "language"
        )
    prompt = _one(fields, "prompt")
    if len(prompt) > _MAX_PROMPT:
        raise bad_request(f"The prompt is longer than {_MAX_PROMPT} characters.", "prompt")
    response_format = _one(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(
            f"'{response_format}' is not one of {', '.join(RESPONSE_FORMATS)}.",
            "response_format",
        )
    raw_temperature = _one(fields, "temperature") or "0"
    try:
        temperature = float(raw_temperature)
    except ValueError:
        raise bad_request(f"'{raw_temperature}' is not a number.", "temperature") from None
    if not (math.isfinite(temperature) and 0.0 <= temperature <= 1.0):
        raise bad_request("The temperature must be between 0 and 1.", "temperature")
    raw_stream = _one(fields, "stream").lower() or "false"
    if raw_stream not in {"true", "false"}:
        raise bad_request(f"'{raw_stream}' is not true or false.", "stream")
    stream = raw_stream == "true"
    if stream and response_format not in {"json", "text"}:
        raise bad_request(
            "Streaming answers with server-sent events; use response_format json or text.",
            "stream",
        )
    granularities = frozenset(
        fields.get("timestamp_granularities[]", []) + fields.get("timestamp_granularities", [])
    ) or frozenset({"segment"})
    unknown = granularities - set(GRANULARITIES)
    if unknown:
        raise bad_request(
            f"'{sorted(unknown)[0]}' is not a timestamp granularity (segment, word).",
            "timestamp_granularities",
        )
    return AudioRequest(
        task=task,
        audio=audio,
        filename=filename,
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,  # type: ignore[arg-type]
        temperature=temperature,
        stream=stream,
        granularities=granularities,
    )
