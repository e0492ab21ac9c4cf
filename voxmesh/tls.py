"""Service-to-service TLS with mutual authentication, and who may call what.

Enabled by config: ``VOXMESH_TLS_CA``, ``VOXMESH_TLS_CERT`` and
``VOXMESH_TLS_KEY`` name PEM files (all three or none). A server then
requires a client certificate signed by the CA, and the certificate's common
name is the caller's identity ("gateway", "admin", ...), checked per method by
:class:`Authz`. Without TLS a server may listen only on loopback
(with a warning), unless ``VOXMESH_ALLOW_PLAINTEXT=true`` says the network
already authenticates peers (a service mesh sidecar doing mTLS).

``voxmesh certs`` makes a development CA and one certificate per identity.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import pathlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from voxmesh.config import ConfigError, env_bool
from voxmesh.errors import STATUS_DETAILS_KEY, PermissionDenied
from voxmesh.interceptors import rewrap

log = logging.getLogger(__name__)

IDENTITIES = ("gateway", "billing", "transcriber", "notifier", "facade", "admin")
# Every identity the mesh issues; "any" in a policy means any of these.
ANY = frozenset(IDENTITIES)


@dataclass(frozen=True)
class TlsSettings:
    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsSettings | None:
        names = ("VOXMESH_TLS_CA", "VOXMESH_TLS_CERT", "VOXMESH_TLS_KEY")
        values = [env.get(n, "").strip() for n in names]
        if not any(values):
            return None
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        if missing:
            raise ConfigError(f"{missing[0]} is required when any VOXMESH_TLS_* is set")
        paths = [pathlib.Path(v).expanduser() for v in values]
        for name, path in zip(names, paths, strict=True):
            if not path.is_file():
                raise ConfigError(f"{name}={path} is not a readable file")
        return cls(*paths)

    def _read(self) -> tuple[bytes, bytes, bytes]:
        return self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes()

    def server_credentials(self) -> grpc.ServerCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self._read()
        return grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )


def allow_plaintext(env: Mapping[str, str]) -> bool:
    return env_bool(env, "VOXMESH_ALLOW_PLAINTEXT", False)


def caller_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The common name of the verified client certificate, or None without TLS."""
    auth = context.auth_context()
    names = list(auth.get("x509_common_name") or [])
    return names[0].decode() if names else None


Policy = Mapping[str, frozenset[str]]


class Authz:
    """Refuses a call whose caller identity the method's policy does not list.

    ``policy`` maps a method name ("Reserve") or "*" to the identities allowed.
    It matters only on TLS servers: without a verified certificate there is
    no identity to check (plaintext is confined to loopback or a trusted
    mesh), so :class:`voxmesh.server.GrpcServer` wraps handlers with it only
    when it serves TLS.
    """

    def __init__(self, policy: Policy, *, domain: str) -> None:
        self._policy = policy
        self._domain = domain

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(("/grpc.health.v1.", "/grpc.reflection.")):
            return handler
        name = method.rsplit("/", 1)[-1]
        allowed = self._policy.get(name, self._policy.get("*", ANY))
        return _guard(handler, allowed, self._domain, name)


def _guard(
    handler: grpc.RpcMethodHandler, allowed: frozenset[str], domain: str, name: str
) -> grpc.RpcMethodHandler:
    async def check(context: grpc.aio.ServicerContext) -> None:
        identity = caller_identity(context)
        if identity is None or identity in allowed:
            return
        err = PermissionDenied(
            f"{identity} may not call {name}",
            reason="CALLER_NOT_ALLOWED",
            metadata={"caller": identity, "method": name},
        )
        await context.abort(
            err.code,
            err.to_status(domain).message,
            trailing_metadata=((STATUS_DETAILS_KEY, err.to_status(domain).SerializeToString()),),
        )

    def unary(behavior: Any) -> Any:
        async def call(request: object, context: grpc.aio.ServicerContext) -> object:
            await check(context)
            return await behavior(request, context)

        return call

    def stream(behavior: Any) -> Any:
        async def call(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(context)
            async for item in behavior(request, context):
                yield item

        return call

    return rewrap(handler, unary=unary, stream=stream)


def make_dev_pki(
    out: pathlib.Path,
    identities: Iterable[str] = IDENTITIES,
    *,
    hosts: Iterable[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
) -> dict[str, TlsSettings]:
    """A development CA and one cert per identity (CN = identity), for tests and `voxmesh certs`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voxmesh development CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = out / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    result: dict[str, TlsSettings] = {}
    for identity in identities:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(identity)]
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        sans.append(x509.UniformResourceIdentifier(f"spiffe://voxmesh/{identity}"))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = out / f"{identity}.pem", out / f"{identity}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        result[identity] = TlsSettings(ca_path, cert_path, key_path)
    return result
