"""Billing fixtures: a migrated database of its own per test, and the real
server (voxmesh GrpcServer, interceptors included) on a real socket."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest

from billing.config import BillingSettings
from billing.migrate import migrate
from billing.server import create_app
from billing.v1 import billing_pb2_grpc
from tests.billing.billing_support import Running, StartBilling, with_database
from voxmesh.server import ServerSettings


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def billing_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A new database on the test server, migrated, dropped afterwards."""
    name = f"billing_{secrets.token_hex(5)}"
    await _admin(postgres_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_database(postgres_dsn, name)
    await migrate(dsn)
    yield dsn
    await _admin(postgres_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def start_billing(billing_dsn: str) -> AsyncIterator[StartBilling]:
    """Start a billing server on 127.0.0.1:0; call again for a second one."""
    running: list[Running] = []

    async def start(**overrides: Any) -> Running:
        settings = BillingSettings(
            database_url=overrides.pop("database_url", billing_dsn),
            pool_min_size=1,
            pool_max_size=overrides.pop("pool_max_size", 8),
            # The reaper only runs often in tests that ask for it.
            reaper_interval_seconds=overrides.pop("reaper_interval_seconds", 3600.0),
            **overrides,
        )
        app = await create_app(
            settings,
            ServerSettings(service="billing", listen="127.0.0.1:0", grace_seconds=1.0),
        )
        port = await app.start()
        target = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(target)
        run = Running(app, channel, billing_pb2_grpc.BillingServiceStub(channel), settings, target)
        running.append(run)
        return run

    yield start
    for run in running:
        await run.stop()


@pytest.fixture
async def billing(start_billing: StartBilling) -> Running:
    return await start_billing()
