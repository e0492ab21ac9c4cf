"""Live transcription of raw PCM on stdin (16 kHz, mono, signed 16-bit little-endian).

    ffmpeg -loglevel error -re -i talk.mp3 -f s16le -ac 1 -ar 16000 - | python live_pcm.py

``-re`` makes ffmpeg produce the audio at real-time pace, as a microphone would.
Partial text is shown as it changes; committed segments are printed once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from voxmesh_client import TranscriberClient

CHUNK = 3200 * 2  # 0.2 s


async def stdin_pcm() -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    while chunk := await loop.run_in_executor(None, sys.stdin.buffer.read, CHUNK):
        yield chunk


async def main() -> None:
    async with TranscriberClient.from_env() as client:
        async for event in client.live(stdin_pcm(), sample_rate_hz=16_000, timeout=4 * 3600):
            if event.WhichOneof("event") != "segment":
                continue
            segment = event.segment
            if segment.final:
                print(f"\r\033[K[{segment.end_seconds:7.2f}s] {segment.text.strip()}")
            else:
                print(f"\r\033[K… {segment.text.strip()}", end="", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
