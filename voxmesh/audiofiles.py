"""Re-encode reference audio the way Telegram clients send it (demo and tests)."""

from __future__ import annotations

import io
import pathlib

import av


def encode(
    source: pathlib.Path | bytes,
    *,
    container: str = "ogg",
    codec: str = "libopus",
    rate: int = 48000,
) -> bytes:
    """Decode any audio ``source`` and encode it as ``container``/``codec`` (mono)."""
    src = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")
    out_buf = io.BytesIO()
    out = av.open(out_buf, mode="w", format=container)
    stream = out.add_stream(codec, rate=rate, layout="mono")
    assert isinstance(stream, av.AudioStream)
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
    for frame in src.decode(audio=0):
        for resampled in resampler.resample(frame):
            for packet in stream.encode(resampled):
                out.mux(packet)
    for resampled in resampler.resample(None):
        for packet in stream.encode(resampled):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    src.close()
    return out_buf.getvalue()


def duration_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / av.time_base
