"""The whole mesh as separate processes, shared by the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voxmesh.devmesh import Mesh, MeshOptions


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    state = tmp_path_factory.mktemp("mesh")
    prefix = f"e2e{state.name[-4:]}:"
    m = Mesh(
        MeshOptions(
            state_dir=state,
            database_url=postgres_dsn,
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
