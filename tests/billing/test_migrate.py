"""billing.migrate against a real PostgreSQL: order, idempotence, the lock, checksums."""

from __future__ import annotations

import asyncio
import pathlib
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from billing.migrate import ADVISORY_LOCK_KEY, MigrationError, default_directory, migrate
from tests.billing.billing_support import with_database


@pytest.fixture
async def empty_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"migr_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(postgres_dsn, name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def test_default_directory_is_the_repo_folder(tmp_path: pathlib.Path) -> None:
    assert default_directory({}) == pathlib.Path(__file__).resolve().parents[2] / "migrations"
    assert (default_directory({}) / "0001_billing_core.sql").is_file()
    assert default_directory({"VOXMESH_MIGRATIONS_DIR": str(tmp_path)}) == tmp_path


async def test_concurrent_migrate_applies_once(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrate(empty_dsn) for _ in range(4)))
    applied = [name for names in results for name in names]
    on_disk = sorted(p.name for p in default_directory({}).glob("*.sql"))
    assert sorted(applied) == on_disk  # every file exactly once, across all callers
    assert await migrate(empty_dsn) == []
    conn = await asyncpg.connect(empty_dsn)
    try:
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
        assert [r["name"] for r in rows] == on_disk
        # The lock is gone once migrate() returns.
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = $1",
            ADVISORY_LOCK_KEY,
        )
        assert held == 0
    finally:
        await conn.close()


async def test_migrate_waits_for_the_advisory_lock(empty_dsn: str) -> None:
    holder = await asyncpg.connect(empty_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        task = asyncio.create_task(migrate(empty_dsn))
        await asyncio.sleep(0.5)
        assert not task.done()  # blocked behind the other "pod"
        await holder.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        assert await asyncio.wait_for(task, 30) == [
            "0001_billing_core.sql",
            "0002_durable_jobs.sql",
        ]
    finally:
        await holder.close()


async def test_changed_applied_file_is_refused(empty_dsn: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "0001_one.sql").write_text("CREATE TABLE one (id int);")
    (tmp_path / "0002_two.sql").write_text("CREATE TABLE two (id int);")
    assert await migrate(empty_dsn, tmp_path) == ["0001_one.sql", "0002_two.sql"]
    (tmp_path / "0003_three.sql").write_text("CREATE TABLE three (id int);")
    assert await migrate(empty_dsn, tmp_path) == ["0003_three.sql"]
    (tmp_path / "0002_two.sql").write_text("CREATE TABLE two (id bigint);")
    with pytest.raises(MigrationError, match=r"0002_two\.sql changed after it was applied"):
        await migrate(empty_dsn, tmp_path)


async def test_failed_file_rolls_back_alone(empty_dsn: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(empty_dsn, tmp_path)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('ok') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def test_bad_file_names_are_refused(empty_dsn: str, tmp_path: pathlib.Path) -> None:
    (tmp_path / "1_short.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_lower_snake\.sql"):
        await migrate(empty_dsn, tmp_path)
