"""A BillingService that answers Reserve and Capture from memory, no database.

``python -m bench.billing.canned``: bench/billing's floor row. It runs on the
same runtime as billing (GrpcServer's call frame, uvloop, the same settings
from the environment), so its CPU a pair is what serving the two RPCs costs
before billing does any work of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import grpc
from google.protobuf import timestamp_pb2
from opentelemetry.sdk.trace import TracerProvider

from billing.server import CALLER_POLICY, DEFAULT_LISTEN, DOMAIN
from billing.service import SERVICE_NAME
from billing.v1 import billing_pb2 as pb
from billing.v1 import billing_pb2_grpc
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec, run_main, serve


class Canned(billing_pb2_grpc.BillingServiceServicer):
    async def Reserve(
        self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReserveResponse:
        return pb.ReserveResponse(
            hold=pb.Hold(
                hold_id=str(uuid.uuid4()),
                user_id=request.user_id,
                amount_credits=request.amount_credits,
                state=pb.HOLD_STATE_PENDING,
                expire_time=timestamp_pb2.Timestamp(seconds=4_102_444_800),
                job=request.job,
            )
        )

    async def Capture(
        self, request: pb.CaptureRequest, context: grpc.aio.ServicerContext
    ) -> pb.CaptureResponse:
        return pb.CaptureResponse(
            hold=pb.Hold(
                hold_id=request.hold_id,
                captured_credits=request.amount_credits,
                state=pb.HOLD_STATE_CAPTURED,
            )
        )


async def run(settings: ServerSettings, provider: TracerProvider) -> None:
    servicer = Canned()
    spec = ServiceSpec(
        SERVICE_NAME, lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s)
    )
    await serve(
        GrpcServer(settings, [spec], domain=DOMAIN, tracer_provider=provider, policy=CALLER_POLICY)
    )


def main(env: Mapping[str, str] | None = None) -> None:
    def load(e: Mapping[str, str]) -> ServerSettings:
        return ServerSettings.from_env(e, "BILLING", default_listen=DEFAULT_LISTEN)

    run_main("billing", load, run, env=env)


if __name__ == "__main__":
    main()
