"""Runs the whole mesh on one machine: what ``voxmesh up`` and the end-to-end tests use.

Each service is its own process on real sockets. PostgreSQL and Redis are
the ones DATABASE_URL / REDIS_URL name, else embedded ones; with no
TELEGRAM_BOT_TOKEN the gateway and notifier talk to the local Bot API
emulator; with no OTEL_EXPORTER_ZIPKIN_ENDPOINT spans go to a local
collector that takes OTLP and Zipkin JSON and serves Zipkin's v2 API (so
``voxmesh trace`` works offline).

The children die with this process, however it ends: each service and the
embedded Redis gets SIGTERM from the kernel when it goes (PR_SET_PDEATHSIG), and
the embedded PostgreSQL (a daemon that pg_ctl detaches) is found and stopped by
the next start on the same state folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh_dev.embedded import EmbeddedPostgres, EmbeddedRedis, dies_with_parent, free_port

log = logging.getLogger(__name__)

GRPC_SERVICES = ("billing", "transcriber", "notifier")
ALL_SERVICES = (*GRPC_SERVICES, "gateway")
TEST_TOKEN = "123456:TEST-TOKEN-voxmesh"  # noqa: S105 - the emulator's, not a secret


@dataclass
class MeshOptions:
    state_dir: pathlib.Path
    database_url: str | None = None
    redis_url: str | None = None
    bot_token: str | None = None
    api_base: str | None = None
    zipkin_endpoint: str | None = None
    # Extra environment for every service (tests tune limits through it).
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: pathlib.Path | None = None
    start_timeout: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str], state_dir: pathlib.Path) -> MeshOptions:
        return cls(
            state_dir=state_dir,
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            bot_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            api_base=env.get("TELEGRAM_API_BASE") or None,
            zipkin_endpoint=env.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT") or None,
        )


class Mesh:
    """Start, observe and stop the four services (and what they need)."""

    def __init__(self, options: MeshOptions) -> None:
        self.options = options
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.metrics_ports: dict[str, int] = {}
        self.env: dict[str, str] = {}
        self.database_url = ""
        self.redis_url = ""
        self.emulator: Any = None
        self.collector: Any = None
        self._pg: EmbeddedPostgres | None = None
        self._redis: EmbeddedRedis | None = None
        self._logs: dict[str, Any] = {}

    def target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def metrics_url(self, service: str) -> str:
        if service == "gateway":
            return f"http://{self.target('gateway')}/metrics"
        return f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"

    async def start(self) -> None:
        opts = self.options
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        if opts.database_url:
            self.database_url = opts.database_url
        else:
            self._pg = EmbeddedPostgres(opts.state_dir / "postgres")
            self.database_url = await asyncio.to_thread(self._pg.start)
        if opts.redis_url:
            self.redis_url = opts.redis_url
        else:
            self._redis = EmbeddedRedis(opts.state_dir / "redis")
            # On this (the loop's) thread, not a worker's: the kernel's parent-death
            # signal follows the forking thread, and a worker thread may exit first.
            self.redis_url = self._redis.start(die_with_parent=True)

        from billing.migrate import migrate

        await migrate(self.database_url)

        token = opts.bot_token
        api_base = opts.api_base
        if not token:
            from voxmesh_dev.telegram import BotApiEmulator

            token = TEST_TOKEN
            self.emulator = BotApiEmulator(token=token)
            api_base = await self.emulator.start()
        tracing = {"OTEL_EXPORTER_ZIPKIN_ENDPOINT": opts.zipkin_endpoint or ""}
        if not opts.zipkin_endpoint:
            from voxmesh_dev.zipkin import ZipkinCollector

            self.collector = ZipkinCollector()
            await self.collector.start()
            # Both of the collector's doors: OTLP, the default exporter, and
            # Zipkin JSON for OTEL_TRACES_EXPORTER=zipkin.
            tracing = {
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT": self.collector.endpoint,
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.collector.base_url,
            }

        for name in ALL_SERVICES:
            self.ports[name] = free_port()
        for name in GRPC_SERVICES:
            self.metrics_ports[name] = free_port()
        self.env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE": api_base or "https://api.telegram.org",
            **tracing,
            "BILLING_TARGET": self.target("billing"),
            "TRANSCRIBER_TARGET": self.target("transcriber"),
            "NOTIFIER_TARGET": self.target("notifier"),
            "BILLING_LISTEN_ADDR": self.target("billing"),
            "TRANSCRIBER_LISTEN_ADDR": self.target("transcriber"),
            "NOTIFIER_LISTEN_ADDR": self.target("notifier"),
            "GATEWAY_HTTP_ADDR": self.target("gateway"),
            **{
                f"{name.upper()}_METRICS_ADDR": f"127.0.0.1:{port}"
                for name, port in self.metrics_ports.items()
            },
            **opts.env,
        }
        for name in ALL_SERVICES:
            self.spawn(name)
        await self.wait_ready(timeout=opts.start_timeout)

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        env = {
            # glibc's per-thread malloc arenas otherwise grow a threaded process's
            # RSS for minutes after start (the transcriber's worker threads most).
            "MALLOC_ARENA_MAX": "2",
            **os.environ,
            **self.env,
            "OTEL_SERVICE_NAME": name,
            "PYTHONUNBUFFERED": "1",
        }
        log_dir = self.options.log_dir or self.options.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        previous = self._logs.pop(name, None)
        if previous is not None:
            previous.close()  # a restart appends to the same log
        out = (log_dir / f"{name}.log").open("ab")
        self._logs[name] = out
        proc = subprocess.Popen(
            [sys.executable, "-m", name],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            # SIGTERM (a drain) if this process dies without stopping it, even by SIGKILL.
            preexec_fn=dies_with_parent(signal.SIGTERM),  # noqa: PLW1509
            # Its own process group: a terminal's Ctrl-C reaches only this process,
            # which then stops the services in order rather than all at once.
            process_group=0,
        )
        self.procs[name] = proc
        return proc

    async def wait_ready(self, names: tuple[str, ...] = ALL_SERVICES, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        for name in names:
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
                if await self._ready(name):
                    break
                if time.monotonic() > end:
                    raise TimeoutError(f"{name} not ready after {timeout}s")
                await asyncio.sleep(0.2)

    async def _ready(self, name: str) -> bool:
        if name == "gateway":
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(
                        f"http://{self.target(name)}/readyz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as resp,
                ):
                    return resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False
        async with grpc.aio.insecure_channel(self.target(name)) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    async def stop_service(self, name: str, timeout: float = 90) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        return int(proc.returncode)

    async def stop(self) -> None:
        await asyncio.gather(*(self.stop_service(n) for n in list(self.procs)))
        for out in self._logs.values():
            out.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self.collector is not None:
            await self.collector.stop()
        if self._redis is not None:
            await asyncio.to_thread(self._redis.stop)
        if self._pg is not None:
            await asyncio.to_thread(self._pg.stop)

    def log_text(self, name: str) -> str:
        path = (self.options.log_dir or self.options.state_dir / "logs") / f"{name}.log"
        with contextlib.suppress(FileNotFoundError):
            return path.read_text(errors="replace")
        return ""
