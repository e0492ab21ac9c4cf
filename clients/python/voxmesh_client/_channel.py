"""Channels dialled the way the mesh dials them (voxmesh.channels), without the mesh.

The same service config: retries on UNAVAILABLE only (the transcriber's calls
change nothing, and every mutating call in the mesh carries an idempotency
key, so a retry never doubles an effect), keepalive so a dead peer is noticed
behind NATs and load balancers, round_robin for ``dns:///`` targets so a
headless Kubernetes Service spreads calls over every pod. A test keeps this
copy equal to the mesh's: the package must not import voxmesh, which brings
faster-whisper with it.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
MAX_MESSAGE_BYTES = 20 * 1024 * 1024


def service_config(target: str) -> dict[str, Any]:
    config: dict[str, Any] = {"methodConfig": [{"name": [{}], "retryPolicy": RETRY_POLICY}]}
    if target.startswith("dns:"):
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    return config


def channel_options(target: str) -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", json.dumps(service_config(target))),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]


@dataclass(frozen=True)
class TlsFiles:
    """Mutual TLS: the mesh's CA and this caller's certificate and key (PEM files).

    The certificate's common name is the caller's identity on the server side.
    """

    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TlsFiles | None:
        """``VOXMESH_TLS_CA``, ``VOXMESH_TLS_CERT``, ``VOXMESH_TLS_KEY``: all three or none."""
        env = os.environ if env is None else env
        names = ("VOXMESH_TLS_CA", "VOXMESH_TLS_CERT", "VOXMESH_TLS_KEY")
        values = [env.get(n, "").strip() for n in names]
        if not any(values):
            return None
        for name, value in zip(names, values, strict=True):
            if not value:
                raise ValueError(f"{name} is required when any VOXMESH_TLS_* is set")
        ca, cert, key = (pathlib.Path(v).expanduser() for v in values)
        return cls(ca, cert, key)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )


def dial(
    target: str,
    *,
    tls: TlsFiles | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """A channel to ``target`` (``host:port`` or ``dns:///name:port``), TLS when given."""
    if credentials is None and tls is not None:
        credentials = tls.credentials()
    options = channel_options(target)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)
