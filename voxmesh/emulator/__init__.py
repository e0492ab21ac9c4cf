"""Honest fakes of the two outside services the mesh talks to, speaking their real wire formats.

* :mod:`voxmesh.emulator.botapi`: the Telegram Bot API (``BotApiEmulator``, ``EmulatorClient``).
* :mod:`voxmesh.emulator.zipkin`: a Zipkin v2 collector that validates every span against the
  published API spec (``ZipkinCollector``).

Both are real aiohttp servers on real sockets; each module's docstring says what it leaves out.
"""

from voxmesh.emulator.botapi import (
    BotApiEmulator,
    EmulatorClient,
    FaultPolicy,
    RateLimits,
    RecordedCall,
    RecordedDocument,
    RecordedMessage,
)
from voxmesh.emulator.zipkin import ZipkinCollector

__all__ = [
    "BotApiEmulator",
    "EmulatorClient",
    "FaultPolicy",
    "RateLimits",
    "RecordedCall",
    "RecordedDocument",
    "RecordedMessage",
    "ZipkinCollector",
]
