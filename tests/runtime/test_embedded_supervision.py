"""The embedded servers keep data safe and never outlive their owner for long.

A run that is killed leaves its PostgreSQL (a daemon) and possibly its Redis
behind; the next start on the same state folder stops them. A child started
with ``dies_with_parent`` goes when its parent is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator

import asyncpg
import pytest

from voxmesh_dev.embedded import EmbeddedPostgres, EmbeddedRedis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): count it as gone.
    return "State:\tZ" not in pathlib.Path(f"/proc/{pid}/status").read_text()


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _postmaster_pid(data_dir: pathlib.Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


async def _setting(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()


@pytest.fixture
def open_dir() -> Iterator[pathlib.Path]:
    # Not pytest's tmp_path: other pytest sessions reset its root to 0700, which
    # keeps out the unprivileged user the embedded PostgreSQL runs as under root.
    folder = pathlib.Path(tempfile.mkdtemp(prefix="voxmesh-embedded-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_postgres_commits_durably_and_a_stale_server_is_stopped(open_dir: pathlib.Path) -> None:
    tmp_path = open_dir
    first = EmbeddedPostgres(tmp_path / "pg")
    dsn = first.start()
    old_pid = _postmaster_pid(first.data_dir)
    try:
        assert asyncio.run(_setting(dsn, "fsync")) == "on"
        assert asyncio.run(_setting(dsn, "synchronous_commit")) == "on"
        # The owner is killed without stopping it: a new run on the same folder.
        second = EmbeddedPostgres(tmp_path / "pg")
        second.start()
        try:
            assert _wait_gone(old_pid, 5), "the earlier run's PostgreSQL still runs"
            assert not _listening(first.port)
            assert _postmaster_pid(second.data_dir) != old_pid
            assert asyncio.run(_setting(second.dsn, "fsync")) == "on"
        finally:
            second.stop()
    finally:
        first.stop()


def test_redis_left_by_a_killed_run_is_stopped(tmp_path: pathlib.Path) -> None:
    first = EmbeddedRedis(tmp_path / "redis")
    first.start()
    assert first._proc is not None
    old_pid = first._proc.pid
    second = EmbeddedRedis(tmp_path / "redis")
    try:
        second.start()
        assert _wait_gone(old_pid, 5), "the earlier run's Redis still runs"
        assert _listening(second.port) and not _listening(first.port)
    finally:
        second.stop()
        first.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_sigkilled_parent(tmp_path: pathlib.Path) -> None:
    # A parent that starts a long-lived child the way Mesh.spawn does, then is SIGKILLed.
    parent_code = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        from voxmesh_dev.embedded import dies_with_parent
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"],
            preexec_fn=dies_with_parent(signal.SIGTERM),
            process_group=0,
        )
        print(child.pid, flush=True)
        time.sleep(120)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])},
    ) as parent:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert _alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_gone(child_pid, 10), "the child outlived its SIGKILLed parent"
