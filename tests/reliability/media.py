"""Bad (and a few good) media files, made on the fly with PyAV and the standard library."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000


def tone(seconds: float, freq: float = 440.0, rate: int = SAMPLE_RATE) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def encode_pcm(
    pcm: npt.NDArray[np.int16],
    *,
    container: str,
    codec: str,
    rate: int = 48000,
    in_rate: int = SAMPLE_RATE,
    options: dict[str, str] | None = None,
    bit_rate: int | None = None,
) -> bytes:
    """Mono 16-bit PCM at ``in_rate`` -> ``container``/``codec`` at ``rate``."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono", options=options or {})
        assert isinstance(stream, av.AudioStream)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        step = in_rate * 10  # ten seconds a frame keeps memory flat for long silences
        for start in range(0, max(len(pcm), 1), step):
            frame = av.AudioFrame.from_ndarray(
                pcm[start : start + step].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = in_rate
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return buf.getvalue()


def ogg_opus(seconds: float = 2.0) -> bytes:
    return encode_pcm(tone(seconds), container="ogg", codec="libopus")


def wav(seconds: float = 1.0) -> bytes:
    return encode_pcm(tone(seconds), container="wav", codec="pcm_s16le", rate=SAMPLE_RATE)


def silence_ogg(seconds: int) -> bytes:
    """Hours of Opus silence in little space: 8 kHz, 6 kbit/s, 120 ms frames."""
    pcm = np.zeros(seconds * 8000, np.int16)
    return encode_pcm(
        pcm,
        container="ogg",
        codec="libopus",
        rate=8000,
        in_rate=8000,
        bit_rate=6000,
        options={"frame_duration": "120", "application": "voip", "compression_level": "0"},
    )


def video_only_mp4(seconds: int = 2) -> bytes:
    """An MP4 with one H.264 track and no audio at all."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for i in range(seconds * 5):
            frame = black.reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def zip_file() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("voice.ogg", b"OggS" + bytes(1000))
        z.writestr("notes.txt", "not audio " * 200)
    return buf.getvalue()


def png() -> bytes:
    """A real 8x8 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * 8 for _ in range(8))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def wav_claiming_rate(rate: int, seconds: float = 1.0) -> bytes:
    """A WAV whose header says ``rate`` Hz (384 kHz, 1 MHz, ...) over 16 kHz samples."""
    data = tone(seconds).tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    return (
        header
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def speech(path: str, seconds: float) -> npt.NDArray[np.int16]:
    """The first ``seconds`` of a recording as 16 kHz mono 16-bit PCM."""
    with av.open(path) as src:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        parts = []
        for frame in src.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if sum(p.size for p in parts) >= seconds * SAMPLE_RATE:
                break
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)].astype(np.int16)
