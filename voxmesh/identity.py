"""Who is calling: the caller's identity from its certificate or its sidecar.

An identity is a short name ("gateway", "admin", ...) that a service's
per-method policy lists (:class:`voxmesh.tls.Authz`). Where it comes from
depends on how the server listens, never on what the caller asks for:

- mutual TLS (``VOXMESH_TLS_*``): the verified client certificate. A SPIFFE
  URI SAN (``spiffe://<trust-domain>/ns/<ns>/sa/<name>``) names the
  service account ``<name>``; without one, the common name is the identity.
  A certificate with neither has no identity and is refused.
- plaintext behind a declared sidecar (``VOXMESH_MESH``): ``istio`` reads the
  SPIFFE id from the ``URI=`` of the ``x-forwarded-client-cert`` header that
  the sidecar's Envoy sets on every inbound request (replacing any the caller
  sent, Istio's default); ``linkerd`` reads the ``l5d-client-id`` header its
  proxy sets (``<sa>.<ns>.serviceaccount.identity.linkerd.<domain>``, also
  stripped from what the caller sent). Neither header is trusted when no mesh
  is declared. The mesh must run in strict mTLS so no pod reaches the
  application port around the sidecar; a request without the header is refused.
- plaintext on loopback with no mesh (development, tests): every local caller
  is :data:`LOOPBACK`, which every policy admits.

``VOXMESH_NAMESPACE`` (k8s: the pod's own namespace) confines the service
account rule to one namespace, so a workload named ``gateway`` elsewhere in the
mesh is not the gateway. ``VOXMESH_IDENTITY_MAP`` maps whole ids to identities
(``spiffe://cluster.local/ns/voxmesh/sa/voxmesh-gw=gateway,...``) and wins
over the rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc

from voxmesh.config import ConfigError, env_choice

MESHES = ("none", "istio", "linkerd")
# The identity of a plaintext caller on loopback with no mesh: local development.
LOOPBACK = "loopback"
XFCC_HEADER = "x-forwarded-client-cert"
LINKERD_HEADER = "l5d-client-id"

Resolver = Callable[[grpc.aio.ServicerContext], str | None]


@dataclass(frozen=True)
class IdentityRules:
    """How a workload id (SPIFFE URI or Linkerd name) becomes an identity."""

    namespace: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> IdentityRules:
        mapping: dict[str, str] = {}
        for item in env.get("VOXMESH_IDENTITY_MAP", "").split(","):
            if not item.strip():
                continue
            workload, sep, name = item.strip().rpartition("=")
            if not sep or not workload or not name:
                raise ConfigError(f"VOXMESH_IDENTITY_MAP: {item.strip()!r} is not id=identity")
            mapping[workload] = name
        return cls(namespace=env.get("VOXMESH_NAMESPACE", "").strip() or None, mapping=mapping)

    def _account(self, namespace: str, account: str) -> str | None:
        if not account or (self.namespace is not None and namespace != self.namespace):
            return None
        return account

    def spiffe(self, uri: str) -> str | None:
        """``spiffe://td/ns/<ns>/sa/<name>`` -> ``<name>`` (or the mapped identity)."""
        if uri in self.mapping:
            return self.mapping[uri]
        if not uri.startswith("spiffe://"):
            return None
        parts = uri.removeprefix("spiffe://").split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
            return None
        return self._account(parts[2], parts[4])

    def linkerd(self, name: str) -> str | None:
        """``<sa>.<ns>.serviceaccount.identity.linkerd.<domain>`` -> ``<sa>``."""
        if name in self.mapping:
            return self.mapping[name]
        parts = name.split(".")
        if len(parts) < 6 or parts[2:5] != ["serviceaccount", "identity", "linkerd"]:
            return None
        return self._account(parts[1], parts[0])


def mesh_from_env(env: Mapping[str, str]) -> str:
    if env.get("VOXMESH_ALLOW_PLAINTEXT", "").strip():
        raise ConfigError(
            "VOXMESH_ALLOW_PLAINTEXT is gone: declare the sidecar with "
            "VOXMESH_MESH=istio|linkerd, or use mutual TLS (VOXMESH_TLS_*)"
        )
    return env_choice(env, "VOXMESH_MESH", "none", MESHES)


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside double quotes (XFCC quotes its values)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def xfcc_uri(header: str) -> str | None:
    """The ``URI=`` of the element the nearest proxy appended (the last one)."""
    element = _split(header, ",")[-1]
    for pair in _split(element, ";"):
        key, _, value = pair.strip().partition("=")
        if key.lower() == "uri":
            return value.strip('"') or None
    return None


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str | None:
    values = [v for k, v in context.invocation_metadata() or () if k == key]
    # Two headers would mean something upstream did not replace the caller's.
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _from_certificate(rules: IdentityRules) -> Resolver:
    def resolve(context: grpc.aio.ServicerContext) -> str | None:
        auth = context.auth_context()
        for uri in auth.get("peer_uri") or ():
            name = rules.spiffe(uri.decode())
            if name:
                return name
        names = list(auth.get("x509_common_name") or ())
        return (names[0].decode() or None) if names else None

    return resolve


def _from_istio(rules: IdentityRules) -> Resolver:
    def resolve(context: grpc.aio.ServicerContext) -> str | None:
        header = _metadata(context, XFCC_HEADER)
        uri = xfcc_uri(header) if header else None
        return rules.spiffe(uri) if uri else None

    return resolve


def _from_linkerd(rules: IdentityRules) -> Resolver:
    def resolve(context: grpc.aio.ServicerContext) -> str | None:
        header = _metadata(context, LINKERD_HEADER)
        return rules.linkerd(header) if header else None

    return resolve


def is_loopback_peer(peer: str) -> bool:
    kind, _, address = peer.partition(":")
    if kind == "unix":
        return True
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 from a dual-stack "localhost" listener
    return kind in {"ipv4", "ipv6"} and ip.is_loopback


def _from_loopback(context: grpc.aio.ServicerContext) -> str | None:
    return LOOPBACK if is_loopback_peer(context.peer()) else None


def _not_loopback(resolve: Resolver) -> Resolver:
    """A certificate or sidecar that names "loopback" must not pass as local development."""

    def checked(context: grpc.aio.ServicerContext) -> str | None:
        name = resolve(context)
        return None if name == LOOPBACK else name

    return checked


def resolver(*, tls: bool, mesh: str, rules: IdentityRules) -> Resolver:
    """The one way a server learns its callers' identities (see the module doc)."""
    if tls:
        return _not_loopback(_from_certificate(rules))
    if mesh == "istio":
        return _not_loopback(_from_istio(rules))
    if mesh == "linkerd":
        return _not_loopback(_from_linkerd(rules))
    return _from_loopback
