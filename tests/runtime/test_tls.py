"""Mutual TLS between services and per-method authorisation by caller identity."""

from __future__ import annotations

import pathlib

import grpc
import pytest

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh.channels import dial
from voxmesh.config import ConfigError, ServerSettings
from voxmesh.errors import error_details
from voxmesh.server import GrpcServer, ServiceSpec
from voxmesh.tls import TlsSettings, make_dev_pki


class Billing(billing_pb2_grpc.BillingServiceServicer):
    async def Quote(
        self, request: billing_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.QuoteResponse:
        return billing_pb2.QuoteResponse(amount_credits=1)

    async def Reserve(
        self, request: billing_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.ReserveResponse:
        return billing_pb2.ReserveResponse(hold=billing_pb2.Hold(hold_id="h1"))


def _server(settings: ServerSettings) -> GrpcServer:
    servicer = Billing()
    return GrpcServer(
        settings,
        [
            ServiceSpec(
                "billing.v1.BillingService",
                lambda s: billing_pb2_grpc.add_BillingServiceServicer_to_server(servicer, s),
            )
        ],
        domain="billing.voxmesh",
        policy={"Reserve": frozenset({"gateway", "admin"})},
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsSettings]:
    return make_dev_pki(tmp_path_factory.mktemp("pki"))


async def test_mtls_authorises_callers_by_identity(pki: dict[str, TlsSettings]) -> None:
    server = _server(ServerSettings(service="billing", tls=pki["billing"]))
    await server.start()
    target = f"localhost:{server.port}"
    try:
        async with dial(target, tls=pki["gateway"]) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            got = await stub.Reserve(billing_pb2.ReserveRequest(), timeout=5)
            assert got.hold.hold_id == "h1"
        async with dial(target, tls=pki["transcriber"]) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            # Any mesh identity may read a price ...
            assert (await stub.Quote(billing_pb2.QuoteRequest(), timeout=5)).amount_credits == 1
            # ... but only the gateway (or admin tooling) may move money.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Reserve(billing_pb2.ReserveRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        details = error_details(info.value)
        assert details.reason == "CALLER_NOT_ALLOWED"
        assert details.metadata is not None and details.metadata["caller"] == "transcriber"
        # A client without a certificate never gets through the handshake.
        async with grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(pki["gateway"].ca.read_bytes())
        ) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await billing_pb2_grpc.BillingServiceStub(ch).Quote(
                    billing_pb2.QuoteRequest(), timeout=3
                )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_plaintext_off_loopback_is_refused() -> None:
    server = _server(ServerSettings(service="billing", listen="0.0.0.0:0"))
    with pytest.raises(ConfigError, match="plaintext"):
        await server.start()
    allowed = _server(ServerSettings(service="billing", listen="0.0.0.0:0", allow_plaintext=True))
    assert await allowed.start() > 0
    await allowed.stop(0)


def test_tls_settings_need_all_three_files(tmp_path: pathlib.Path) -> None:
    assert TlsSettings.from_env({}) is None
    with pytest.raises(ConfigError, match="VOXMESH_TLS_CERT"):
        TlsSettings.from_env({"VOXMESH_TLS_CA": str(tmp_path / "ca.pem")})
