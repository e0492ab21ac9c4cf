"""The whole mesh as separate processes, shared by the end-to-end tests of a module."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voxmesh_dev.mesh import Mesh, MeshOptions

# Trust auth ignores it, but the services see a DSN with a password, so the
# suite can check that it never reaches a log line, a span or a metric.
DB_PASSWORD = "e2e-Db-Passw0rd-9f3k"


def with_password(dsn: str) -> str:
    scheme, rest = dsn.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo.split(':')[0]}:{DB_PASSWORD}@{host}"


@contextlib.asynccontextmanager
async def running_mesh(
    postgres_dsn: str, redis_url: str, state: pathlib.Path, env: dict[str, str]
) -> AsyncIterator[Mesh]:
    """A mesh on the session's database and Redis, under key prefixes of its own."""
    prefix = f"{state.name[:4]}{state.name[-4:]}:"
    m = Mesh(
        MeshOptions(
            state_dir=state,
            database_url=with_password(postgres_dsn),
            redis_url=redis_url,
            env={"NOTIFIER_REDIS_PREFIX": prefix, "GATEWAY_KEY_PREFIX": "g" + prefix, **env},
        )
    )
    try:
        await m.start()
    except BaseException:
        for name in ("billing", "transcriber", "notifier", "gateway"):
            print(f"--- {name} log ---\n{m.log_text(name)[-3000:]}")
        await m.stop()
        raise
    try:
        yield m
    finally:
        await m.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    env = {"GATEWAY_EDIT_INTERVAL_SECONDS": "1.0", "VOXMESH_LOG_LEVEL": "info"}
    async with running_mesh(postgres_dsn, redis_url, tmp_path_factory.mktemp("mesh"), env) as m:
        yield m
