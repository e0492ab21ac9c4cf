"""Helpers shared by the billing tests (imported by conftest and the tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import grpc

from billing.config import BillingSettings
from billing.server import BillingApp
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc


def with_database(dsn: str, name: str) -> str:
    base, _, rest = dsn.rpartition("/")
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}{query}"


@dataclasses.dataclass
class Running:
    app: BillingApp
    channel: grpc.aio.Channel
    stub: billing_pb2_grpc.BillingServiceStub
    settings: BillingSettings
    target: str
    stopped: bool = False

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.channel.close()
        await self.app.stop(grace=1.0)


def job(message_id: int = 1, chat_id: int = 100, duration: int = 30) -> pb.Job:
    return pb.Job(
        chat_id=chat_id,
        message_id=message_id,
        file_id=f"file-{message_id}",
        duration_seconds=duration,
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )


StartBilling = Callable[..., Awaitable[Running]]
