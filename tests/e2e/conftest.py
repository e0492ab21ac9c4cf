"""The whole mesh as separate processes, shared by the end-to-end tests of a module."""

from __future__ import annotations

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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    state = tmp_path_factory.mktemp("mesh")
    prefix = f"e2e{state.name[-4:]}:"
    m = Mesh(
        MeshOptions(
            state_dir=state,
            database_url=with_password(postgres_dsn),
            redis_url=redis_url,
            env={
                "NOTIFIER_REDIS_PREFIX": prefix,
                "GATEWAY_KEY_PREFIX": "g" + prefix,
                "GATEWAY_EDIT_INTERVAL_SECONDS": "1.0",
                "VOXMESH_LOG_LEVEL": "info",
            },
        )
    )
    try:
        await m.start()
    except BaseException:
        for name in ("billing", "transcriber", "notifier", "gateway"):
            print(f"--- {name} log ---\n{m.log_text(name)[-3000:]}")
        await m.stop()
        raise
    yield m
    await m.stop()
