"""Apply the numbered SQL files in migrations/ to a PostgreSQL database.

Each file runs in its own transaction and is recorded in schema_migrations
with its SHA-256, all under a session advisory lock, so two pods starting at
once apply every file exactly once (the second waits, then finds nothing to
do). A file that changed after it was applied is refused: its effect is
already in the database and editing it would silently fork the schema;
write a new numbered file instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

log = logging.getLogger(__name__)

# Any fixed bigint works; this one is "voxmesh" in ASCII so it is
# recognisable in pg_locks.
ADVISORY_LOCK_KEY = 0x766F786D657368

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def default_directory(env: Mapping[str, str] | None = None) -> pathlib.Path:
    """VOXMESH_MIGRATIONS_DIR, else the repository's migrations/ folder."""
    environ = os.environ if env is None else env
    override = environ.get("VOXMESH_MIGRATIONS_DIR", "")
    if override:
        return pathlib.Path(override)
    return pathlib.Path(__file__).resolve().parent.parent / "migrations"


def load(directory: pathlib.Path) -> list[Migration]:
    """Read NNNN_name.sql files in version order; fail on gaps or strays."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return found


async def migrate(dsn: str, directory: pathlib.Path | None = None) -> list[str]:
    """Apply the files not applied yet; return their names in order applied."""
    migrations = load(directory if directory is not None else default_directory())
    conn = await asyncpg.connect(dsn)
    try:
        # A session lock (not a transaction one) spans all the per-file
        # transactions below; it is freed when the connection closes even if
        # this process dies mid-way.
        await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            return await _apply(conn, migrations)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    applied = {r["version"]: (r["name"], r["checksum"]) for r in rows}
    on_disk = {m.version for m in migrations}
    missing = sorted(set(applied) - on_disk)
    if missing:
        raise MigrationError(
            f"database has migrations {missing} that are not on disk "
            "(older code on a newer schema?)"
        )
    done: list[str] = []
    for m in migrations:
        if m.version in applied:
            name, checksum = applied[m.version]
            if checksum != m.checksum:
                raise MigrationError(
                    f"{m.name} changed after it was applied (as {name}); "
                    "add a new migration instead of editing an applied one"
                )
            continue
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
        log.info("applied migration %s", m.name)
        done.append(m.name)
    return done


__all__ = [
    "ADVISORY_LOCK_KEY",
    "Migration",
    "MigrationError",
    "default_directory",
    "load",
    "migrate",
]
