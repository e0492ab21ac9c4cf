"""Service-to-service TLS with mutual authentication, and who may call what.

Enabled by config: ``VOXMESH_TLS_CA``, ``VOXMESH_TLS_CERT`` and
``VOXMESH_TLS_KEY`` name PEM files (all three or none). A server then
requires a client certificate signed by the CA. Every server, TLS or not,
checks each call with :class:`Authz`: the caller's identity (from the
certificate, a declared sidecar's header, or loopback development; see
:mod:`voxmesh.identity`) must be one the method's policy lists, a caller with
no identity gets UNAUTHENTICATED. Without TLS a server may listen only on
loopback, unless ``VOXMESH_MESH=istio|linkerd`` declares a sidecar that does
mTLS and tells the server who called.

``voxmesh certs`` makes a development CA and one certificate per identity.
"""

from __future__ import annotations

import contextvars
import datetime
import ipaddress
import logging
import pathlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from voxmesh.config import ConfigError
from voxmesh.errors import STATUS_DETAILS_KEY, PermissionDenied, ServiceError, Unauthenticated
from voxmesh.identity import LOOPBACK, Resolver
from voxmesh.interceptors import rewrap

log = logging.getLogger(__name__)

IDENTITIES = ("gateway", "billing", "transcriber", "notifier", "facade", "admin")
# In a policy: any authenticated identity (a certificate's, a sidecar's), not
# only those the mesh issues, so an internal caller added later needs no edit.
ANY = frozenset({"*"})
# The trust domain and namespace of `voxmesh certs` SPIFFE ids (k8s: the real ones).
DEV_TRUST_DOMAIN = "voxmesh.local"
DEV_NAMESPACE = "voxmesh"

# The identity of the call being served, set by Authz before the handler runs.
_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("voxmesh_caller", default=None)


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


def caller_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The identity Authz resolved for the call being served (None outside one)."""
    del context  # kept in the signature: the identity belongs to this call
    return _caller.get()


Policy = Mapping[str, frozenset[str]]


class Authz:
    """Refuses a call whose caller has no identity, or one the method's policy does not list.

    ``policy`` maps a method name ("Reserve") or "*" (every other method) to
    the identities allowed; :data:`ANY` admits any authenticated caller, and
    a method the policy does not name and no "*" covers is open to ANY. The
    development identity :data:`voxmesh.identity.LOOPBACK` passes every policy.
    Health and reflection are never checked (kubelet probes carry no identity).
    """

    def __init__(self, policy: Policy, *, domain: str, resolve: Resolver) -> None:
        self._policy = policy
        self._domain = domain
        self._resolve = resolve

    def allowed(self, method: str) -> frozenset[str]:
        return self._policy.get(method, self._policy.get("*", ANY))

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(("/grpc.health.v1.", "/grpc.reflection.")):
            return handler
        name = method.rsplit("/", 1)[-1]
        return _guard(handler, self.allowed(name), self._domain, name, self._resolve)


def _refusal(identity: str | None, allowed: frozenset[str], name: str) -> ServiceError | None:
    if identity is None:
        return Unauthenticated(f"{name} needs an authenticated caller", metadata={"method": name})
    if identity == LOOPBACK or identity in allowed or allowed == ANY:
        return None
    return PermissionDenied(
        f"{identity} may not call {name}",
        reason="CALLER_NOT_ALLOWED",
        metadata={"caller": identity, "method": name},
    )


def _guard(
    handler: grpc.RpcMethodHandler,
    allowed: frozenset[str],
    domain: str,
    name: str,
    resolve: Resolver,
) -> grpc.RpcMethodHandler:
    async def check(context: grpc.aio.ServicerContext) -> None:
        identity = resolve(context)
        err = _refusal(identity, allowed, name)
        if err is not None:
            status = err.to_status(domain)
            await context.abort(
                err.code,
                status.message,
                trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
            )
        _caller.set(identity)

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


def dev_spiffe_id(identity: str) -> str:
    return f"spiffe://{DEV_TRUST_DOMAIN}/ns/{DEV_NAMESPACE}/sa/{identity}"


def make_dev_pki(
    out: pathlib.Path,
    identities: Iterable[str] = IDENTITIES,
    *,
    hosts: Iterable[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
) -> dict[str, TlsSettings]:
    """A development CA and one cert per identity, for tests and `voxmesh certs`.

    Each certificate names its identity twice, as the common name and as a
    SPIFFE URI SAN (``spiffe://voxmesh.local/ns/voxmesh/sa/<identity>``).
    """
    ca = DevCA(out, days=days)
    return {
        identity: ca.issue(
            identity, common_name=identity, spiffe_id=dev_spiffe_id(identity), hosts=hosts
        )
        for identity in identities
    }


class DevCA:
    """A self-signed CA in ``out`` (``ca.pem``) that issues leaf certificates."""

    def __init__(self, out: pathlib.Path, *, days: int = 365) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.days = days
        now = datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voxmesh development CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
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
            .sign(self._key, hashes.SHA256())
        )
        self.ca_path = out / "ca.pem"
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        filename: str,
        *,
        common_name: str | None,
        spiffe_id: str | None,
        hosts: Iterable[str] = ("localhost", "127.0.0.1"),
    ) -> TlsSettings:
        """``<filename>.pem`` and ``-key.pem``: a client and server certificate
        naming ``common_name`` and/or ``spiffe_id`` (either may be left out)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(common_name)] if common_name else []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        if spiffe_id:
            sans.append(x509.UniformResourceIdentifier(spiffe_id))
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=self.days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=not subject)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_path, key_path = self.out / f"{filename}.pem", self.out / f"{filename}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return TlsSettings(self.ca_path, cert_path, key_path)
