"""An honest fake of the Telegram Bot API, speaking its real wire format on a real socket.

``BotApiEmulator`` (:mod:`voxmesh_dev.telegram.emulator`) serves it in-process;
``EmulatorClient`` drives one running in another process (``python -m voxmesh_dev.telegram``)
through its /_emulator/ control API. The emulator module's docstring says what it emulates
and what it leaves out.
"""

from voxmesh_dev.telegram.emulator import (
    BotApiEmulator,
    EmulatorClient,
    FaultPolicy,
    RateLimits,
    RecordedCall,
    RecordedDocument,
    RecordedMessage,
    WebhookDelivery,
)

__all__ = [
    "BotApiEmulator",
    "EmulatorClient",
    "FaultPolicy",
    "RateLimits",
    "RecordedCall",
    "RecordedDocument",
    "RecordedMessage",
    "WebhookDelivery",
]
