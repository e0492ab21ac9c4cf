"""Incremental audio decoding: container bytes in, 16 kHz mono float32 out.

The bytes arrive from the network on one thread while PyAV reads them on
another, so :class:`ByteFeed` is a blocking, seekable file: a read waits for
bytes that have not arrived yet, a seek may point anywhere (MP4 often keeps
its index, the moov atom, at the end). The size stays unknown until the
upload ends, which keeps demuxers (OGG, MP3) from waiting for the last byte
just to estimate a duration.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import av
import av.audio.resampler
import numpy as np
import numpy.typing as npt

from transcriber.errors import BadAudio, Cancelled

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000

AudioArray = npt.NDArray[np.float32]

# Compressed uploads past this size go to a temporary file, so a long upload
# costs disk, not memory.
_SPOOL_BYTES = 8 * 1024 * 1024


class ByteFeed(io.RawIOBase):
    """A file whose bytes are appended by one thread and read by another."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self._max_bytes = max_bytes
        self._store = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
        self._size = 0
        self._pos = 0
        self._eof = False
        self._aborted = False
        self._seekable = True
        self._cond = threading.Condition()

    # Producer side -------------------------------------------------------

    @property
    def received(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        """Append bytes; raises BadAudio(AUDIO_TOO_LARGE) past the limit."""
        n = len(data)
        with self._cond:
            if self._aborted:
                return n  # the consumer is gone; the rest of the upload is drained
            if self._eof:
                raise ValueError("write after end of input")
            if self._size + n > self._max_bytes:
                raise BadAudio(
                    f"upload exceeds {self._max_bytes} bytes",
                    reason="AUDIO_TOO_LARGE",
                    metadata={"max_bytes": self._max_bytes},
                )
            self._store.seek(self._size)
            self._store.write(data)
            self._size += n
            self._cond.notify_all()
        return n

    def finish(self) -> None:
        """The upload ended (the client half-closed)."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """Wake any reader with Cancelled; the consumer is going away."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    # Consumer side (the file object PyAV sees) ----------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def set_seekable(self, seekable: bool) -> None:
        """Say whether to offer seeking to the demuxer (read before it opens)."""
        self._seekable = seekable

    def writable(self) -> bool:
        # PyAV opens a file with write() as an output unless told otherwise.
        return False

    def tell(self) -> int:
        return self._pos

    def peek_head(self, n: int) -> bytes:
        """Block until the first n bytes (or the end) arrived and return them."""
        with self._cond:
            self._cond.wait_for(lambda: self._size >= n or self._eof or self._aborted)
            if self._aborted:
                raise Cancelled()
            self._store.seek(0)
            return self._store.read(min(n, self._size))

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            if size is None or size < 0:
                self._cond.wait_for(lambda: self._eof or self._aborted)
                size = max(0, self._size - self._pos)
            else:
                self._cond.wait_for(lambda: self._aborted or self._eof or self._size > self._pos)
            if self._aborted:
                raise Cancelled()
            n = min(size, max(0, self._size - self._pos))
            if n == 0:
                return b""
            self._store.seek(self._pos)
            data = self._store.read(n)
            self._pos += len(data)
            return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        with self._cond:
            if whence == os.SEEK_SET:
                target = offset
            elif whence == os.SEEK_CUR:
                target = self._pos + offset
            elif whence == os.SEEK_END:
                if not self._eof:
                    # Unknown size: FFmpeg (avio_size) treats a negative answer as such.
                    return -1
                target = self._size + offset
            else:
                return -1
            if target < 0:
                return -1
            # A seek past the received bytes is allowed; the next read waits for them.
            self._pos = target
            return target

    def close(self) -> None:
        with self._cond:
            self._aborted = self._aborted or not self._eof
            self._cond.notify_all()
        self._store.close()
        super().close()


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about its first audio track."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    #: From the container header, when it has one; None for OGG and other
    #: streams whose length is only known at the end.
    duration_seconds: float | None


# WAV format tags whose byte rate is exact: PCM, IEEE float, A-law, mu-law, extensible.
_WAV_EXACT_FORMATS = frozenset({1, 3, 6, 7, 0xFFFE})
# The RIFF header is read from at most this many bytes (fmt and data come first).
WAV_HEAD_BYTES = 4096


def wav_duration(head: bytes) -> float | None:
    """Seconds of a WAV file from its fmt and data chunk sizes, None if unknown.

    FFmpeg reads exactly the data chunk's size, so the header states what
    will be decoded; on a stream that cannot seek, FFmpeg does not report it.
    A streaming writer's placeholder size (0 or 0xFFFFFFFF) means unknown.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt " and pos + 16 <= len(head):
            tag, _, _, byte_rate = struct.unpack_from("<HHII", head, pos + 8)
            if tag not in _WAV_EXACT_FORMATS:
                return None
        elif chunk == b"data":
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return float(size / byte_rate)
        pos += 8 + size + (size & 1)
    return None


def _probe_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


class AudioDecoder:
    """Decodes the first audio track of a container into 16 kHz mono chunks.

    Holds at most one chunk of decoded audio; undecodable packets are skipped
    as faster-whisper's own decode_audio does, but a file that yields no audio
    at all is AUDIO_CORRUPT.
    """

    def __init__(
        self,
        source: ByteFeed,
        *,
        max_seconds: float,
        cancel: threading.Event,
        chunk_seconds: float = 1.0,
    ) -> None:
        self._source = source
        self._max_samples = int(max_seconds * SAMPLE_RATE)
        self._max_seconds = max_seconds
        self._cancel = cancel
        self._chunk_samples = max(1, int(chunk_seconds * SAMPLE_RATE))
        self._container: av.container.InputContainer | None = None
        self._stream: av.AudioStream | None = None
        self.decoded_samples = 0

    def _too_long(self) -> BadAudio:
        return BadAudio(
            f"audio is longer than {self._max_seconds:g} seconds",
            reason="AUDIO_TOO_LONG",
            metadata={"max_seconds": f"{self._max_seconds:g}"},
        )

    def open(self) -> AudioInfo:
        head = self._source.peek_head(16)
        if not head:
            raise BadAudio("the upload has no bytes", reason="AUDIO_EMPTY")
        # Only ISO BMFF (MP4, M4A, MOV, 3GP) needs to seek ahead for its index.
        # Offering seeks to other demuxers makes them wait for the last byte:
        # WAV scans for chunks after the data, OGG and MP3 read the end for a
        # duration.
        self._source.set_seekable(_is_iso_bmff(head))
        try:
            container = av.open(self._source, mode="r", metadata_errors="ignore")
        except Cancelled:
            raise
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            if self._cancel.is_set():
                raise Cancelled() from exc
            raise BadAudio(
                "not a decodable audio or video container", reason="AUDIO_CORRUPT"
            ) from exc
        self._container = container
        if not container.streams.audio:
            raise BadAudio("the container has no audio track", reason="NO_AUDIO_TRACK")
        stream = container.streams.audio[0]
        self._stream = stream
        duration = _probe_duration(container, stream)
        if duration is None and container.format.name == "wav":
            duration = wav_duration(self._source.peek_head(WAV_HEAD_BYTES))
        if duration is not None and duration > self._max_seconds + 1.0:
            raise self._too_long()
        return AudioInfo(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=stream.codec_context.sample_rate or 0,
            channels=stream.codec_context.channels or 0,
            duration_seconds=duration,
        )

    def _frames(self) -> Iterator[av.AudioFrame]:
        assert self._container is not None and self._stream is not None
        errors = 0
        try:
            for packet in self._container.demux(self._stream):
                if self._cancel.is_set():
                    raise Cancelled()
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    errors += 1
                    continue
                for frame in frames:
                    # Timestamps of broken files confuse the resampler; order is enough.
                    frame.pts = None
                    yield frame
        except Cancelled:
            raise
        except av.FFmpegError as exc:
            if self._cancel.is_set():
                raise Cancelled() from exc
            # A demuxer error mid-file (truncation, garbage): keep what decoded.
            log.info("demuxing stopped early: %s", exc)
        if errors:
            log.info("skipped %d undecodable packets", errors)

    def chunks(self) -> Iterator[AudioArray]:
        """Yield float32 mono 16 kHz arrays of about chunk_seconds each."""
        resampler = av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[AudioArray] = []
        pending_samples = 0
        frames: Iterator[av.AudioFrame | None] = self._frames()
        for frame in _with_flush(frames):
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                self.decoded_samples += samples.size
                if self.decoded_samples > self._max_samples:
                    raise self._too_long()
                pending.append(samples)
                pending_samples += samples.size
                if pending_samples >= self._chunk_samples:
                    yield np.concatenate(pending)
                    pending, pending_samples = [], 0
        if pending_samples:
            yield np.concatenate(pending)
        if self.decoded_samples == 0:
            raise BadAudio("the audio track holds no decodable audio", reason="AUDIO_CORRUPT")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _is_iso_bmff(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _with_flush(frames: Iterator[av.AudioFrame | None]) -> Iterator[av.AudioFrame | None]:
    yield from frames
    # None flushes the resampler's delay line.
    yield None


def pcm16_to_float(data: bytes) -> AudioArray:
    """Little-endian signed 16-bit PCM to float32 in [-1, 1)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


class PcmResampler:
    """Streaming resampler for live PCM at any rate to 16 kHz mono float32."""

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._resampler = (
            None
            if sample_rate == SAMPLE_RATE
            else av.audio.resampler.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        )

    def _run(self, frame: av.AudioFrame | None) -> AudioArray:
        assert self._resampler is not None
        outs = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not outs:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def push(self, pcm: bytes) -> AudioArray:
        if self._resampler is None:
            return pcm16_to_float(pcm)
        usable = len(pcm) - len(pcm) % 2
        if usable == 0:
            return np.zeros(0, dtype=np.float32)
        samples = np.frombuffer(pcm[:usable], dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        return self._run(frame)

    def flush(self) -> AudioArray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._run(None)
