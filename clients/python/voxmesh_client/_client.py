"""A small async client for the transcriber: a file, bytes, or live PCM as it is spoken.

Every call gets a deadline (``timeout``), the mesh's retry policy
(UNAVAILABLE only), TLS when configured, and the caller's trace context
(W3C and B3). Failures raise :class:`TranscriberError` with the status
code, the mesh's reason and the trace id to quote.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

import grpc

from voxmesh_client._channel import TlsFiles, dial
from voxmesh_client._errors import TranscriberError
from voxmesh_client._tracing import client_span, trace_id
from voxmesh_client.transcriber.v1 import transcriber_pb2 as pb
from voxmesh_client.transcriber.v1 import transcriber_pb2_grpc as pb_grpc

_SERVICE = "/transcriber.v1.TranscriberService/"
# Chunks of a file sent on the stream: the server takes up to 1 MiB a message.
CHUNK_BYTES = 256 * 1024
DEFAULT_TARGET = "127.0.0.1:50052"

Task = Literal["transcribe", "translate"]
OutputFormat = Literal["text", "timestamped", "srt", "vtt"]
_TASKS = {"transcribe": pb.TASK_TRANSCRIBE, "translate": pb.TASK_TRANSLATE}
_FORMATS = {
    "text": pb.OUTPUT_FORMAT_TEXT,
    "timestamped": pb.OUTPUT_FORMAT_TIMESTAMPED_TEXT,
    "srt": pb.OUTPUT_FORMAT_SRT,
    "vtt": pb.OUTPUT_FORMAT_VTT,
}


@dataclass(frozen=True)
class Options:
    """How to transcribe; the fields of ``transcriber.v1.TranscriptionConfig``."""

    #: ISO 639-1 code ("en", "ru"); empty detects it.
    language: str = ""
    task: Task = "transcribe"
    word_timestamps: bool = False
    #: Shape of :attr:`Transcript.formatted`.
    output_format: OutputFormat = "text"
    #: Text that primes the decoder (names, spelling).
    prompt: str = ""
    hotwords: str = ""
    #: 0: the server's default.
    beam_size: int = 0
    #: A name from :meth:`TranscriberClient.list_models`; empty: the server's default.
    model: str = ""

    def config(self, *, live: bool = False, sample_rate_hz: int = 0) -> pb.TranscriptionConfig:
        return pb.TranscriptionConfig(
            language=self.language,
            task=_TASKS[self.task],
            word_timestamps=self.word_timestamps,
            output_format=_FORMATS[self.output_format],
            input_mode=pb.INPUT_MODE_LIVE_PCM if live else pb.INPUT_MODE_FILE,
            sample_rate_hz=sample_rate_hz,
            initial_prompt=self.prompt,
            hotwords=self.hotwords,
            beam_size=self.beam_size,
            model=self.model,
        )


@dataclass
class Transcript:
    """A finished transcription."""

    language: str = ""
    language_probability: float = 0.0
    #: Final segments in order.
    segments: list[pb.Segment] = field(default_factory=list)
    #: Totals: audio and processing seconds, model, device.
    done: pb.Done = field(default_factory=pb.Done)
    #: The call's trace id (the reference to quote in a bug report).
    trace_id: str = ""

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def formatted(self) -> str:
        """The whole transcript in the requested :attr:`Options.output_format`."""
        return self.done.formatted_text


class TranscriberClient:
    """The transcriber's API with the mesh's call discipline.

    >>> async with TranscriberClient("127.0.0.1:50052") as client:
    ...     transcript = await client.transcribe_file("talk.mp3")
    ...     print(transcript.text)
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        tls: TlsFiles | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 600.0,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        """``target``: ``host:port`` or ``dns:///name:port``. ``timeout``: the default
        deadline of a transcription, seconds (a call may pass its own)."""
        self._channel = (
            channel if channel is not None else dial(target, tls=tls, credentials=credentials)
        )
        self._owns_channel = channel is None
        self._stub = pb_grpc.TranscriberServiceStub(self._channel)
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TranscriberClient:
        """``TRANSCRIBER_TARGET`` and ``VOXMESH_TLS_*``, as the mesh's services read them."""
        env = os.environ if env is None else env
        target = env.get("TRANSCRIBER_TARGET", "").strip() or DEFAULT_TARGET
        return cls(target, tls=TlsFiles.from_env(env))

    async def __aenter__(self) -> TranscriberClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def list_models(self, *, timeout: float = 10.0) -> list[pb.ModelInfo]:
        """The models the server can run; ``is_default`` marks the one used when none is named."""
        with client_span(_SERVICE + "ListModels") as (_, metadata):
            try:
                reply = await self._stub.ListModels(
                    pb.ListModelsRequest(), timeout=timeout, metadata=metadata
                )
            except grpc.aio.AioRpcError as exc:
                raise TranscriberError.from_rpc(exc, trace_id(metadata)) from None
        return list(reply.models)

    async def transcribe_file(
        self,
        path: str | os.PathLike[str],
        options: Options | None = None,
        *,
        timeout: float | None = None,
    ) -> Transcript:
        """Transcribe a media file (OGG/Opus, MP3, M4A, MP4, WebM, WAV, FLAC...),
        read and sent in chunks: the file is never held whole in memory."""
        return await self._collect(self.stream(_read_file(pathlib.Path(path)), options, timeout))

    async def transcribe_bytes(
        self, data: bytes, options: Options | None = None, *, timeout: float | None = None
    ) -> Transcript:
        """Transcribe a media file held in memory."""
        return await self._collect(self.stream(_from_bytes(data), options, timeout))

    def stream(
        self,
        audio: AsyncIterable[bytes],
        options: Options | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        """Stream a media file's bytes; yield events as the server sends them: while the
        server is full, ``queued`` events (the place in line, 1 runs next), then
        ``audio`` (the duration), at most one ``language``, ``segment`` events in
        order, then one ``done``. Ignore the kinds you do not need."""
        config = (options or Options()).config()
        return self._call(config, audio, timeout)

    def live(
        self,
        pcm: AsyncIterable[bytes],
        *,
        sample_rate_hz: int = 16_000,
        options: Options | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        """Live mode: ``pcm`` is signed 16-bit little-endian mono at ``sample_rate_hz``,
        produced as it is spoken. Segments with ``final=False`` are the current
        hypothesis, replaced by later ones; ``final=True`` segments are committed.
        ``timeout`` bounds the whole session (default: the client's): pass a longer
        one for a session that may outlast it."""
        config = (options or Options()).config(live=True, sample_rate_hz=sample_rate_hz)
        return self._call(config, pcm, timeout)

    async def _call(
        self,
        config: pb.TranscriptionConfig,
        audio: AsyncIterable[bytes],
        timeout: float | None,
    ) -> AsyncIterator[pb.TranscribeResponse]:
        async def requests() -> AsyncIterator[pb.TranscribeRequest]:
            yield pb.TranscribeRequest(config=config)
            async for chunk in audio:
                for i in range(0, len(chunk), CHUNK_BYTES):
                    yield pb.TranscribeRequest(audio=chunk[i : i + CHUNK_BYTES])

        with client_span(_SERVICE + "Transcribe") as (_, metadata):
            call = self._stub.Transcribe(
                requests(), timeout=timeout or self.timeout, metadata=metadata
            )
            try:
                async for event in call:
                    yield event
            except grpc.aio.AioRpcError as exc:
                raise TranscriberError.from_rpc(exc, trace_id(metadata)) from None
            finally:
                call.cancel()

    @staticmethod
    async def _collect(events: AsyncIterator[pb.TranscribeResponse]) -> Transcript:
        out = Transcript()
        async for event in events:
            kind = event.WhichOneof("event")
            if kind == "language":
                out.language = event.language.language
                out.language_probability = event.language.probability
            elif kind == "segment" and event.segment.final:
                out.segments.append(event.segment)
            elif kind == "done":
                out.done = event.done
        return out


async def _read_file(path: pathlib.Path) -> AsyncIterator[bytes]:
    # Local reads of 256 KiB are short enough not to need a thread.
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


async def _from_bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data
