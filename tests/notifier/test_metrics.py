"""The notifier's metrics: waits before sending, Telegram's 429s, queue depth."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import generate_latest

from notifier.v1 import notifier_pb2 as pb
from voxmesh_dev.telegram import BotApiEmulator, FaultPolicy


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_sends_record_waits_429s_and_depth(notifier: Any, emulator: BotApiEmulator) -> None:
    await notifier.stub.Send(pb.SendRequest(idempotency_key="m1", chat_id=77, text="a"), timeout=10)
    # Telegram says 429 once: counted, retried, delivered.
    emulator.faults = FaultPolicy(rate_429=1.0, retry_after=1, methods=frozenset({"sendMessage"}))
    task = asyncio.ensure_future(
        notifier.stub.Send(pb.SendRequest(idempotency_key="m2", chat_id=78, text="b"), timeout=20)
    )
    await asyncio.sleep(0.5)
    emulator.faults = FaultPolicy()
    assert (await task).message_id > 0
    text = generate_latest(notifier.app.registry).decode()
    assert _value(text, "voxmesh_notifier_ratelimit_wait_seconds_count") >= 2
    assert _value(text, "voxmesh_notifier_telegram_429_total") >= 1
    assert _value(text, "voxmesh_notifier_queue_depth") >= 0
    # The RED metrics of the gRPC server live in the same registry.
    assert (
        'grpc_server_handled_total{grpc_code="OK",grpc_method="Send",'
        'grpc_service="notifier.v1.NotifierService",grpc_type="unary"}'
    ) in text
