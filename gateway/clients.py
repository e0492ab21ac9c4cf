"""The gateway's view of the mesh: one stub per service, over the runtime's channels."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from billing.v1 import billing_pb2_grpc
from notifier.v1 import notifier_pb2_grpc
from transcriber.v1 import transcriber_pb2_grpc
from voxmesh.channels import dial
from voxmesh.metrics import ClientMetrics
from voxmesh.tls import TlsSettings


@dataclass(frozen=True)
class Services:
    # The *AsyncStub types exist only for type checkers (mypy-protobuf).
    billing: billing_pb2_grpc.BillingServiceAsyncStub
    transcriber: transcriber_pb2_grpc.TranscriberServiceAsyncStub
    notifier: notifier_pb2_grpc.NotifierServiceAsyncStub
    channels: tuple[grpc.aio.Channel, ...] = ()

    @classmethod
    def connect(
        cls,
        billing: str,
        transcriber: str,
        notifier: str,
        *,
        tls: TlsSettings | None = None,
        metrics: ClientMetrics | None = None,
    ) -> Services:
        b, t, n = (
            dial(target, tls=tls, metrics=metrics) for target in (billing, transcriber, notifier)
        )
        return cls(
            billing=billing_pb2_grpc.BillingServiceStub(b),
            transcriber=transcriber_pb2_grpc.TranscriberServiceStub(t),
            notifier=notifier_pb2_grpc.NotifierServiceStub(n),
            channels=(b, t, n),
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
