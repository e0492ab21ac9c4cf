"""Server bootstrap shared by every gRPC service.

``GrpcServer`` owns a grpc.aio server with the standard health service
(NOT_SERVING until the service says it is ready, NOT_SERVING again on
shutdown), reflection, the call frame around every handler and a graceful drain. ``serve``
runs one until SIGTERM/SIGINT. Tests build a ``GrpcServer`` on port 0 and
call ``start``/``stop`` themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from voxmesh.config import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_PORTS,
    MAX_DEADLINE_SECONDS,
    ConfigError,
    TelemetrySettings,
    env_addr,
    env_float,
    is_loopback,
    parse_addr,
)
from voxmesh.identity import IdentityRules, mesh_from_env, resolver
from voxmesh.interceptors import ServerCalls
from voxmesh.metrics import Metrics
from voxmesh.tls import Authz, Policy, TlsSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    """How a gRPC server listens, drains and bounds calls.

    Read from ``<PREFIX>_LISTEN_ADDR``, ``<PREFIX>_GRACE_SECONDS``,
    ``<PREFIX>_DEFAULT_DEADLINE_SECONDS``, ``<PREFIX>_METRICS_ADDR`` and
    ``<PREFIX>_MAX_CONNECTION_AGE_SECONDS``, ``<PREFIX>_HEALTH_ADDR``, and
    ``VOXMESH_TLS_*``, ``VOXMESH_MESH``, ``VOXMESH_NAMESPACE``, ``VOXMESH_IDENTITY_MAP``.
    """

    service: str
    listen: str = "127.0.0.1:0"
    grace_seconds: float = 10.0
    default_deadline_seconds: float = 30.0
    # Empty means no /metrics endpoint (tests); k8s sets 0.0.0.0:9464.
    metrics_addr: str = ""
    # Servers close connections after this long so clients re-resolve DNS and
    # new pods get traffic despite long-lived HTTP/2 connections.
    max_connection_age_seconds: float = 300.0
    # Margin kept off the remaining deadline for every outgoing call, so the
    # caller still has time to answer after a downstream hop times out.
    deadline_margin_seconds: float = 0.05
    # Mutual TLS (VOXMESH_TLS_*); None serves plaintext, which is refused off
    # loopback unless mesh (VOXMESH_MESH: "istio" or "linkerd") declares a
    # sidecar that does mTLS and names the caller in a header.
    tls: TlsSettings | None = None
    mesh: str = "none"
    # A plaintext listener serving only grpc.health.v1 (k8s: kubelet's gRPC
    # probes speak no TLS); empty: none, health is on the main port only.
    health_addr: str = ""
    # How certificate and sidecar ids become identities (voxmesh.identity);
    # None: the default rules (service account name, any namespace).
    identity: IdentityRules | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        prefix: str,
        *,
        default_listen: str | None = None,
        default_grace: float | None = None,
        default_deadline: float = 30.0,
    ) -> ServerSettings:
        p = prefix.upper()
        default_listen = default_listen or f"127.0.0.1:{DEFAULT_PORTS.get(prefix.lower(), 0)}"
        if default_grace is None:
            default_grace = DEFAULT_GRACE_SECONDS.get(prefix.lower(), 10.0)
        return cls(
            service=prefix.lower(),
            listen=env_addr(env, f"{p}_LISTEN_ADDR", default_listen),
            grace_seconds=env_float(env, f"{p}_GRACE_SECONDS", default_grace, min=0, max=3600),
            default_deadline_seconds=env_float(
                env,
                f"{p}_DEFAULT_DEADLINE_SECONDS",
                default_deadline,
                min=0.1,
                max=MAX_DEADLINE_SECONDS,
            ),
            metrics_addr=env_addr(env, f"{p}_METRICS_ADDR", "")
            if env.get(f"{p}_METRICS_ADDR")
            else "",
            max_connection_age_seconds=env_float(
                env, f"{p}_MAX_CONNECTION_AGE_SECONDS", 300.0, min=1, max=7 * 86400
            ),
            health_addr=env_addr(env, f"{p}_HEALTH_ADDR", "")
            if env.get(f"{p}_HEALTH_ADDR")
            else "",
            tls=TlsSettings.from_env(env),
            mesh=mesh_from_env(env),
            identity=IdentityRules.from_env(env),
        )


S = TypeVar("S")


Frame = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]


class Registry:
    """What a generated ``add_*Servicer_to_server`` registers with instead of
    the server: every method handler goes in already wrapped by the frames
    (outermost first), so the per-call work is the frames' own and no
    interceptor chain runs on each call."""

    def __init__(self, server: grpc.aio.Server, frames: Sequence[Frame]) -> None:
        self._server = server
        self._frames = tuple(reversed(frames))

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        for frame in self._frames:
            handler = frame(method, handler)
        return handler

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service, {name: self.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        )

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Wrapped(h, self.wrap) for h in handlers))


class _Wrapped(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come wrapped (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Frame) -> None:
        self._inner = inner
        self._wrap = wrap
        # Only methods that exist: a caller naming random ones must not grow it.
        self._cache: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        wrapped = self._cache.get(method)
        if wrapped is None:
            handler = self._inner.service(details)
            if handler is None:
                return None
            wrapped = self._cache[method] = self._wrap(method, handler)
        return wrapped


@dataclass(frozen=True)
class ServiceSpec:
    """One gRPC service to host: its full proto name and how to register it."""

    name: str
    add_to_server: Callable[[grpc.aio.Server], None]


class GrpcServer:
    def __init__(
        self,
        settings: ServerSettings,
        services: Sequence[ServiceSpec],
        *,
        domain: str,
        metrics: Metrics | None = None,
        tracer_provider: TracerProvider | None = None,
        credentials: grpc.ServerCredentials | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.services = tuple(services)
        self.metrics = metrics if metrics is not None else Metrics(settings.service)
        self.health = health.aio.HealthServicer()
        self.port = 0
        self.health_port = 0
        if credentials is None and settings.tls is not None:
            credentials = settings.tls.server_credentials()
        self._credentials = credentials
        frames = [
            ServerCalls(
                domain=domain,
                metrics=self.metrics,
                default_deadline=settings.default_deadline_seconds,
                deadline_margin=settings.deadline_margin_seconds,
                tracer_provider=tracer_provider,
            ).wrap
        ]
        # Every call is authenticated and checked, plaintext or not: the
        # identity's source (certificate, sidecar header, loopback) follows
        # from how this server listens, never from what a caller sends.
        frames.append(
            Authz(
                policy or {},
                domain=domain,
                resolve=resolver(
                    tls=credentials is not None,
                    mesh=settings.mesh,
                    rules=settings.identity or IdentityRules(),
                ),
            ).wrap
        )
        age_ms = int(settings.max_connection_age_seconds * 1000)
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_connection_age_ms", age_ms),
                # In-flight calls on an aged connection get this long to finish.
                ("grpc.max_connection_age_grace_ms", int(settings.grace_seconds * 1000) + 1000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.max_receive_message_length", 20 * 1024 * 1024),
                ("grpc.max_send_message_length", 20 * 1024 * 1024),
            ],
        )
        # Generated add_*Servicer_to_server functions call only the two
        # registration methods a Registry has.
        registry = cast(grpc.aio.Server, Registry(self._server, frames))
        for spec in self.services:
            spec.add_to_server(registry)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        # Health alone, in plaintext, for probes that cannot present a certificate.
        self._health_server: grpc.aio.Server | None = None
        if settings.health_addr:
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._health_server)
        reflection.enable_server_reflection(
            [spec.name for spec in self.services]
            + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self._server,
        )

    async def start(self) -> int:
        """Bind and start; every service reports NOT_SERVING until set_serving()."""
        for name in ("", *(spec.name for spec in self.services)):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        host, _ = parse_addr("LISTEN_ADDR", self.settings.listen)
        if self._credentials is None:
            if not is_loopback(host) and self.settings.mesh == "none":
                raise ConfigError(
                    f"{self.settings.service}: plaintext on {self.settings.listen} is refused; "
                    "set VOXMESH_TLS_* (mutual TLS) or declare the sidecar (VOXMESH_MESH)"
                )
            if self.settings.mesh == "none":
                log.warning(
                    "%s listens in plaintext on %s: every local caller is trusted (development)",
                    self.settings.service,
                    self.settings.listen,
                )
            self.port = self._server.add_insecure_port(self.settings.listen)
        else:
            self.port = self._server.add_secure_port(self.settings.listen, self._credentials)
        await self._server.start()
        log.info("%s listening on port %d", self.settings.service, self.port)
        if self._health_server is not None:
            self.health_port = self._health_server.add_insecure_port(self.settings.health_addr)
            await self._health_server.start()
        return self.port

    async def set_serving(self, serving: bool = True) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *(spec.name for spec in self.services)):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, refuse new calls, let in-flight ones finish within ``grace``."""
        grace = self.settings.grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        log.info("%s draining for up to %.1fs", self.settings.service, grace)
        await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)

    async def wait(self) -> None:
        await self._server.wait_for_termination()

    @property
    def address(self) -> str:
        host, _ = parse_addr("LISTEN_ADDR", self.settings.listen)
        host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


async def serve(
    server: GrpcServer,
    *,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if server.settings.metrics_addr:
        server.metrics.serve(server.settings.metrics_addr)
    if ready is not None:
        await ready()
    await server.set_serving(True)
    await stop.wait()
    log.info("%s got a stop signal", server.settings.service)
    await server.stop()
    if on_shutdown is not None:
        await on_shutdown()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed: asyncpg's round trips and grpc.aio's
    completion-queue wake-ups cost about a fifth less CPU on it (bench.billing)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_main(
    service: str,
    load: Callable[[Mapping[str, str]], S],
    amain: Callable[[S, TracerProvider], Coroutine[Any, Any, None]],
    *,
    env: Mapping[str, str] | None = None,
    config_errors: tuple[type[Exception], ...] = (ConfigError,),
    fatal: tuple[type[BaseException], ...] = (),
) -> None:
    """Every service's ``main()``: settings that fail fast in one line, JSON logs,
    tracing, the service itself, then spans flushed on the way out.

    ``load`` reads the service's settings from the environment (raising
    ConfigError); ``fatal`` names errors that end the process with their message
    (a model that cannot load, say) rather than a traceback.
    """
    from voxmesh import logging as vlogging
    from voxmesh import telemetry

    environ = os.environ if env is None else env
    try:
        settings = load(environ)
        telemetry_settings = TelemetrySettings.from_env(environ, service)
    except config_errors as exc:
        sys.exit(f"{service}: {exc}")
    vlogging.setup(
        telemetry_settings.service_name,
        fmt=telemetry_settings.log_format,
        level=telemetry_settings.log_level,
    )
    provider = telemetry.setup(telemetry_settings)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(amain(settings, provider))
    except KeyboardInterrupt:
        pass
    except fatal as exc:
        sys.exit(f"{service}: {exc}")
    finally:
        provider.shutdown()
