"""Session fixtures: real PostgreSQL and Redis, embedded unless the environment names them.

With DATABASE_URL / REDIS_URL unset (a fresh machine, CI's default run) the
suite starts the embedded servers once per session; with them set (CI's
second pass against the machine's PostgreSQL 15 and Redis 7) it uses those,
in a throwaway database and a key prefix of its own.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import tempfile
from collections.abc import Iterator

import asyncpg
import pytest

from voxmesh_dev.embedded import EmbeddedPostgres, EmbeddedRedis

REPO = pathlib.Path(__file__).resolve().parent.parent


def _shared_audio() -> pathlib.Path:
    for candidate in (REPO.parent / "shared" / "audio", REPO / "shared" / "audio"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("reference audio not found: expected ../shared/audio beside the repo")


@pytest.fixture(scope="session")
def shared_audio() -> pathlib.Path:
    """../shared/audio: real reference speech with transcripts.json."""
    return _shared_audio()


@pytest.fixture(scope="session")
def state_dir() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="voxmesh-test-") as tmp:
        yield pathlib.Path(tmp)


def _with_database(dsn: str, name: str) -> str:
    base, _, _ = dsn.rpartition("/")
    query = ""
    if "?" in dsn:
        query = "?" + dsn.split("?", 1)[1]
    return f"{base}/{name}{query}"


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server_dsn(state_dir: pathlib.Path) -> Iterator[str]:
    """DSN of a PostgreSQL server's maintenance database (tests make their own)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(state_dir / "postgres")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """An empty database for this test session, dropped afterwards."""
    name = f"voxmesh_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(postgres_server_dsn, f'CREATE DATABASE "{name}"'))
    yield _with_database(postgres_server_dsn, name)
    asyncio.run(_admin(postgres_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def fresh_database(postgres_server_dsn: str) -> asyncio.AsyncGenerator[str, None]:  # type: ignore[name-defined]
    """An empty database for one test."""
    name = f"voxmesh_t_{secrets.token_hex(5)}"
    await _admin(postgres_server_dsn, f'CREATE DATABASE "{name}"')
    yield _with_database(postgres_server_dsn, name)
    await _admin(postgres_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(state_dir: pathlib.Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(state_dir / "redis")
    yield server.start()
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"t{secrets.token_hex(4)}:"
