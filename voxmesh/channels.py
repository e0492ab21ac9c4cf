"""The one way to dial another service.

Every channel gets the same service config: retries on UNAVAILABLE only
(every mutating RPC in the mesh carries an idempotency key, so a retry never
doubles an effect), keepalive so dead peers are noticed behind NATs and load
balancers, and round_robin for ``dns:///`` targets so a headless Kubernetes
Service spreads calls over every pod instead of pinning one HTTP/2
connection. The client interceptors add tracing and deadline propagation, and
bound a unary call that has no deadline at all.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from opentelemetry.sdk.trace import TracerProvider

from voxmesh.interceptors import client_interceptors
from voxmesh.metrics import ClientMetrics
from voxmesh.tls import TlsSettings

_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

MAX_MESSAGE_BYTES = 20 * 1024 * 1024
# A unary call's timeout when neither its caller nor a served call's deadline
# sets one: the servers' own default deadline, so a call that never reaches
# a server is bounded on the client as one that does is on the server.
DEFAULT_CALL_TIMEOUT_SECONDS = 30.0


def service_config(target: str) -> dict[str, Any]:
    config: dict[str, Any] = {"methodConfig": [{"name": [{}], "retryPolicy": _RETRY_POLICY}]}
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


def dial(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    tls: TlsSettings | None = None,
    tracer_provider: TracerProvider | None = None,
    default_timeout: float | None = DEFAULT_CALL_TIMEOUT_SECONDS,
    metrics: ClientMetrics | None = None,
) -> grpc.aio.Channel:
    """Open a channel to ``target`` (``host:port`` or ``dns:///name:port``).

    With ``tls`` the channel presents this process's certificate (mutual
    TLS). ``default_timeout`` bounds unary calls that have no deadline;
    ``metrics`` counts the calls (``grpc_client_*``).
    """
    if credentials is None and tls is not None:
        credentials = tls.channel_credentials()
    interceptors = client_interceptors(
        tracer_provider=tracer_provider, default_timeout=default_timeout, metrics=metrics
    )
    options = channel_options(target)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
