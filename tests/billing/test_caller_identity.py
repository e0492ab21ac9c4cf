"""Billing as the prod overlay runs it: mutual TLS, callers checked per method.

The billing container's environment is taken from the rendered prod overlay (k8s/),
and each certificate is issued as the overlay's cert-manager Certificate describes
it (common name, SPIFFE URI SAN, DNS names), by a CA of the test's own. Only what
cannot exist outside a cluster is replaced: file paths, ports, the database URL.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from billing.config import BillingSettings
from billing.server import DEFAULT_LISTEN, create_app
from billing.v1 import billing_pb2, billing_pb2_grpc
from tests.k8s.render import overlay_dir, render
from tests.k8s.test_manifests import env_of, main_container, one
from tests.k8s.test_mtls import certificates
from voxmesh.errors import error_details
from voxmesh.server import ServerSettings
from voxmesh.tls import DevCA, TlsSettings

ADMIN_ID = 7001
USER_ID = 7002


@dataclass
class ProdBilling:
    target: str
    host: str
    ca: DevCA
    certs: dict[str, TlsSettings]
    spec: dict[str, dict[str, Any]]


def _issue(ca: DevCA, name: str, spec: dict[str, Any]) -> TlsSettings:
    return ca.issue(
        name,
        common_name=spec.get("commonName"),
        spiffe_id=spec["uris"][0],
        hosts=spec.get("dnsNames", ()),
    )


@pytest.fixture
async def prod_billing(billing_dsn: str, tmp_path: pathlib.Path) -> AsyncIterator[ProdBilling]:
    docs = render(overlay_dir("prod"))
    container = main_container(one(docs, "Deployment", "billing"))
    spec = {name.removeprefix("voxmesh-tls-"): s for name, s in certificates(docs).items()}
    ca = DevCA(tmp_path / "ca")
    certs = {i: _issue(ca, i, spec[i]) for i in ("billing", "gateway", "notifier", "admin")}
    # The Secret's files, where the overlay's VOXMESH_TLS_* expect them (ca.crt, ...).
    env: dict[str, str] = {}
    for name, value in env_of(docs, container).items():
        if isinstance(value, str):
            env[name] = value
    assert "VOXMESH_ALLOW_PLAINTEXT" not in env and "VOXMESH_MESH" not in env
    secret = tmp_path / "secret"
    secret.mkdir()
    own = certs["billing"]
    for var, source in (("CA", own.ca), ("CERT", own.cert), ("KEY", own.key)):
        path = secret / pathlib.PurePosixPath(env[f"VOXMESH_TLS_{var}"]).name
        path.write_bytes(source.read_bytes())
        env[f"VOXMESH_TLS_{var}"] = str(path)
    env["VOXMESH_NAMESPACE"] = "voxmesh"  # the downward API's metadata.namespace
    # Same host (0.0.0.0: not loopback, so plaintext would be refused), free ports.
    env["BILLING_LISTEN_ADDR"] = env["BILLING_LISTEN_ADDR"].replace(":50051", ":0")
    env["BILLING_HEALTH_ADDR"] = env["BILLING_HEALTH_ADDR"].replace(":9465", ":0")
    env["DATABASE_URL"] = billing_dsn
    env["BILLING_ADMIN_USER_IDS"] = str(ADMIN_ID)
    server_settings = ServerSettings.from_env(env, "BILLING", default_listen=DEFAULT_LISTEN)
    assert server_settings.tls is not None and server_settings.mesh == "none"
    app = await create_app(BillingSettings.from_env(env), server_settings, run_reaper=False)
    port = await app.start()
    host = next(h for h in spec["billing"]["dnsNames"] if h.endswith(".svc.cluster.local"))
    try:
        yield ProdBilling(f"127.0.0.1:{port}", host, ca, certs, spec)
    finally:
        await app.stop(0)


def _channel(billing: ProdBilling, tls: TlsSettings | None) -> grpc.aio.Channel:
    # Dialled as the gateway dials it: the certificate must carry the DNS name.
    options = [("grpc.ssl_target_name_override", billing.host)]
    credentials = (
        tls.channel_credentials()
        if tls is not None
        else grpc.ssl_channel_credentials(billing.ca.ca_path.read_bytes())
    )
    return grpc.aio.secure_channel(billing.target, credentials, options=options)


async def _top_up(billing: ProdBilling, tls: TlsSettings | None, key: str) -> grpc.StatusCode:
    async with _channel(billing, tls) as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        try:
            await stub.TopUp(
                billing_pb2.TopUpRequest(
                    idempotency_key=key,
                    user_id=USER_ID,
                    amount_credits=5,
                    provider="telegram_stars",
                    provider_charge_id=key,
                ),
                timeout=10,
            )
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


async def test_prod_billing_admits_only_the_gateway_and_admin_to_move_money(
    prod_billing: ProdBilling,
) -> None:
    billing = prod_billing
    async with _channel(billing, billing.certs["gateway"]) as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        for user in (ADMIN_ID, USER_ID):
            await stub.EnsureUser(billing_pb2.EnsureUserRequest(user_id=user), timeout=10)

    # No certificate: the TLS handshake itself fails.
    assert await _top_up(billing, None, "no-cert") == grpc.StatusCode.UNAVAILABLE
    # The notifier is a mesh identity, but not one that moves money.
    async with _channel(billing, billing.certs["notifier"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await billing_pb2_grpc.BillingServiceStub(ch).TopUp(
                billing_pb2.TopUpRequest(
                    idempotency_key="n1", user_id=USER_ID, amount_credits=5, provider="x"
                ),
                timeout=10,
            )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = error_details(info.value)
    assert details.reason == "CALLER_NOT_ALLOWED"
    assert details.metadata == {"caller": "notifier", "method": "TopUp"}
    # The gateway's certificate (CN and SPIFFE id) may.
    assert await _top_up(billing, billing.certs["gateway"], "gw-1") == grpc.StatusCode.OK
    # So may a certificate that names the gateway only by its SPIFFE URI SAN.
    spiffe_only = billing.ca.issue(
        "gateway-spiffe", common_name=None, spiffe_id=billing.spec["gateway"]["uris"][0]
    )
    assert await _top_up(billing, spiffe_only, "gw-2") == grpc.StatusCode.OK
    # A certificate from the mesh CA that names no identity is refused.
    nameless = billing.ca.issue("nameless", common_name=None, spiffe_id=None)
    assert await _top_up(billing, nameless, "anon") == grpc.StatusCode.UNAUTHENTICATED
    # The gateway's SPIFFE id from another namespace is not the gateway.
    foreign = billing.ca.issue(
        "foreign",
        common_name=None,
        spiffe_id="spiffe://cluster.local/ns/sandbox/sa/gateway",
    )
    assert await _top_up(billing, foreign, "foreign") == grpc.StatusCode.UNAUTHENTICATED
    # A gateway certificate from another CA never completes the handshake.
    other = DevCA(billing.ca.out / "other").issue(
        "gateway", common_name="gateway", spiffe_id=billing.spec["gateway"]["uris"][0]
    )
    assert await _top_up(billing, other, "other-ca") == grpc.StatusCode.UNAVAILABLE

    # Read-only calls are open to any mesh identity.
    async with _channel(billing, billing.certs["notifier"]) as ch:
        got = await billing_pb2_grpc.BillingServiceStub(ch).GetBalance(
            billing_pb2.GetBalanceRequest(user_id=USER_ID), timeout=10
        )
    assert got.balance_credits > 0

    # Grant naming a real admin as the actor, from a non-admin identity: refused.
    grant = billing_pb2.GrantRequest(
        idempotency_key="g1", actor_user_id=ADMIN_ID, user_id=USER_ID, amount_credits=50
    )
    async with _channel(billing, billing.certs["notifier"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await billing_pb2_grpc.BillingServiceStub(ch).Grant(grant, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # From the gateway, naming a non-admin actor: billing's role check refuses it.
    async with _channel(billing, billing.certs["gateway"]) as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Grant(
                billing_pb2.GrantRequest(
                    idempotency_key="g2", actor_user_id=USER_ID, user_id=USER_ID, amount_credits=50
                ),
                timeout=10,
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Admin tooling's certificate with the admin as actor succeeds.
    async with _channel(billing, billing.certs["admin"]) as ch:
        await billing_pb2_grpc.BillingServiceStub(ch).Grant(grant, timeout=10)
