"""Service-to-service mutual TLS in the rendered overlays: no plaintext, a cert-manager
certificate per identity mounted as files, names that match what callers dial."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.k8s.render import CRD_KINDS, Manifest, overlay_dir, render
from tests.k8s.test_manifests import (
    GRPC_PORTS,
    NAMESPACES,
    SERVICES,
    env_of,
    main_container,
    of_kind,
    one,
    pod_spec,
)

CERT_MANAGER = "cert-manager.io/v1"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {name: render(overlay_dir(name)) for name in NAMESPACES}


def certificates(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]
        for d in docs
        if (d["apiVersion"], d["kind"]) == (CERT_MANAGER, "Certificate")
    }


def mounted_certificate(docs: list[Manifest], service: str) -> dict[str, Any]:
    """The Certificate whose Secret the service's container mounts where VOXMESH_TLS_* point."""
    deployment = one(docs, "Deployment", service)
    c = main_container(deployment)
    env = env_of(docs, c)
    paths = {pathlib.PurePosixPath(env[f"VOXMESH_TLS_{k}"]) for k in ("CA", "CERT", "KEY")}
    assert {p.name for p in paths} == {"ca.crt", "tls.crt", "tls.key"}, service
    (folder,) = {p.parent for p in paths}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mount = mounts[str(folder)]
    assert mount.get("readOnly") is True
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    secret = volumes[mount["name"]]["secret"]["secretName"]
    found = [spec for spec in certificates(docs).values() if spec["secretName"] == secret]
    assert len(found) == 1, f"{service}: no Certificate writes Secret {secret}"
    return found[0]


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
@pytest.mark.parametrize("service", SERVICES)
def test_no_plaintext_every_service_runs_mutual_tls(
    rendered: dict[str, list[Manifest]], overlay: str, service: str
) -> None:
    docs = rendered[overlay]
    env = env_of(docs, main_container(one(docs, "Deployment", service)))
    # No switch that would let a server listen in plaintext off loopback.
    assert "VOXMESH_ALLOW_PLAINTEXT" not in env
    assert env.get("VOXMESH_MESH", "none") == "none"
    cert = mounted_certificate(docs, service)
    namespace = NAMESPACES[overlay]
    # The identity twice: common name and SPIFFE id of this namespace.
    assert cert["commonName"] == service
    assert cert["uris"] == [f"spiffe://cluster.local/ns/{namespace}/sa/{service}"]
    assert cert["issuerRef"] == {"name": "voxmesh-ca", "kind": "Issuer", "group": "cert-manager.io"}
    usages = set(cert["usages"])
    assert "client auth" in usages
    if service in GRPC_PORTS:
        assert "server auth" in usages
        # What the gateway dials must be a name in the server's certificate.
        target = env_of(docs, main_container(one(docs, "Deployment", "gateway")))[
            f"{service.upper()}_TARGET"
        ]
        host = target.removeprefix("dns:///").rsplit(":", 1)[0]
        assert host in cert["dnsNames"]
        # SPIFFE ids name identities only from the pod's own namespace.
        assert env["VOXMESH_NAMESPACE"] == ("field", "metadata.namespace")


@pytest.mark.parametrize("overlay", sorted(NAMESPACES))
def test_the_mesh_ca_is_this_namespaces_own(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    issuers = {
        d["metadata"]["name"]: d["spec"]
        for d in docs
        if (d["apiVersion"], d["kind"]) == (CERT_MANAGER, "Issuer")
    }
    assert issuers == {
        "voxmesh-selfsigned": {"selfSigned": {}},
        "voxmesh-ca": {"ca": {"secretName": "voxmesh-ca"}},
    }
    ca = certificates(docs)["voxmesh-ca"]
    assert ca["isCA"] is True and ca["secretName"] == "voxmesh-ca"
    assert ca["issuerRef"]["name"] == "voxmesh-selfsigned"
    # One certificate per identity the services know, and admin tooling's.
    assert set(certificates(docs)) == {"voxmesh-ca"} | {
        f"voxmesh-tls-{i}" for i in ("billing", "transcriber", "notifier", "gateway", "admin")
    }
    for d in docs:
        if d["apiVersion"] == CERT_MANAGER:
            assert d["metadata"]["namespace"] == NAMESPACES[overlay]


def test_cert_manager_kinds_are_the_only_ones_skipped_for_it() -> None:
    # kubernetes-validate has no cert-manager schemas offline; render.py skips
    # exactly these two kinds (and test_manifests checks the list is all used).
    skipped = {kind for api, kind in CRD_KINDS if api.startswith("cert-manager.io/")}
    assert skipped == {"Issuer", "Certificate"}
    assert {api for api, _ in CRD_KINDS if api.startswith("cert-manager.io/")} == {CERT_MANAGER}


def test_secret_files_are_not_world_readable(rendered: dict[str, list[Manifest]]) -> None:
    for service in SERVICES:
        deployment = of_kind(rendered["prod"], "Deployment")[service]
        (tls,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "tls"]
        assert tls["secret"]["defaultMode"] & 0o007 == 0, service
