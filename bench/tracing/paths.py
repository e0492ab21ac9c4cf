"""Tracing's cost on the work users drive: billing Reserve+Capture pairs and voice notes.

Each arm starts its processes with tracing either off (``OTEL_TRACES_EXPORTER=none``:
no spans, no instrumentation, as ``OTEL_SDK_DISABLED`` deploys it) or on at 100 %
(``OTEL_TRACES_SAMPLER=always_on``, OTLP to the collector ``OTEL_EXPORTER_OTLP_ENDPOINT``
names), so each arm pays exactly what a deployment pays.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import tempfile
import time

import aiohttp
import asyncpg

from bench.billing.run import (
    BILLING_APP,
    Backends,
    Servers,
    grpc_phase,
    load_client,
    seed,
    with_database,
)
from billing.migrate import migrate
from voxmesh.audiofiles import encode
from voxmesh_dev.embedded import EmbeddedPostgres
from voxmesh_dev.mesh import Mesh, MeshOptions

OFF = {"OTEL_TRACES_EXPORTER": "none"}


def traced(collector_base_url: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector_base_url,
        "OTEL_TRACES_SAMPLER": "always_on",
    }


async def spans_stored(collector_base_url: str) -> int:
    """How many spans the collector holds (its Zipkin read API)."""
    url = f"{collector_base_url}/api/v2/traces?limit=1000000&lookback=86400000"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        traces = await resp.json()
    return sum(len(t) for t in traces)


class BillingPairs:
    """Reserve+Capture pairs/s from concurrent clients against one billing process."""

    def __init__(self, clients: int, seconds: float, warmup: float) -> None:
        self.clients, self.seconds, self.warmup = clients, seconds, warmup
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="tracing-bench-"))
        self._embedded: EmbeddedPostgres | None = None
        self._admin: asyncpg.Connection | None = None
        self.dsn = ""
        self.name = ""

    async def __aenter__(self) -> BillingPairs:
        server_dsn = os.environ.get("DATABASE_URL", "")
        if not server_dsn:
            self._embedded = EmbeddedPostgres(self.workdir / "pg")
            server_dsn = await asyncio.to_thread(self._embedded.start)
        self.name = f"tracing_bench_{secrets.token_hex(4)}"
        self._admin = await asyncpg.connect(server_dsn)
        await self._admin.execute(f'CREATE DATABASE "{self.name}"')
        self.dsn = with_database(server_dsn, self.name)
        await migrate(self.dsn)
        await seed(self.dsn)
        return self

    async def arm(self, tracing: dict[str, str]) -> float:
        assert self._admin is not None
        env = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "BILLING_REAPER_INTERVAL_SECONDS": "60",
            "VOXMESH_LOG_LEVEL": "warning",
            "VOXMESH_LOG_FORMAT": "text",
            **tracing,
        }
        client, _ = load_client("python")  # sends no trace context: a root per call
        async with Servers(env, 1, self.clients, self.workdir) as servers:
            rate, _, _, _ = await grpc_phase(
                client,
                servers,
                self.clients,
                self.seconds,
                self.warmup,
                Backends(self._admin, self.name, BILLING_APP),
            )
        return rate

    async def __aexit__(self, *exc: object) -> None:
        if self._admin is not None:
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            await self._admin.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)


async def voice_notes(
    audio: pathlib.Path, tracing: dict[str, str], notes: int, users: int
) -> float:
    """Voice notes a minute through the whole mesh (Bot API emulator, four services),
    ``users`` chats sending at once, each its next note as soon as the last is done."""
    with tempfile.TemporaryDirectory(prefix="tracing-bench-mesh-") as state:
        options = MeshOptions.from_env(os.environ, pathlib.Path(state))
        # The mesh's own collector (OTLP) for the on arm; nothing for the off arm.
        options.env = {**tracing, "VOXMESH_LOG_LEVEL": "warning"}
        admin: asyncpg.Connection | None = None
        name = f"tracing_bench_{secrets.token_hex(4)}"
        if options.database_url:  # a database of its own on that server, dropped after
            admin = await asyncpg.connect(options.database_url)
            await admin.execute(f'CREATE DATABASE "{name}"')
            options.database_url = with_database(options.database_url, name)
        mesh = Mesh(options)
        try:
            await mesh.start()
            emu = mesh.emulator
            assert emu is not None, "the voice-note bench needs the Bot API emulator (no token)"
            ogg = encode(audio)
            seconds = 11

            async def one_user(uid: int, count: int) -> None:
                for _ in range(count):
                    file_id = emu.add_file(ogg, mime_type="audio/ogg")
                    before = len(emu.messages(uid))
                    emu.push_update(
                        emu.make_message_update(chat_id=uid, user_id=uid, voice=(file_id, seconds))
                    )

                    def finished(uid: int = uid, before: int = before) -> bool:
                        msgs = emu.messages(uid)
                        if len(msgs) <= before:
                            return False
                        last = msgs[before]
                        return bool(last.edits) and not last.edits[-1].endswith("…")

                    await emu.wait_for(finished, 300)

            base = 800_000 + secrets.randbelow(100_000) * 10
            per_user = [notes // users + (1 if i < notes % users else 0) for i in range(users)]
            await one_user(base - 1, 1)  # warm-up: model loaded, connections open
            start = time.monotonic()
            await asyncio.gather(*(one_user(base + i, n) for i, n in enumerate(per_user) if n))
            return notes / (time.monotonic() - start) * 60
        finally:
            await mesh.stop()
            if admin is not None:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
