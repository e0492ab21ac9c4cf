"""go-grpc-prometheus's client family: every call the process makes, by type and code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from transcriber.v1 import transcriber_pb2, transcriber_pb2_grpc
from voxmesh.channels import dial
from voxmesh.errors import InvalidArgument
from voxmesh.metrics import ClientMetrics
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec

_SERVICE = 'grpc_service="transcriber.v1.TranscriberService"'


class _Models(transcriber_pb2_grpc.TranscriberServiceServicer):
    async def ListModels(
        self, request: transcriber_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> transcriber_pb2.ListModelsResponse:
        return transcriber_pb2.ListModelsResponse()

    async def Transcribe(
        self, request_iterator: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[transcriber_pb2.TranscribeResponse]:
        raise InvalidArgument("no audio")
        yield transcriber_pb2.TranscribeResponse()  # a generator, as a stream handler is


async def test_client_calls_are_counted_by_type_and_code() -> None:
    servicer = _Models()
    server = GrpcServer(
        ServerSettings(service="transcriber"),
        [
            ServiceSpec(
                "transcriber.v1.TranscriberService",
                lambda s: transcriber_pb2_grpc.add_TranscriberServiceServicer_to_server(
                    servicer, s
                ),
            )
        ],
        domain="transcriber.voxmesh",
    )
    await server.start()
    registry = CollectorRegistry()
    try:
        async with dial(server.address, metrics=ClientMetrics(registry)) as ch:
            stub = transcriber_pb2_grpc.TranscriberServiceStub(ch)
            await stub.ListModels(transcriber_pb2.ListModelsRequest(), timeout=5)
            await stub.ListModels(transcriber_pb2.ListModelsRequest(), timeout=5)
            # A bidi stream the server refuses.
            call = stub.Transcribe(iter(()), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in call:
                    pass
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(0)
    text = generate_latest(registry).decode()
    unary = f'grpc_method="ListModels",{_SERVICE},grpc_type="unary"'
    assert f'grpc_client_handled_total{{grpc_code="OK",{unary}}} 2.0' in text
    assert f"grpc_client_started_total{{{unary}}} 2.0" in text
    assert f"grpc_client_handling_seconds_count{{{unary}}} 2.0" in text
    bidi = f'grpc_method="Transcribe",{_SERVICE},grpc_type="bidi_stream"'
    assert f'grpc_client_handled_total{{grpc_code="InvalidArgument",{bidi}}} 1.0' in text
