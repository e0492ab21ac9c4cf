"""The fault modules' mesh: real processes, a Redis each module may stop, flush or restart,
and the books checked when the module is done."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.faults.support import faults_mesh, ledger
from tests.helpers import reference_text
from voxmesh.audiofiles import encode
from voxmesh_dev.embedded import EmbeddedRedis
from voxmesh_dev.mesh import Mesh


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis this module may stop and start (same port, its append-only file kept)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("faults-redis"))
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(
    postgres_dsn: str, own_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mesh]:
    m = await faults_mesh(tmp_path_factory.mktemp("faults"), postgres_dsn, own_redis.url)
    yield m
    # Whatever a test did, the books must balance at the end.
    (await ledger(m.database_url)).assert_sound()
    await m.stop()


@pytest.fixture(scope="module")
def jfk_ogg(shared_audio: pathlib.Path) -> bytes:
    return encode(shared_audio / "jfk.flac")


@pytest.fixture(scope="module")
def jfk_text(shared_audio: pathlib.Path) -> str:
    return reference_text(shared_audio, "jfk.flac")
