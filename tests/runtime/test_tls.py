"""Mutual TLS between services and per-method authorisation by caller identity."""

from __future__ import annotations

import pathlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing.v1 import billing_pb2, billing_pb2_grpc
from voxmesh.channels import dial
from voxmesh.config import ConfigError
from voxmesh.errors import error_details
from voxmesh.identity import IdentityRules, is_loopback_peer, xfcc_uri
from voxmesh.server import GrpcServer, ServerSettings, ServiceSpec
from voxmesh.tls import DevCA, TlsSettings, dev_spiffe_id, make_dev_pki


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


async def test_plaintext_off_loopback_is_refused_unless_a_sidecar_is_declared() -> None:
    server = _server(ServerSettings(service="billing", listen="0.0.0.0:0"))
    with pytest.raises(ConfigError, match="plaintext"):
        await server.start()
    allowed = _server(ServerSettings(service="billing", listen="0.0.0.0:0", mesh="istio"))
    assert await allowed.start() > 0
    await allowed.stop(0)
    # The old switch is gone, loudly: a deployment that still sets it must not
    # come up believing it is protected.
    with pytest.raises(ConfigError, match="VOXMESH_ALLOW_PLAINTEXT is gone"):
        ServerSettings.from_env({"VOXMESH_ALLOW_PLAINTEXT": "true"}, "billing")
    with pytest.raises(ConfigError, match="VOXMESH_MESH"):
        ServerSettings.from_env({"VOXMESH_MESH": "consul"}, "billing")


def test_tls_settings_need_all_three_files(tmp_path: pathlib.Path) -> None:
    assert TlsSettings.from_env({}) is None
    with pytest.raises(ConfigError, match="VOXMESH_TLS_CERT"):
        TlsSettings.from_env({"VOXMESH_TLS_CA": str(tmp_path / "ca.pem")})


async def _code(
    target: str,
    tls: TlsSettings | None,
    method: str,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.StatusCode:
    """The status of one Quote or Reserve call as ``tls`` (None: plaintext)."""
    channel = (
        grpc.aio.secure_channel(target, tls.channel_credentials())
        if tls is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        try:
            if method == "Quote":
                await stub.Quote(billing_pb2.QuoteRequest(), timeout=5, metadata=metadata)
            else:
                await stub.Reserve(billing_pb2.ReserveRequest(), timeout=5, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


async def test_certificates_name_callers_by_spiffe_id_or_common_name(
    tmp_path: pathlib.Path,
) -> None:
    ca = DevCA(tmp_path)
    server_cert = ca.issue("billing", common_name="billing", spiffe_id=dev_spiffe_id("billing"))
    spiffe_only = ca.issue("spiffe-gw", common_name=None, spiffe_id=dev_spiffe_id("gateway"))
    # The URI SAN wins over the common name (SPIFFE ignores the subject).
    spiffe_wins = ca.issue("mixed", common_name="gateway", spiffe_id=dev_spiffe_id("notifier"))
    nameless = ca.issue("nameless", common_name=None, spiffe_id=None)
    # The development identity cannot be had from a certificate.
    posing = ca.issue("posing", common_name="loopback", spiffe_id=None)
    # A SPIFFE id from another namespace names no one here; its CN does not rescue it.
    elsewhere = ca.issue(
        "elsewhere",
        common_name=None,
        spiffe_id="spiffe://voxmesh.local/ns/other/sa/gateway",
    )
    server = _server(
        ServerSettings(
            service="billing",
            tls=server_cert,
            identity=IdentityRules(namespace="voxmesh"),
        )
    )
    await server.start()
    target = f"localhost:{server.port}"
    try:
        assert await _code(target, spiffe_only, "Reserve") == grpc.StatusCode.OK
        assert await _code(target, spiffe_wins, "Reserve") == grpc.StatusCode.PERMISSION_DENIED
        assert await _code(target, nameless, "Quote") == grpc.StatusCode.UNAUTHENTICATED
        assert await _code(target, posing, "Reserve") == grpc.StatusCode.UNAUTHENTICATED
        assert await _code(target, elsewhere, "Quote") == grpc.StatusCode.UNAUTHENTICATED
        # A sidecar header means nothing when no mesh is declared.
        forged = (("x-forwarded-client-cert", f"URI={dev_spiffe_id('gateway')}"),)
        code = await _code(target, spiffe_wins, "Reserve", metadata=forged)
        assert code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(0)


async def test_an_istio_sidecar_names_the_caller_in_xfcc() -> None:
    # The test plays Envoy: under a declared Istio sidecar the header is the
    # only source of identity, and without it a call is refused.
    server = _server(
        ServerSettings(service="billing", mesh="istio", identity=IdentityRules("voxmesh"))
    )
    await server.start()
    target = f"127.0.0.1:{server.port}"

    def xfcc(uri: str) -> tuple[tuple[str, str], ...]:
        by = dev_spiffe_id("billing")
        return (("x-forwarded-client-cert", f'By={by};Hash=ab12;Subject="";URI={uri}'),)

    try:
        assert await _code(target, None, "Quote") == grpc.StatusCode.UNAUTHENTICATED
        gateway = xfcc(dev_spiffe_id("gateway"))
        assert await _code(target, None, "Reserve", metadata=gateway) == grpc.StatusCode.OK
        notifier = xfcc(dev_spiffe_id("notifier"))
        code = await _code(target, None, "Reserve", metadata=notifier)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert await _code(target, None, "Quote", metadata=notifier) == grpc.StatusCode.OK
    finally:
        await server.stop(0)


async def test_a_linkerd_proxy_names_the_caller_in_l5d_client_id() -> None:
    server = _server(ServerSettings(service="billing", mesh="linkerd"))
    await server.start()
    target = f"127.0.0.1:{server.port}"
    try:
        gw = (("l5d-client-id", "gateway.voxmesh.serviceaccount.identity.linkerd.cluster.local"),)
        assert await _code(target, None, "Reserve", metadata=gw) == grpc.StatusCode.OK
        assert await _code(target, None, "Reserve") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)


async def test_loopback_development_admits_local_callers_and_health_has_its_own_port() -> None:
    server = _server(ServerSettings(service="billing", health_addr="127.0.0.1:0"))
    await server.start()
    try:
        assert await _code(f"127.0.0.1:{server.port}", None, "Reserve") == grpc.StatusCode.OK
        await server.set_serving(True)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as ch:
            got = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert got.status == health_pb2.HealthCheckResponse.SERVING
        # The health port serves nothing else.
        code = await _code(f"127.0.0.1:{server.health_port}", None, "Quote")
        assert code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(0)


def test_identity_rules() -> None:
    rules = IdentityRules.from_env(
        {
            "VOXMESH_NAMESPACE": "voxmesh",
            "VOXMESH_IDENTITY_MAP": "spiffe://cluster.local/ns/ops/sa/runbook=admin",
        }
    )
    assert rules.spiffe("spiffe://cluster.local/ns/voxmesh/sa/gateway") == "gateway"
    assert rules.spiffe("spiffe://cluster.local/ns/evil/sa/gateway") is None
    assert rules.spiffe("spiffe://cluster.local/ns/ops/sa/runbook") == "admin"
    assert rules.spiffe("spiffe://cluster.local/gateway") is None
    assert rules.spiffe("https://cluster.local/ns/voxmesh/sa/gateway") is None
    name = "billing.voxmesh.serviceaccount.identity.linkerd.cluster.local"
    assert rules.linkerd(name) == "billing"
    assert rules.linkerd(name.replace(".voxmesh.", ".evil.")) is None
    with pytest.raises(ConfigError, match="VOXMESH_IDENTITY_MAP"):
        IdentityRules.from_env({"VOXMESH_IDENTITY_MAP": "gateway"})
    # Envoy appends one element per hop; the last is the nearest proxy's.
    header = 'By=spiffe://a;URI=spiffe://old,By=spiffe://b;Subject="CN=x,O=y";URI=spiffe://new'
    assert xfcc_uri(header) == "spiffe://new"
    assert xfcc_uri("By=spiffe://b;Hash=1") is None
    assert is_loopback_peer("ipv4:127.0.0.1:5000") and is_loopback_peer("ipv6:[::1]:5000")
    assert is_loopback_peer("ipv6:[::ffff:127.0.0.1]:5000") and is_loopback_peer("unix:/s")
    assert not is_loopback_peer("ipv4:10.0.0.7:5000")
    assert not is_loopback_peer("ipv6:[::ffff:10.0.0.7]:5000")
