"""Transcribe a media file: ``python transcribe_file.py talk.mp3 [--srt]``.

TRANSCRIBER_TARGET (default 127.0.0.1:50052) and VOXMESH_TLS_* choose the server.
"""

from __future__ import annotations

import asyncio
import sys

from voxmesh_client import Options, TranscriberClient, TranscriberError


async def main(path: str, srt: bool) -> int:
    async with TranscriberClient.from_env() as client:
        try:
            transcript = await client.transcribe_file(
                path, Options(output_format="srt" if srt else "text"), timeout=300
            )
        except TranscriberError as err:
            # err.reason names what went wrong (AUDIO_CORRUPT, OVERLOADED...); err.trace_id
            # is the reference the transcriber's operators can look up.
            print(f"failed: {err}", file=sys.stderr)
            return 1
    print(transcript.formatted if srt else transcript.text)
    print(
        f"[{transcript.language}, {transcript.done.audio_duration_seconds:.1f} s of audio "
        f"in {transcript.done.processing_seconds:.1f} s, model {transcript.done.model}]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(args[0], "--srt" in args)))
